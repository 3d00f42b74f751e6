"""Run-time safety: a run never captures a table it did not copy, and its errors name spec and pipeline."""

from __future__ import annotations

import pytest

from tests.integration.test_pipeline_replication import _teardown
from tests.pipeline_support import connection, materialize, write_specs
from tests.support import pg_connect, pg_database, unique

pytestmark = pytest.mark.integration


def _chain(exc: BaseException) -> str:
    """Every message of an exception and its causes (Dagster wraps the asset's own error)."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def test_a_table_created_after_load_is_not_captured_without_its_copy(stack, connect, tmp_path):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE first (id int PRIMARY KEY, v int)")
            conn.execute("INSERT INTO first VALUES (1, 1)")
        name = unique("late")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
              "tables": {"schema": "public", "include": ["*"]}}],
        )  # fmt: skip
        from cdc_platform.assets import build_pipeline_assets

        assets, _ = build_pipeline_assets(specs.pipelines[name], specs)  # discovers `first` only
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE later (id int PRIMARY KEY, v int)")
            conn.execute("INSERT INTO later SELECT g, g FROM generate_series(1, 10) g")
        try:
            with pytest.raises(Exception) as failure:
                materialize(stack, specs, name, assets=assets)
            text = _chain(failure.value)
            assert "tables ['public.later'] are selected on the source now but have no asset" in text
            assert "Reload the code location" in text and str(specs.pipelines[name].file) in text
            assert connect.get_config(f"{name}-source") is None, "nothing may be deployed"
            with pg_connect(stack, src) as conn:
                assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                                    (f"cdc_{name}",)).fetchone()[0] == 0  # fmt: skip
        finally:
            _teardown(stack, connect, specs, name)


def test_a_dropped_named_table_fails_the_run_naming_spec_file_and_pipeline(stack, connect, tmp_path):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE gone (id int PRIMARY KEY)")
        name = unique("gone")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
              "tables": {"names": ["public.gone"]}}],
        )  # fmt: skip
        with pg_connect(stack, src) as conn:
            conn.execute("DROP TABLE gone")
        with pytest.raises(Exception) as failure:
            materialize(stack, specs, name)
        text = _chain(failure.value)
        assert f"{specs.pipelines[name].file}: pipeline '{name}': table public.gone does not exist" in text
