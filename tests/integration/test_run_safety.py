"""Run-time safety: a run never captures a table it did not copy, and its errors name spec and pipeline."""

from __future__ import annotations

import pytest

from tests.pipeline_support import connection, materialize, teardown, write_specs
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
        from tests.pipeline_support import build_assets

        assets = build_assets(specs, name)  # the stored catalog knows `first` only
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE later (id int PRIMARY KEY, v int)")
            conn.execute("INSERT INTO later SELECT g, g FROM generate_series(1, 10) g")
        try:
            with pytest.raises(Exception) as failure:
                materialize(stack, specs, name, assets=assets)
            text = _chain(failure.value)
            assert "tables ['public.later'] are selected on the source now but have no asset" in text
            assert "run `cdc-platform refresh`" in text and str(specs.pipelines[name].file) in text
            assert connect.get_config(f"{name}-source") is None, "nothing may be deployed"
            with pg_connect(stack, src) as conn:
                assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                                    (f"cdc_{name}",)).fetchone()[0] == 0  # fmt: skip
        finally:
            teardown(stack, connect, specs, name)


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
        from tests.pipeline_support import build_assets

        assets = build_assets(specs, name)  # the catalog stored while the table existed
        with pg_connect(stack, src) as conn:
            conn.execute("DROP TABLE gone")
        with pytest.raises(Exception) as failure:
            materialize(stack, specs, name, assets=assets)
        text = _chain(failure.value)
        assert f"{specs.pipelines[name].file}: pipeline '{name}': table public.gone does not exist" in text


def test_a_failed_sink_with_an_unchanged_config_is_restarted_and_fails_the_run_until_fixed(
    stack, connect, tmp_path
):
    import dagster as dg

    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v int)")
        name = unique("failed")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
              "tables": {"names": ["public.t"]}}],
        )  # fmt: skip
        materialize(stack, specs, name)
        sink_key = dg.AssetKey([name, "sink_connector"])
        try:
            # the target can no longer take the rows: the sink task fails on its next write
            with pg_connect(stack, tgt) as conn:
                conn.execute("ALTER TABLE replica.t ALTER COLUMN v TYPE boolean USING v::boolean")
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t VALUES (1, 5)")
            import time

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status = connect.status(f"{name}-sink")
                if any(task["state"] == "FAILED" for task in status["tasks"]):
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"the sink task did not fail: {status}")
            with pytest.raises(Exception) as failure:
                materialize(stack, specs, name, selection=[sink_key])
            assert "failed" in _chain(failure.value) and "boolean" in _chain(failure.value)
            # repaired target: the same unchanged config now restarts into RUNNING and catches up
            with pg_connect(stack, tgt) as conn:
                conn.execute("ALTER TABLE replica.t ALTER COLUMN v TYPE int USING v::int")
            materialize(stack, specs, name, selection=[sink_key])
            from tests.support import wait_for_equal

            wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT * FROM t").fetchall(),
                           lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t").fetchall())  # fmt: skip
        finally:
            teardown(stack, connect, specs, name)


def test_a_rollback_that_fails_keeps_the_deploy_error_as_its_cause(stack, connect, tmp_path):
    """A fake Kafka Connect (a real worker cannot easily be made to fail exactly between a failed
    deploy and its rollback): the sink never runs, and deleting connectors fails."""
    from cdc_platform.kafka_connect import KafkaConnectError, KafkaConnectResource
    from cdc_platform.pipeline.execute import DeployRollbackFailed, run_pipeline
    from cdc_platform.pipeline.plan import build_plan
    from cdc_platform.schema.discovery import discover_pipeline_tables

    class BrokenConnect(KafkaConnectResource):
        def validate(self, config):
            return None

        def get_config(self, name):
            return None

        def put_config(self, name, config, **kwargs):
            return "created"

        def wait_running(self, name, *, timeout=90.0, settle=3.0):
            raise KafkaConnectError(f"Connector {name!r} failed: sink could not start", connector=name)

        def delete(self, name):
            raise KafkaConnectError("Kafka Connect could not be reached for the rollback", connector=name)

    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        name = unique("rb")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
              "tables": {"names": ["public.t"]}}],
        )  # fmt: skip
        spec = specs.pipelines[name].spec
        tables = discover_pipeline_tables(spec, specs.connection("src"), specs.directory)
        plan = build_plan(specs, spec, tables, stack.kafka_bootstrap)
        with pytest.raises(DeployRollbackFailed) as failure:
            run_pipeline(plan, specs.directory, BrokenConnect(url="http://127.0.0.1:9"), print)
        assert "sink could not start" in str(failure.value) and "could not be reached" in str(failure.value)
        assert isinstance(failure.value.__cause__, KafkaConnectError)
        assert "sink could not start" in str(failure.value.__cause__)


