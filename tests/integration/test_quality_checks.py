"""Data-quality checks on the real stack, run in Dagster's asset job as the schedule runs them: counts that
agree, a deleted target row caught with its difference (and its alert), no false alarm under a
concurrent writer, a declared Great Expectations suite with one expectation holding and one failing,
schema drift shown with its DDL, applied by `cdc-platform apply-drift --yes` and then cleared, with
the new column's values replicating, and freshness from the heartbeat figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import dagster as dg
import pytest
from click.testing import CliRunner

from cdc_platform.alerts.history import AlertHistory
from cdc_platform.audit import entries
from cdc_platform.cli import cli
from cdc_platform.dagster.catalog import stored_catalog_path
from cdc_platform.dagster.component import CdcPipelineComponent
from tests.dagster_support import run_checks, run_schedule
from tests.faults import SlowWriter
from tests.pipeline_support import component_defs, connection, materialize, teardown, write_specs
from tests.support import pg_connect, pg_database, pg_inserter, unique, wait_for_equal

pytestmark = pytest.mark.integration


def on_demand_check(name: str, specs, home, *args: str) -> subprocess.CompletedProcess:
    """``cdc-platform check`` as a user runs it, with its own DAGSTER_HOME."""
    return subprocess.run([sys.executable, "-m", "cdc_platform.cli", "check", name, "--specs", str(specs.directory),
                           *args], env={**os.environ, "DAGSTER_HOME": str(home)}, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def _target_columns(stack, db) -> set[str]:
    with pg_connect(stack, db) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 't'"
        ).fetchall()
    return {r[0] for r in rows}


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
                              "tables": {"names": ["public.t"]}, "options": {"heartbeat_interval_ms": 1000},
                              "quality": {"expectations": {"public.t": [
                                  {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
                                  {"expectation": "expect_column_values_to_be_in_set",
                                   "kwargs": {"column": "v", "value_set": ["w"]}}]}}}])  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))

        def cheap(which: dg.Definitions = defs) -> dict[str, dg.AssetCheckEvaluation]:
            return run_schedule(which, instance, "cdc_quality_checks_schedule")

        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            time.sleep(3)  # a heartbeat or two
            defs.resolve_job_def("cdc_collect_metrics").execute_in_process(instance=instance)
            first = cheap()
            assert set(first) == {
                "row_count_parity",
                "schema_drift",
                "replication_freshness",
                "great_expectations",
            }
            suite = first.pop("great_expectations")
            assert all(e.passed for e in first.values()), {k: e.description for k, e in first.items()}
            # the declared suite: one expectation holds, one fails, both shown with their figures
            assert not suite.passed and suite.severity == dg.AssetCheckSeverity.ERROR
            results = {r["expectation"]: r for r in suite.metadata["results"].value}
            assert results["expect_column_values_to_not_be_null"]["success"] is True
            broken = results["expect_column_values_to_be_in_set"]
            assert broken["success"] is False and broken["unexpected_count"] == 500, broken
            assert suite.metadata["expect_column_values_to_be_in_set/v"].value == "FAILED"
            assert "expect_column_values_to_be_in_set(v) 500 unexpected" in suite.description
            assert first["row_count_parity"].metadata["source_rows"].value == 500
            assert first["row_count_parity"].metadata["in_flight_bound"].value == 0

            # a row lost on the target: an idle table must match exactly, so this is caught
            with pg_connect(stack, tgt) as conn:
                conn.execute("DELETE FROM replica.t WHERE id = 7")
            lost = cheap()["row_count_parity"]
            assert not lost.passed and lost.severity == dg.AssetCheckSeverity.ERROR
            assert (
                lost.metadata["difference"].value == 1
                and "more than the 0 changes in flight" in lost.description
            )
            # the same check on demand from the command line: exit 7, recorded in DAGSTER_HOME's instance
            home = tmp_path / "home"
            home.mkdir()
            on_demand = on_demand_check(name, specs, home, "--check", "row_count_parity", "--json")
            assert on_demand.returncode == 7, on_demand.stdout + on_demand.stderr
            report = json.loads(on_demand.stdout)
            (only,) = report["results"]
            assert (only["table"], only["check"], only["passed"]) == ("public.t", "row_count_parity", False)
            assert only["severity"] == "ERROR" and only["metadata"]["difference"] == 1
            table_key = dg.AssetKey(["tgt", "replica", "t"])
            with dg.DagsterInstance.from_config(str(home)) as stored:
                record = stored.get_latest_asset_check_evaluation_record(
                    dg.AssetCheckKey(table_key, "row_count_parity")
                )
                assert record.run_id == report["run_id"] and not record.event.asset_check_evaluation.passed
                assert not stored.fetch_materializations(table_key, limit=1).records, (
                    "checks alone, no re-load"
                )
            unknown = on_demand_check(name, specs, home, "--table", "public.nope")
            assert (
                unknown.returncode == 1 and "has no table public.nope; its tables: public.t" in unknown.stderr
            )

            # the outcome is a time series too: the built-in rule opens an alert on the table
            alerts = defs.get_sensor_def("cdc_alerts")
            alerts(
                dg.build_sensor_context(
                    instance=instance, resources={"cdc_settings": defs.resources["cdc_settings"]}
                )
            )
            opened = [a for a in AlertHistory().listing() if a.rule == "row_counts_differ"]
            assert [(a.pipeline, a.subject) for a in opened] == [(name, "public.t")], opened
            with pg_connect(stack, src) as conn:
                conn.execute("UPDATE t SET v = 'again' WHERE id = 7")  # replicated: the row comes back
            wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT count(*) FROM t").fetchall(),
                           lambda: pg_connect(stack, tgt).execute("SELECT count(*) FROM replica.t").fetchall())  # fmt: skip

            healthy = on_demand_check(
                name, specs, home, "--check", "row_count_parity", "--check", "schema_drift"
            )
            assert healthy.returncode == 0, healthy.stdout + healthy.stderr
            assert (
                "ok   public.t  row_count_parity" in healthy.stdout
                and "recorded in DAGSTER_HOME" in healthy.stdout
            )

            # a writer inserting all the time: never a false alarm
            writer = SlowWriter(pg_inserter(stack, src), 10_000)
            writer.start()
            try:
                for _ in range(8):
                    busy = cheap()["row_count_parity"]
                    assert busy.passed, busy.description
            finally:
                writer.stop_event.set()
                writer.join()

            # a column added on the source: a warning with the DDL; `apply-drift` shows it, applies it on
            # --yes and refreshes the catalog, then the check passes and the column's values replicate
            runner = CliRunner()
            refreshed = runner.invoke(cli, ["refresh", "--specs", str(specs.directory)])
            assert refreshed.exit_code == 0, refreshed.output
            with pg_connect(stack, src) as conn:
                conn.execute("ALTER TABLE t ADD COLUMN note text")
            drift = cheap()["schema_drift"]
            assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
            ddl = 'ALTER TABLE "replica"."t" ADD COLUMN IF NOT EXISTS "note" text'
            assert ddl in drift.metadata["proposed_ddl"].value
            shown = runner.invoke(cli, ["apply-drift", name, "--specs", str(specs.directory)])
            assert shown.exit_code == 0 and ddl + ";" in shown.output and "not applied" in shown.output, (
                shown.output
            )
            assert "note" not in _target_columns(stack, tgt)  # showing changes nothing
            applied = runner.invoke(cli, ["apply-drift", name, "--specs", str(specs.directory), "--yes"])
            assert applied.exit_code == 0 and "applied 1 statement(s)" in applied.output, applied.output
            assert "note" in _target_columns(stack, tgt)
            component = CdcPipelineComponent.from_attributes_dict(
                attributes={"specs_dir": str(specs.directory)}
            )
            after = component.build_defs_from_state(None, stored_catalog_path(specs.directory))  # type: ignore[arg-type]
            assert cheap(after)["schema_drift"].passed
            with pg_connect(stack, src) as conn:
                conn.execute("UPDATE t SET note = 'noted' WHERE id <= 3")
            read = "SELECT id, note FROM {} WHERE note IS NOT NULL ORDER BY id"
            wait_for_equal(lambda: pg_connect(stack, src).execute(read.format("t")).fetchall(),
                           lambda: pg_connect(stack, tgt).execute(read.format("replica.t")).fetchall())  # fmt: skip
            assert any(e.action == "apply_ddl" and ddl in (e.detail or "") for e in entries(pipeline=name))
        finally:
            teardown(stack, connect, specs, name)


@pytest.mark.parametrize("target_kind", ["postgresql", "mariadb"])
def test_drift_is_checked_and_applied_on_a_pipeline_nobody_refreshed(stack, connect, tmp_path, monkeypatch,
                                                                     target_kind):  # fmt: skip
    """Issue 37: named tables, no `cdc-platform refresh` ever: the drift check compares the source with
    what the run deployed, and `apply-drift` settles a change without a stored catalog."""
    from tests.support import mariadb_database

    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'metrics.sqlite'}")
    with (
        pg_database(stack, "src") as src,
        pg_database(stack, "tgt") if target_kind == "postgresql" else mariadb_database(stack, "tgt") as tgt,
    ):
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 50) g")
        name = unique("drift")
        schema = "replica" if target_kind == "postgresql" else tgt
        specs = write_specs(tmp_path / "specs", {"src": connection(stack, "postgresql", src),
                                                 "tgt": connection(stack, target_kind, tgt)},
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": schema,
                              "tables": {"names": ["public.t"]}}])  # fmt: skip
        assert not stored_catalog_path(specs.directory).exists()
        component = CdcPipelineComponent.from_attributes_dict(attributes={"specs_dir": str(specs.directory)})
        defs = component.build_defs_from_state(None, tmp_path / "never-refreshed")  # type: ignore[arg-type]
        instance = dg.DagsterInstance.ephemeral()
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        try:
            before = run_checks(defs, instance, ("schema_drift",))["schema_drift"]
            assert not before.passed and "has not deployed public.t yet" in before.description
            materialize(stack, specs, name, assets=assets, instance=instance)
            for _ in range(3):  # under no writer and under the same definitions, every time
                clean = run_checks(defs, instance, ("schema_drift",))["schema_drift"]
                assert clean.passed, clean.description
            with pg_connect(stack, src) as conn:
                conn.execute("ALTER TABLE t ADD COLUMN note text")
            drift = run_checks(defs, instance, ("schema_drift",))["schema_drift"]
            assert not drift.passed and "column 'note'" in drift.description, drift.description
            applied = CliRunner().invoke(cli, ["apply-drift", name, "--specs", str(specs.directory), "--yes"])
            assert applied.exit_code == 0 and "applied 1 statement(s)" in applied.output, applied.output
            after = run_checks(defs, instance, ("schema_drift",))["schema_drift"]
            assert after.passed, after.description
        finally:
            teardown(stack, connect, specs, name)
