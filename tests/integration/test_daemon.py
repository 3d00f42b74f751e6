"""End to end through `dagster-daemon`: the code location as users run it (workspace.yaml), the
health and alert sensors and the metrics schedule running by default. A sink task is made to fail:
the daemon's sensor records the failed check and restarts the task, the alert sensor sends an e-mail
and a webhook, and once it is repaired the check passes and the resolved notifications follow; the
recovery's consistency checks run in Dagster's asset job without materializing anything; the
audit log shows the sensor's restart, and the schedule's runs leave lag observations on the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from cdc_platform.alerts.history import AlertHistory
from cdc_platform.audit import entries
from tests.faults import BLOCKER, wait_task_state
from tests.pipeline_support import pg_to_pg_specs, teardown
from tests.support import pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration


def latest_check(instance: dg.DagsterInstance, key: dg.AssetKey):
    record = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(key, "connector_running"))
    if record is None or record.event is None:
        return None
    return record.event.asset_check_evaluation


def wait_for(predicate, what: str, timeout: float, log_file) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(3)
    log_file.flush()
    raise AssertionError(
        f"timed out waiting for {what}; daemon log tail:\n{Path(log_file.name).read_text()[-4000:]}"
    )


def test_the_daemon_runs_the_health_sensor_and_the_metrics_schedule(
    stack, connect, tmp_path, httpserver, smtp
):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g")
        name = unique("daemon")
        specs = pg_to_pg_specs(stack, tmp_path / "specs", src, tgt, name, ["public.t"])
        controller, inbox, _ = smtp
        httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
        (specs.directory / "alerts.yaml").write_text(yaml.safe_dump({"alerts": {
            "defaults": {"channels": ["mail", "hook"]},
            "channels": {
                "mail": {"kind": "email", "smtp_host": "127.0.0.1", "smtp_port": controller.port, "tls": "none",
                         "sender": "cdc@example.com", "recipients": ["oncall@example.com"]},
                "hook": {"kind": "webhook", "url": httpserver.url_for("/hook")}},
            "rules": [{"name": "sink_connector_failed", "metric": "connector_running", "subject": "sink",
                       "below": 1, "resolve_after": 0, "severity": "critical"}],
        }}))  # fmt: skip
        home = tmp_path / "home"
        home.mkdir()
        env = {**os.environ, "CDC_SPECS_DIR": str(specs.directory), "DAGSTER_HOME": str(home)}
        root = stack.project_root
        for args in (["-m", "cdc_platform.cli", "refresh"],
                     ["-m", "dagster", "asset", "materialize", "-m", "cdc_platform.definitions", "--select", f"group:{name}"]):  # fmt: skip
            done = subprocess.run(
                [sys.executable, *args], env=env, cwd=root, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, done.stderr[-3000:]
        sink_key = dg.AssetKey([name, "sink_connector"])
        table_key = dg.AssetKey(["tgt", "replica", "t"])
        log = open(tmp_path / "daemon.log", "w")  # noqa: SIM115 - the daemon writes to it until the finally
        daemon = subprocess.Popen([sys.executable, "-m", "dagster._daemon", "run", "-w", "workspace.yaml"],
                                  env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                healthy = wait_for(lambda: (e := latest_check(instance, sink_key)) and e.passed and e,
                                   "a passed connector_running check from the daemon", 120, log)  # fmt: skip
                assert healthy.metadata["state"].value == "RUNNING"

                with pg_connect(stack, tgt) as conn:
                    conn.execute(BLOCKER)
                    conn.execute("INSERT INTO replica.block VALUES ('on')")
                with pg_connect(stack, src) as conn:
                    conn.execute("INSERT INTO t VALUES (101, 'refused for a while')")
                wait_task_state(connect, f"{name}-sink", "FAILED")
                failed = wait_for(lambda: (e := latest_check(instance, sink_key)) and not e.passed and e,
                                  "a failed connector_running check", 90, log)  # fmt: skip
                assert "blocked by the test" in failed.metadata["last_error"].value
                # the alert sensor reads the figure the health sensor stored, and tells people
                wait_for(lambda: inbox.messages, "the alert e-mail", 90, log)
                assert (
                    f"[FIRING] [critical] {name}: sink_connector_failed (sink)"
                    in inbox.messages[0].content.decode()
                )
                # the webhook is a separate delivery: it may land a moment after the e-mail
                wait_for(lambda: httpserver.log, "the alert webhook", 30, log)
                hooks = [json.loads(r.get_data()) for r, _ in httpserver.log]
                assert (
                    hooks and hooks[0]["kind"] == "triggered" and hooks[0]["rule"] == "sink_connector_failed"
                )
                with pg_connect(stack, tgt) as conn:
                    conn.execute("DELETE FROM replica.block")
                # the sensor's first restart comes 30 s after the failure was seen; then the pipeline catches up
                wait_for(lambda: (e := latest_check(instance, sink_key)) and e.passed and e.metadata["restarts"].value >= 1,
                         "a restart by the sensor and a passed check", 180, log)  # fmt: skip
                wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall(),
                               lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall())  # fmt: skip
                wait_for(
                    lambda: any(b"[RESOLVED]" in m.content for m in inbox.messages),
                    "the resolved e-mail",
                    90,
                    log,
                )
                platform_db = f"sqlite:///{home / 'cdc_metrics.sqlite'}"
                (alert,) = [
                    a for a in AlertHistory(platform_db).listing(include_resolved=True) if a.pipeline == name
                ]
                assert alert.rule == "sink_connector_failed" and alert.resolved_at > alert.triggered_at
                restarted = [
                    e for e in entries(pipeline=name, url=platform_db) if e.action == "connector.restarted"
                ]
                assert restarted and restarted[0].actor == "sensor cdc_connect_health"

                # after the recovery the sensor asks for the counts and checksums; the daemon runs them in
                # Dagster's asset job, the checks alone
                (recovery,) = wait_for(lambda: instance.get_runs(dg.RunsFilter(
                    job_name="__ASSET_JOB", tags={"cdc/pipeline": name},
                    statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE])),
                    "the recovery run of the consistency checks", 180, log)  # fmt: skip
                assert recovery.status == dg.DagsterRunStatus.SUCCESS
                assert "cdc/recovered" in recovery.tags and not recovery.asset_selection
                assert {(k.asset_key, k.name) for k in recovery.asset_check_selection or []} == {
                    (table_key, "row_count_parity"), (table_key, "checksum_reconciliation")}  # fmt: skip
                for check in ("row_count_parity", "checksum_reconciliation"):
                    record = instance.get_latest_asset_check_evaluation_record(
                        dg.AssetCheckKey(table_key, check)
                    )
                    assert record.run_id == recovery.run_id and record.event.asset_check_evaluation.passed, (
                        check
                    )
                assert all(
                    r.run_id != recovery.run_id
                    for r in instance.fetch_materializations(table_key, limit=5).records
                )

                runs = wait_for(lambda: instance.get_runs(dg.RunsFilter(job_name="cdc_collect_metrics",
                                                                        statuses=[dg.DagsterRunStatus.SUCCESS])),
                                "a successful cdc_collect_metrics run launched by the schedule", 150, log)  # fmt: skip
                assert runs
                observed = instance.fetch_observations(table_key, limit=5).records
                assert observed and "lag_messages" in observed[0].asset_observation.metadata
        finally:
            os.killpg(daemon.pid, 15)
            daemon.wait(timeout=60)
            log.close()
            teardown(stack, connect, specs, name)