@pytest.mark.parametrize("source_kind", ["postgresql", "mariadb"])
def test_a_table_added_to_a_running_pipeline_loses_no_change_made_during_its_copy(
    stack, connect, tmp_path, source_kind
):
    import random
    import threading
    import time

    from tests.support import mariadb_connect, mariadb_database, wait_for_equal

    def run(db, statements, params=None):
        if source_kind == "postgresql":
            with pg_connect(stack, db) as conn:
                for stmt in statements:
                    conn.execute(stmt, params)
        else:
            with mariadb_connect(stack, db) as conn, conn.cursor() as cur:
                for stmt in statements:
                    cur.execute(stmt, params)

    def rows(db, table):
        if source_kind == "postgresql":
            return pg_connect(stack, db).execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
        with mariadb_connect(stack, db) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table} ORDER BY id")
            return [tuple(r) for r in cur.fetchall()]

    with pg_database(stack, "psrc") as pg_src, mariadb_database(stack, "msrc") as my_src, \
            pg_database(stack, "tgt") as tgt:  # fmt: skip
        src = pg_src if source_kind == "postgresql" else my_src
        schema = "public" if source_kind == "postgresql" else my_src
        series = "generate_series(1, 300000) g" if source_kind == "postgresql" else "seq_1_to_300000"
        col = "g" if source_kind == "postgresql" else "seq"
        run(src, ["CREATE TABLE a (id int PRIMARY KEY, v int)", "CREATE TABLE b (id int PRIMARY KEY, v int)",
                  f"INSERT INTO a SELECT {col}, 0 FROM {series.replace('300000', '1000')}",
                  f"INSERT INTO b SELECT {col}, 0 FROM {series}"])  # fmt: skip
        name = unique("add")
        conns = {"src": connection(stack, source_kind, src), "tgt": connection(stack, "postgresql", tgt)}
        pipeline = {"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
                    "tables": {"names": [f"{schema}.a"]}}  # fmt: skip
        specs = write_specs(tmp_path, conns, [pipeline])
        materialize(stack, specs, name)
        stop, errors = threading.Event(), []

        def write() -> None:
            rng = random.Random(3)
            next_id = 300001
            try:
                while not stop.is_set():
                    table = rng.choice(["a", "b", "b"])
                    op = rng.random()
                    if op < 0.4:
                        run(src, [f"INSERT INTO {table} VALUES (%s, 1)"], (next_id,))
                        next_id += 1
                    elif op < 0.85:
                        run(src, [f"UPDATE {table} SET v = v + 1 WHERE id = %s"], (rng.randint(1, 1000),))
                    else:
                        run(src, [f"DELETE FROM {table} WHERE id = %s"], (rng.randint(1, 1000),))
            except Exception as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        try:
            time.sleep(1)
            specs = write_specs(
                tmp_path, conns, [{**pipeline, "tables": {"names": [f"{schema}.a", f"{schema}.b"]}}]
            )
            materialize(stack, specs, name)  # the whole group: b is copied while the writer runs
            time.sleep(2)
            stop.set()
            writer.join(timeout=10)
            assert not errors, errors
            for table in ("a", "b"):
                wait_for_equal(
                    lambda t=table: rows(src, t),
                    lambda t=table: (
                        pg_connect(stack, tgt).execute(f"SELECT * FROM replica.{t} ORDER BY id").fetchall()
                    ),
                )
        finally:
            stop.set()
            teardown(stack, connect, specs, name)
