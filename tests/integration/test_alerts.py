"""Alerts on the real stack: a lag rule driven by a paused sink, evaluated by the alert sensor through
Dagster's machinery on the figures the metrics job stores; e-mail to a real SMTP server and webhooks
to a real HTTP server on opening and on resolving; history, acknowledgement and the CLI."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from cdc_platform.alerts.history import AlertHistory
from cdc_platform.cli import cli
from cdc_platform.health.metrics_store import MetricsStore
from tests.faults import wait_task_state
from tests.pipeline_support import (
    component_defs,
    materialize,
    pg_to_pg_specs,
    teardown,
)
from tests.support import pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration

HOLD_SECONDS = 8


def test_a_lag_rule_fires_after_its_duration_and_resolves_by_mail_and_webhook(
    stack,
    connect,
    tmp_path,
    monkeypatch,
    httpserver,
    smtp,
):
    controller, inbox, _ = smtp
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'metrics.sqlite'}")
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g")
        name = unique("alerting")
        specs = pg_to_pg_specs(stack, tmp_path / "specs", src, tgt, name, ["public.t"])
        (specs.directory / "alerts.yaml").write_text(yaml.safe_dump({"alerts": {
            "defaults": {"channels": ["mail", "hook"], "stale_after": "2m"},
            "channels": {
                "mail": {"kind": "email", "smtp_host": "127.0.0.1", "smtp_port": controller.port, "tls": "none",
                         "sender": "cdc@example.com", "recipients": ["oncall@example.com"]},
                "hook": {"kind": "webhook", "url": httpserver.url_for("/hook"), "format": "slack"}},
            "rules": [{"name": "sink_lag", "metric": "lag_messages", "subject": "sink", "above": 50,
                       "for": f"{HOLD_SECONDS}s", "resolve_after": 0, "severity": "critical"}],
        }}))  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        collect_job = defs.resolve_job_def("cdc_collect_metrics")
        sensor = defs.get_sensor_def("cdc_alerts")
        settings = defs.resources["cdc_settings"]

        def tick():
            result = sensor(dg.build_sensor_context(instance=instance, resources={"cdc_settings": settings}))
            return [e for e in result.asset_events or [] if isinstance(e, dg.AssetObservation)]

        sink = f"{name}-sink"
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            assert collect_job.execute_in_process(instance=instance).success
            assert tick() == [] and inbox.messages == []

            # the sink paused while the source writes: the lag rises above the threshold
            connect.pause(sink)
            wait_task_state(connect, sink, "PAUSED")  # a pause takes effect a moment later
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t SELECT g, 'late' FROM generate_series(101, 400) g")
            # the rule's duration counts from the first collection that sees the lag: on a busy machine
            # the source can take seconds to publish the rows, so wait for that collection
            deadline = time.monotonic() + 60
            while True:
                assert collect_job.execute_in_process(instance=instance).success
                if MetricsStore().latest(name).get(("sink", "lag_messages"), (0, 0))[1] > 50:
                    break
                assert time.monotonic() < deadline, "the paused sink's lag never rose above 50"
                time.sleep(1)
            held_since = time.monotonic()
            assert tick() == [], "opened before the lag held for the rule's duration"
            time.sleep(HOLD_SECONDS + 1)
            collect_job.execute_in_process(instance=instance)
            opened = tick()
            assert time.monotonic() - held_since >= HOLD_SECONDS
            assert [o.metadata["alert_state"].value for o in opened] == ["triggered"]
            assert opened[0].asset_key == dg.AssetKey([name, "sink_connector"])
            assert opened[0].metadata["alert_channels_sent"].value == 2
            (mail,) = inbox.messages
            assert f"[FIRING] [critical] {name}: sink_lag (sink)" in mail.content.decode()
            hook = json.loads(httpserver.log[-1][0].get_data())
            assert hook["text"].startswith("[FIRING]")
            (alert,) = AlertHistory().listing()
            assert alert.rule == "sink_lag" and alert.value >= 300

            # still lagging: one incident, no second alert; acknowledged from the UI's job
            collect_job.execute_in_process(instance=instance)
            assert tick() == []
            ack = defs.resolve_job_def("cdc_acknowledge_alert")
            assert ack.execute_in_process(instance=instance, run_config={"ops": {"cdc_acknowledge_alert_op": {
                "config": {"alert_id": alert.id, "by": "ana"}}}}).success  # fmt: skip
            assert AlertHistory().get(alert.id).acknowledged_by == "ana"

            # the sink back: lag drains, the alert resolves and says so on both channels
            connect.resume(sink)
            wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall(),
                           lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall())  # fmt: skip
            time.sleep(2)  # the sink commits its offsets every second
            collect_job.execute_in_process(instance=instance)
            resolved = tick()
            assert [o.metadata["alert_state"].value for o in resolved] == ["resolved"]
            assert len(inbox.messages) == 2 and "[RESOLVED]" in inbox.messages[-1].content.decode()
            assert json.loads(httpserver.log[-1][0].get_data())["text"].startswith("[RESOLVED]")
            history = json.loads(CliRunner().invoke(cli, ["alerts", "--all", "--json"]).output)
            assert (
                history[0]["state"] == "resolved" and history[0]["resolved_at"] > history[0]["triggered_at"]
            )
            assert history[0]["notifications_sent"] == 4
            assert "no open alerts" in CliRunner().invoke(cli, ["alerts"]).output
        finally:
            teardown(stack, connect, specs, name)
