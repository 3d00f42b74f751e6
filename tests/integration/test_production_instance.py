"""The production profile: the Dagster instance on PostgreSQL (dagster-postgres run, event-log and
schedule storage) and the platform's own tables (metrics, alerts, audit) in the same database
through ``CDC_METRICS_URL``. The stack's PostgreSQL stands in for the production one."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from cdc_platform.dagster.connect_health import CHECK_NAME
from cdc_platform.settings import STACK_DB_USER
from tests.dagster_support import Ticker
from tests.pipeline_support import component_defs, connection, materialize, teardown, write_specs
from tests.support import pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration


def _storage(stack, database: str) -> dict:
    """The ``storage:`` block of ``dagster_home/dagster.yaml``'s production example, filled in."""
    return {"postgres": {"postgres_db": {"hostname": stack.host, "port": stack.postgres_port,
                                         "username": STACK_DB_USER, "password": {"env": "DAGSTER_PG_PASSWORD"},
                                         "db_name": database}}}  # fmt: skip


def test_materialization_sensor_tick_and_metrics_on_a_postgres_instance(
    stack, connect, tmp_path, monkeypatch
):
    password = stack.password("postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", password)
    with pg_database(stack, "dagster") as dagster_db, pg_database(stack, "src") as src, \
            pg_database(stack, "tgt") as tgt:  # fmt: skip
        monkeypatch.setenv(
            "CDC_METRICS_URL",
            f"postgresql+psycopg://{STACK_DB_USER}:{password}@{stack.host}:{stack.postgres_port}/{dagster_db}",
        )
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO items SELECT g, 'v' FROM generate_series(1, 500) g")
        name = unique("prod")
        connections = {
            "src": connection(stack, "postgresql", src),
            "tgt": connection(stack, "postgresql", tgt),
        }
        specs = write_specs(tmp_path / "specs", connections,
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
                              "tables": {"names": ["public.items"]}}])  # fmt: skip
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        with dg.instance_for_test(overrides={"storage": _storage(stack, dagster_db)}) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
            try:
                result = materialize(stack, specs, name, assets=assets, instance=instance)
                with pg_connect(stack, src) as conn:
                    conn.execute("INSERT INTO items SELECT g, 'new' FROM generate_series(501, 800) g")
                wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT count(*) FROM items").fetchall(),
                               lambda: pg_connect(stack, tgt).execute("SELECT count(*) FROM replica.items").fetchall())  # fmt: skip

                # a sensor tick as the daemon makes it: evaluated with the instance, and its events
                # written to the instance's event log
                ticker = Ticker(defs, instance, connect)
                seen = ticker.until(lambda e: {"source_connector", "sink_connector"} <= set(e)
                                    and all(x.passed for x in e.values()))  # fmt: skip
                for evaluation in seen.values():
                    instance.report_runless_asset_event(evaluation)

                # the metrics schedule's job, into the same database
                metrics = defs.resolve_job_def("cdc_collect_metrics").execute_in_process(instance=instance)
                assert metrics.success

                table_key = dg.AssetKey(["tgt", "replica", "items"])
                stored = instance.get_latest_materialization_event(table_key)
                assert stored is not None and stored.run_id == result.run_id
                check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
                    [dg.AssetCheckKey(dg.AssetKey([name, "sink_connector"]), CHECK_NAME)]
                )
                assert check, "the sensor's check evaluation is not in the event log"
            finally:
                teardown(stack, connect, specs, name)

        # everything above is in PostgreSQL: Dagster's tables and the platform's
        with psycopg.connect(host=stack.host, port=stack.postgres_port, user=STACK_DB_USER, password=password,
                             dbname=dagster_db) as conn:  # fmt: skip
            runs = conn.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'").fetchone()[0]
            events = conn.execute(
                "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
            ).fetchone()[0]
            samples = conn.execute(
                "SELECT count(*) FROM cdc_metric_samples WHERE pipeline = %s", (name,)
            ).fetchone()[0]
            audit = conn.execute(
                "SELECT count(*) FROM cdc_audit_log WHERE pipeline = %s", (name,)
            ).fetchone()[0]
        assert runs >= 2 and events >= 4, (runs, events)
        assert samples > 0 and audit > 0, (samples, audit)
