"""The alert sensor (every 30 s) and the job that acknowledges an alert from the UI.

The sensor reads the stored figures, never Kafka Connect, so it alerts while Connect is down. Each
opened, reminded or resolved alert is sent to its rule's channels (a failing channel is logged and
recorded, the others still send) and recorded as an observation on the affected asset: the sink
connector for the sink and the pipeline's latency, the source connector for the source, the table
for a table's figures. It launches no runs.
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from cdc_platform.alerts.channels import Notice, send
from cdc_platform.alerts.evaluate import evaluate
from cdc_platform.alerts.history import AlertHistory
from cdc_platform.alerts.rules import load_alert_config
from cdc_platform.audit import acting_as, run_actor, run_user
from cdc_platform.dagster.metrics_job import WatchedAssets
from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.health.metrics_store import MetricsStore
from cdc_platform.pipeline.lifecycle import held

# What a tick runs (HTTP and SMTP clients, the alert and metrics stores) is imported when it runs:
# loading the code location only builds the sensor.
if TYPE_CHECKING:
    from cdc_platform.alerts.channels import Notice
    from cdc_platform.alerts.evaluate import Transition


def asset_of(w: WatchedAssets, subject: str) -> dg.AssetKey:
    if subject == "source":
        return w.source_connector
    return w.tables.get(subject, w.sink_connector)


def notice_of(t: "Transition") -> "Notice":

    a = t.alert
    return Notice(t.kind, a.id, a.rule, a.pipeline, a.subject, a.severity, a.message, a.value, a.triggered_at,
                  a.resolved_at)  # fmt: skip


def build_alert_sensor(
    name: str, watched: list[WatchedAssets], interval_seconds: int = 30
) -> dg.SensorDefinition:
    by_pipeline = {w.watch.pipeline: w for w in watched}

    @dg.sensor(
        name=name,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Evaluates the alert rules (built-in, and the specs' `alerts:` file) on the stored metrics; "
        "sends e-mail and webhooks, records history, and marks the affected asset. Launches no runs.",
    )
    def _sensor(context: dg.SensorEvaluationContext, cdc_settings: CdcSettingsResource) -> dg.SensorResult:

        specs_dir = Path(cdc_settings.specs_dir)
        config = load_alert_config(specs_dir)
        history = AlertHistory()
        now = time.time()
        transitions = evaluate(
            config, sorted(by_pipeline), MetricsStore(), history, now, set(held(by_pipeline))
        )
        events = []
        for t in transitions:
            notice = notice_of(t)
            sent = 0
            for channel_name in config.channels_of(t.rule):
                outcome = send(config.channels[channel_name], notice, specs_dir)
                history.record_notification(t.alert.id, channel_name, t.kind, outcome.ok, outcome.error, now)
                if outcome.ok:
                    sent += 1
                else:
                    context.log.warning(f"alert {t.alert.id}: channel {channel_name} failed: {outcome.error}")
            channels = config.channels_of(t.rule)
            if t.kind != "resolved" and not sent:
                history.mark_notified(t.alert.id, now)  # in-app only: reminders still follow the interval
                context.log.warning(
                    f"alert #{t.alert.id} ({t.alert.rule}) reached no one: "
                    + ("every channel failed (see above)" if channels else "no channel is configured for it; "
                       "add one in the specs' alerts.yaml (`channels:` and the rule's `channels`)")
                )  # fmt: skip
            log = context.log.info if t.kind == "resolved" else context.log.warning
            log(f"{notice.title}: {t.alert.message}")
            delivery = f"{sent} of {len(channels)} channel(s)" if channels else "no channel configured"
            events.append(dg.AssetObservation(
                asset_key=asset_of(by_pipeline[t.alert.pipeline], t.alert.subject),
                description=f"ALERT {t.kind.upper()} #{t.alert.id} {t.alert.rule} ({t.alert.severity}): "
                            f"{t.alert.message} [notified: {delivery}]",
                metadata={"alert_id": t.alert.id, "alert_rule": t.alert.rule, "alert_state": t.kind,
                          "alert_severity": t.alert.severity, "alert_message": dg.MetadataValue.text(t.alert.message),
                          "alert_channels_sent": sent, "alert_delivery": delivery},
            ))  # fmt: skip
        return dg.SensorResult(asset_events=events, skip_reason=open_alerts_line(history, set(by_pipeline)))

    return _sensor


class AcknowledgeConfig(dg.Config):
    alert_id: int
    #: who acknowledges; a run launched through the production proxy is acknowledged by its signed-in
    #: user whatever this says (nobody acknowledges in another's name)
    by: str = ""


def build_acknowledge_job(name: str) -> dg.JobDefinition:
    @dg.op(name=f"{name}_op")
    def _ack(context: dg.OpExecutionContext, config: AcknowledgeConfig) -> None:

        by = run_user(context) or config.by
        if not by:
            raise dg.Failure(
                "say who acknowledges the alert: config `by` (a signed-in user's run needs none)"
            )
        with acting_as(run_actor(context)):
            alert = AlertHistory().acknowledge(config.alert_id, by)
        context.log.info(f"alert {alert.id} ({alert.rule}, {alert.pipeline} {alert.subject}) acknowledged by "
                         f"{by}: no reminders until it resolves")  # fmt: skip

    @dg.job(name=name, description="Acknowledge an open alert (config: alert_id, and by unless signed in); it stops re-notifying "
            "until it resolves.", tags={"cdc/kind": "alerts"})  # fmt: skip
    def _job():
        _ack()

    return _job


def open_alerts_line(history: AlertHistory, pipelines: set[str]) -> str:
    """What the tick leaves open, in one line for the sensor's page (e.g. "1 open: sink_connector_failed
    (critical) on orders sink since 18:15:51 UTC")."""
    opened = [a for a in history.listing() if a.pipeline in pipelines]
    if not opened:
        return f"no open alert on {len(pipelines)} pipeline(s)"
    shown = "; ".join(
        f"#{a.id} {a.rule} ({a.severity}) on {a.pipeline} {a.subject} since "
        f"{time.strftime('%H:%M:%S', time.gmtime(a.triggered_at))} UTC"
        + (f", acknowledged by {a.acknowledged_by}" if a.acknowledged_by else "")
        for a in opened[:10]
    )
    return f"{len(opened)} open: {shown}" + (" ..." if len(opened) > 10 else "")
