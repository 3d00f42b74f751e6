"""Source schema changes on a running pipeline, on the real stack, under a writer.

A widened varchar (the change issue 32 saw take a pipeline down), into PostgreSQL and MariaDB: the sink fails on the first value
that no longer fits the target's column; the schema_drift check names the widening with the target
DDL derived by the platform's own mapping; `cdc-platform apply-drift --yes` applies it; the sink,
restarted, applies every change held in Kafka, and the target equals the source row by row.
"""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from cdc_platform.cli import cli
from tests.dagster_support import run_checks
from tests.faults import SlowWriter, wait_task_state
from tests.pipeline_support import component_defs, connection, materialize, teardown, write_specs
from tests.support import mariadb_database, mariadb_rows, pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("target_kind", ["postgresql", "mariadb"])
def test_a_widened_varchar_is_proposed_applied_and_nothing_is_lost(
    stack, connect, tmp_path, monkeypatch, target_kind
):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'platform.sqlite'}")
    on_pg = target_kind == "postgresql"
    with (
        pg_database(stack, "src") as src,
        pg_database(stack, "tgt") if on_pg else mariadb_database(stack, "tgt") as tgt,
    ):
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id bigint PRIMARY KEY, note varchar(64))")
            conn.execute("INSERT INTO t SELECT g, 'short ' || g FROM generate_series(1, 200) g")
        name = unique("widen")
        schema = "replica" if on_pg else tgt
        specs = write_specs(tmp_path / "specs", {"src": connection(stack, "postgresql", src),
                                                 "tgt": connection(stack, target_kind, tgt)},
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": schema,
                              "tables": {"names": ["public.t"]}}])  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        sink = f"{name}-sink"

        def write(i: int) -> None:  # ten rows a call, each note longer than the old limit
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t SELECT g, repeat('w', 150) FROM generate_series(%s::bigint, %s::bigint) g",
                             (1000 + i * 10, 1000 + i * 10 + 9))  # fmt: skip

        writer = SlowWriter(write, 0)
        src_rows = lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall()  # noqa: E731

        def tgt_rows() -> list[tuple]:
            if on_pg:
                return pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall()
            return [tuple(r) for r in mariadb_rows(stack, tgt, "SELECT * FROM t ORDER BY 1")]

        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            with pg_connect(stack, src) as conn:
                conn.execute("ALTER TABLE t ALTER COLUMN note TYPE varchar(200)")
            writer.start()
            wait_task_state(connect, sink, "FAILED")

            drift = run_checks(defs, instance, ("schema_drift",))["schema_drift"]
            assert not drift.passed and drift.severity == dg.AssetCheckSeverity.ERROR
            assert "column 'note' was widened on the source" in drift.description, drift.description
            expected = 'ALTER COLUMN "note" TYPE varchar(200)' if on_pg else "MODIFY `note` VARCHAR(200) NULL"
            assert expected in drift.metadata["proposed_ddl"].value, drift.metadata["proposed_ddl"].value

            applied = CliRunner().invoke(cli, ["apply-drift", name, "--specs", str(specs.directory), "--yes"])
            assert applied.exit_code == 0 and "applied 1 statement(s)" in applied.output, applied.output
            connect.restart(sink)
            wait_task_state(connect, sink, "RUNNING")
            writer.stop_event.set()
            writer.join()
            assert writer.errors == 0 and writer.next_id > 5
            final = wait_for_equal(src_rows, tgt_rows, timeout=180)
            assert sum(1 for _, note in final if len(note) == 150) == writer.next_id * 10
            after = run_checks(defs, instance, ("schema_drift",))["schema_drift"]
            assert after.passed, after.description
        finally:
            writer.stop_event.set()
            teardown(stack, connect, specs, name)
