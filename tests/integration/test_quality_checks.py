"""Data-quality checks on the real stack, run by the quality job as the schedule runs them: counts that
agree, a deleted target row caught with its difference, no false alarm under a concurrent writer,
schema drift shown with its DDL and cleared once applied, freshness from the heartbeat figure."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from tests.integration.test_connect_health import SlowWriter, component_defs
from tests.integration.test_pipeline_replication import _teardown
from tests.pipeline_support import connection, materialize, write_specs
from tests.support import pg_connect, pg_database, pg_inserter, unique, wait_for_equal

pytestmark = pytest.mark.integration


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_counts_drift_and_freshness(stack, connect, tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'metrics.sqlite'}")
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 500) g")
        name = unique("quality")
        specs = write_specs(tmp_path / "specs", {"src": connection(stack, "postgresql", src),
                                                 "tgt": connection(stack, "postgresql", tgt)},
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
                              "tables": {"names": ["public.t"]}, "options": {"heartbeat_interval_ms": 1000}}])  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))

        def run_checks(which: dg.Definitions = defs) -> dict[str, dg.AssetCheckEvaluation]:
            job = which.resolve_job_def("cdc_quality_checks")
            return evaluations(job.execute_in_process(instance=instance, raise_on_error=False))

        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            time.sleep(3)  # a heartbeat or two
            defs.resolve_job_def("cdc_collect_metrics").execute_in_process(instance=instance)
            first = run_checks()
            assert set(first) == {"row_count_parity", "schema_drift", "replication_freshness"}
            assert all(e.passed for e in first.values()), {k: e.description for k, e in first.items()}
            assert first["row_count_parity"].metadata["source_rows"].value == 500
            assert first["row_count_parity"].metadata["in_flight_bound"].value == 0

            # a row lost on the target: an idle table must match exactly, so this is caught
            with pg_connect(stack, tgt) as conn:
                conn.execute("DELETE FROM replica.t WHERE id = 7")
            lost = run_checks()["row_count_parity"]
            assert not lost.passed and lost.severity == dg.AssetCheckSeverity.ERROR
            assert (
                lost.metadata["difference"].value == 1
                and "more than the 0 changes in flight" in lost.description
            )
            with pg_connect(stack, src) as conn:
                conn.execute("UPDATE t SET v = 'again' WHERE id = 7")  # replicated: the row comes back
            wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT count(*) FROM t").fetchall(),
                           lambda: pg_connect(stack, tgt).execute("SELECT count(*) FROM replica.t").fetchall())  # fmt: skip

            # a writer inserting all the time: never a false alarm
            writer = SlowWriter(pg_inserter(stack, src), 10_000)
            writer.start()
            try:
                for _ in range(8):
                    busy = run_checks()["row_count_parity"]
                    assert busy.passed, busy.description
            finally:
                writer.stop_event.set()
                writer.join()

            # a column added on the source: a warning with the DDL, cleared once applied and refreshed
            with pg_connect(stack, src) as conn:
                conn.execute("ALTER TABLE t ADD COLUMN note text")
            drift = run_checks()["schema_drift"]
            assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
            ddl = drift.metadata["proposed_ddl"].value
            assert 'ALTER TABLE "replica"."t" ADD COLUMN "note" text' in ddl
            with pg_connect(stack, tgt) as conn:
                conn.execute('ALTER TABLE "replica"."t" ADD COLUMN "note" text')
            refreshed = component_defs(specs)  # `cdc-platform refresh`: the catalog knows the column now
            assert run_checks(refreshed)["schema_drift"].passed
        finally:
            _teardown(stack, connect, specs, name)
