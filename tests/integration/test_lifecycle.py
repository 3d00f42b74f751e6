"""A pipeline's life steered by a person, on the real stack: paused under writes through the Dagster
job (as the launchpad runs it), left alone by the health sensor and refused by a materialization
while paused, shown as PAUSED by `status`, resumed from the CLI with no gap and no duplicate; a
failed sink restarted by `cdc-platform restart`. Every action is in the audit log with who did it."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from cdc_platform.audit import entries
from cdc_platform.cli import cli
from cdc_platform.health.collect import heartbeat_figures, pipeline_watch
from cdc_platform.health.metrics_store import MetricsStore
from tests.dagster_support import Ticker
from tests.faults import BLOCKER, SlowWriter, wait_task_state
from tests.pipeline_support import (
    component_defs,
    materialize,
    pg_to_pg_specs,
    teardown,
)
from tests.support import pg_connect, pg_database, pg_inserter, unique, wait_for_equal

pytestmark = pytest.mark.integration


def _connector_states(connect, *names: str) -> dict[str, set[str]]:
    states = {}
    for name in names:
        status = connect.status(name) or {}
        states[name] = {
            status.get("connector", {}).get("state"),
            *(t["state"] for t in status.get("tasks", [])),
        }
    return states


def _wait_states(connect, names: tuple[str, ...], state: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(s == {state} for s in _connector_states(connect, *names).values()):
            return
        time.sleep(0.5)
    raise AssertionError(f"not all {state}: {_connector_states(connect, *names)}")


def _status(specs, name: str) -> dict:
    out = CliRunner().invoke(cli, ["status", name, "--specs", str(specs.directory), "--json"])
    assert out.exit_code in (0, 4), out.output  # 4: a task failed
    return json.loads(out.output)[0]


def test_pause_holds_the_pipeline_against_sensor_and_materialization_and_resume_loses_nothing(
    stack, connect, tmp_path, monkeypatch
):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'platform.sqlite'}")
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 300) g")
        name = unique("life")
        specs = pg_to_pg_specs(
            stack, tmp_path, src, tgt, name, ["public.t"], options={"heartbeat_interval_ms": 1000}
        )
        # the slot guard at a threshold any paused pipeline under writes crosses, and a lag rule that
        # would fire too if held pipelines were not muted for everything but their source's log
        (specs.directory / "alerts.yaml").write_text(yaml.safe_dump({"alerts": {"rules": [
            {"name": "slot_wal_retained", "metric": "slot_retained_wal_bytes", "subject": "source", "above": 0,
             "severity": "warning"},
            {"name": "sink_lag", "metric": "lag_messages", "subject": "sink", "above": 0, "severity": "warning"},
        ]}}))  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs, restart_first_delay_seconds=0, grace_seconds=0)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        source, sink = f"{name}-source", f"{name}-sink"
        writer = SlowWriter(pg_inserter(stack, src), 1000)
        src_rows = lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall()  # noqa: E731
        tgt_rows = lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall()  # noqa: E731
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            assert _status(specs, name)["state"] == "RUNNING"
            writer.start()
            time.sleep(2)

            # paused from the launchpad's job, by a named user
            paused = defs.resolve_job_def("cdc_pause").execute_in_process(
                run_config={"pipeline": name, "reason": "target maintenance"}, instance=instance,
                tags={"dagster/user": "ops@example.com"},
            )  # fmt: skip
            assert paused.success
            _wait_states(connect, (source, sink), "PAUSED")
            held_at = len(tgt_rows())
            row = _status(specs, name)
            assert row["state"] == "PAUSED", row
            assert "ops@example.com" in row["state_reason"] and "target maintenance" in row["state_reason"]

            # the sensor reports it and leaves it alone: no restart, no resume, no failure figure
            ticker = Ticker(defs, instance, connect)
            for _ in range(3):
                ticker.tick()
                time.sleep(1)
            for role in ("source_connector", "sink_connector"):
                check = ticker.latest[role]
                assert check.passed and "paused on purpose" in check.description, check.description
                assert check.metadata["pipeline_state"].value == "PAUSED"
            # every table the pipeline writes shows it is held (a warning, not a failure)
            table = ticker.latest["t"]
            assert table.check_name == "pipeline_running" and not table.passed
            assert table.severity == dg.AssetCheckSeverity.WARN and "PAUSED" in table.description
            assert ticker.said.startswith("0 of 1 pipeline(s) RUNNING") and f"{name} PAUSED" in ticker.said
            assert ticker.memory(sink).restarts == 0
            assert _connector_states(connect, source, sink) == {source: {"PAUSED"}, sink: {"PAUSED"}}
            store = MetricsStore()
            assert store.series(name, "sink", "connector_running", since=0) == []
            assert [v for _, v in store.series(name, "pipeline", "state_code", since=0)][-1] == 2.0

            # the paused pipeline's slot keeps WAL for it: that still reaches someone; its lag does not
            assert defs.resolve_job_def("cdc_collect_metrics").execute_in_process(instance=instance).success
            alerts = defs.get_sensor_def("cdc_alerts")
            ticked = alerts(
                dg.build_sensor_context(
                    instance=instance, resources={"cdc_settings": defs.resources["cdc_settings"]}
                )
            )
            opened = [e for e in ticked.asset_events or [] if isinstance(e, dg.AssetObservation)]
            assert [o.metadata["alert_rule"].value for o in opened] == ["slot_wal_retained"], opened
            assert opened[0].asset_key == dg.AssetKey([name, "source_connector"])
            assert "slot_wal_retained (warning)" in ticked.skip_reason.skip_message

            # the latency reported while nothing flows is not the last one measured, but the stall's
            beat = pipeline_watch(specs, name, None).heartbeat
            deadline = time.monotonic() + 30
            while (figures := heartbeat_figures(specs, name, beat))["heartbeat_age_seconds"] < 3:
                assert time.monotonic() < deadline, figures
                time.sleep(0.5)
            assert figures["latency_seconds"] >= figures["heartbeat_age_seconds"] >= 3, figures

            # a materialization does not start it behind the operator's back
            refused = dg.materialize([assets], instance=instance, resources=defs.resources, raise_on_error=False,
                                     selection=[dg.AssetKey([name, "sink_connector"])])  # fmt: skip
            assert not refused.success
            failure = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
            assert "is paused by" in str(failure.event_specific_data.error) and "resume it first" in str(
                failure.event_specific_data.error
            )
            assert _connector_states(connect, source, sink) == {source: {"PAUSED"}, sink: {"PAUSED"}}
            assert len(tgt_rows()) == held_at, "nothing is applied while paused"

            # resumed from the CLI: every change written meanwhile arrives once, in order
            resumed = CliRunner().invoke(cli, ["resume", name, "--specs", str(specs.directory)])
            assert resumed.exit_code == 0, resumed.output
            assert f"pipeline {name}: resumed {source}, {sink}" in resumed.output
            time.sleep(3)
            writer.stop_event.set()
            writer.join()
            assert writer.errors == 0 and writer.next_id > 1040
            wait_for_equal(src_rows, tgt_rows)
            ticker.until(lambda e: all(e[r].passed and e[r].metadata["pipeline_state"].value == "RUNNING"
                                       for r in ("source_connector", "sink_connector", "t")))  # fmt: skip
            # (other tests' connectors on the shared worker may follow, as orphans)
            assert ticker.said.startswith(f"1 of 1 pipeline(s) RUNNING. {name} RUNNING"), ticker.said
            assert _status(specs, name)["state"] == "RUNNING"

            actions = {e.action: e.actor for e in entries(pipeline=name)}
            assert "ops@example.com" in actions["pipeline.paused"]
            assert actions["pipeline.resumed"].endswith("(cli)")
            assert "connector.paused" in actions and "connector.resumed" in actions
        finally:
            writer.stop_event.set()
            teardown(stack, connect, specs, name)


def test_restart_brings_a_failed_sink_back_and_refuses_a_paused_pipeline(
    stack, connect, tmp_path, monkeypatch
):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'platform.sqlite'}")
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g")
        name = unique("restart")
        specs = pg_to_pg_specs(stack, tmp_path, src, tgt, name, ["public.t"])
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        sink = f"{name}-sink"
        cli_args = ["--specs", str(specs.directory)]
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            with pg_connect(stack, tgt) as conn:
                conn.execute(BLOCKER)
                conn.execute("INSERT INTO replica.block VALUES ('on')")
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t VALUES (51, 'refused at first')")
            wait_task_state(connect, sink, "FAILED")
            row = _status(specs, name)
            assert row["state"] == "ERROR" and f"{sink} task 0 FAILED" in row["state_reason"], row
            assert "blocked by the test" in row["state_reason"]

            with pg_connect(stack, tgt) as conn:
                conn.execute("DELETE FROM replica.block")
            restarted = CliRunner().invoke(cli, ["restart", name, *cli_args])
            assert restarted.exit_code == 0, restarted.output
            assert "restarted the failed tasks of" in restarted.output
            wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall(),
                           lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall())  # fmt: skip
            assert _status(specs, name)["state"] == "RUNNING"

            # paused, a restart is refused with what to do instead; stop and resume work from the CLI too
            assert CliRunner().invoke(cli, ["pause", name, *cli_args]).exit_code == 0
            refused = CliRunner().invoke(cli, ["restart", name, *cli_args])
            assert refused.exit_code == 1 and "resume it instead of restarting it" in refused.output
            assert CliRunner().invoke(cli, ["stop", name, *cli_args]).exit_code == 0
            _wait_states(connect, (f"{name}-source", sink), "STOPPED")
            assert _status(specs, name)["state"] == "STOPPED"
            assert CliRunner().invoke(cli, ["resume", name, *cli_args]).exit_code == 0
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t VALUES (52, 'after the stop')")
            wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall(),
                           lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall())  # fmt: skip
            assert [e.action for e in entries(pipeline=name) if e.action.startswith("pipeline.")] == [
                "pipeline.resumed", "pipeline.stopped", "pipeline.paused", "pipeline.restarted",
            ]  # fmt: skip
        finally:
            teardown(stack, connect, specs, name)
