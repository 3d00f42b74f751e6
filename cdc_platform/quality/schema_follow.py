"""Following the source's schema: safe changes applied to the target by the platform, unsafe ones
held for a person, and a person's review applied.

How the platform learns of a change: it reads the captured tables' columns on the source
(``information_schema``, one query per table) every few seconds, from the ``schema_changes`` sensor,
and compares them with the table as deployed. That works the same for every source kind, needs no
DDL trigger or extra privilege on the source, and sees a change whether or not a row has used it yet:
a widened column is widened on the target before the application that needed it ships its first
long value, in the usual order of a migration. (A value written within the same few seconds as the
DDL can still reach the sink first; the sink then fails on it, and the next tick applies the DDL and
restarts the failed task, with no row lost: the sink's offsets only advance past written rows.)

Decisions come from ``schema/policy.py`` and the pipeline's ``schema_changes`` policy. Every applied
statement goes to the audit log with its reason; the tables are recorded as deployed anew, so the
``schema_drift`` check and the S3 writer follow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from cdc_platform.alerts.channels import Notice, send
from cdc_platform.alerts.history import AlertHistory
from cdc_platform.alerts.rules import AlertConfig, load_alert_config
from cdc_platform.audit import acting_as, record
from cdc_platform.engines.kinds import target_traits
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.pipeline.deployed import deployed_tables, update_deployed
from cdc_platform.pipeline.lifecycle import Intent, connectors_of, control_of, pause, resume
from cdc_platform.pipeline.plan import PipelineNames, target_table_name
from cdc_platform.quality.drift import Drift, apply_ddl, measure_drift, measure_file_drift
from cdc_platform.schema.discovery import discover_pipeline_tables
from cdc_platform.schema.model import Table
from cdc_platform.specs.loader import Specs
from cdc_platform.specs.models import SafeChanges, UnsafeChanges

#: the reason a pipeline paused by the platform for a schema change carries (and how it is recognised)
SCHEMA_HOLD = "schema change held for review"
#: the alert rule of a held change (a built-in; the alerts file may route or disable it)
HELD_RULE = "schema_change_held"
PLATFORM_ACTOR = "platform (schema changes)"


@dataclass
class TableFollow:
    qualified: str
    drift: Drift
    applied: list[str] = field(default_factory=list)
    held: bool = False


@dataclass
class FollowOutcome:
    pipeline: str
    tables: list[TableFollow] = field(default_factory=list)
    paused: bool = False
    skipped: str | None = None
    #: the tables as the source has them now, for the stored catalog to follow
    refreshed: list[Table] = field(default_factory=list)

    @property
    def applied(self) -> list[TableFollow]:
        return [t for t in self.tables if not t.held]

    @property
    def held(self) -> list[TableFollow]:
        return [t for t in self.tables if t.held]

    def summary(self) -> str:
        if self.skipped:
            return f"{self.pipeline}: {self.skipped}"
        parts = [f"{t.qualified}: applied {len(t.applied)} statement(s)" for t in self.applied]
        parts += [f"{t.qualified}: held ({'; '.join(c.description for c in t.drift.unsafe or t.drift.changes)})"
                  for t in self.held]  # fmt: skip
        return f"{self.pipeline}: " + ("; ".join(parts) if parts else "no schema change")


def followed_pipelines(specs: Specs) -> list[str]:
    """Streaming pipelines: their source schemas are followed (into a database by DDL, into S3 by the
    columns the writer's next files carry)."""
    return sorted(name for name, loaded in specs.pipelines.items() if loaded.spec.streams)


def _to_files(specs: Specs, pipeline: str) -> bool:
    spec = specs.pipelines[pipeline].spec
    return not target_traits(specs.connection(spec.target).kind.value).sink_connector


def held_for_schema(pipeline: str) -> bool:
    control = control_of(pipeline)
    return (
        control is not None
        and control.intent is Intent.PAUSED
        and (control.reason or "").startswith(SCHEMA_HOLD)
    )


def _measure(specs: Specs, pipeline: str, tables: list[str] | None = None) -> list[TableFollow]:
    spec = specs.pipelines[pipeline].spec
    measured = []
    for qualified, stored in sorted(deployed_tables(pipeline).items()):
        if tables and qualified not in tables:
            continue
        if _to_files(specs, pipeline):
            drift = measure_file_drift(specs, spec, stored)
        else:
            drift = measure_drift(specs, spec, stored, target_table_name(spec, qualified))
        measured.append(TableFollow(qualified, drift))
    return measured


def _record_deployed(specs: Specs, pipeline: str, tables: list[str]) -> list[Table]:
    """The tables as the source has them now (declared keys applied) become the deployed record. For
    an S3 target, the columns the source dropped stay in it as *kept*: the files go on carrying them."""
    spec = specs.pipelines[pipeline].spec
    now = discover_pipeline_tables(spec, specs.connection(spec.source), specs.directory)
    before = deployed_tables(pipeline) if _to_files(specs, pipeline) else {}
    for table in now:
        if table.qualified in tables:
            present = {c.name for c in table.columns}
            kept = tuple(replace(c, nullable=True, kept=True) for c in before[table.qualified].columns
                         if c.name not in present) if table.qualified in before else ()  # fmt: skip
            update_deployed(pipeline, replace(table, columns=table.columns + kept))
    return now


def follow_schema(specs: Specs, pipeline: str, connect: KafkaConnectResource,
                  alerts: AlertConfig | None = None) -> FollowOutcome:  # fmt: skip
    """One look at the pipeline's source tables: apply what the policy lets the platform apply, hold
    the rest. A pipeline paused or stopped (by a person, or held already) is left as it is."""
    outcome = FollowOutcome(pipeline)
    control = control_of(pipeline)
    if control is not None and control.holds_still:
        outcome.skipped = f"{control.intent.value}: schema changes wait for it to resume"
        return outcome
    policy = specs.pipelines[pipeline].spec.schema_changes
    spec = specs.pipelines[pipeline].spec
    measured = _measure(specs, pipeline)
    outcome.tables = [t for t in measured if not t.drift.clean]
    _resolve_alerts(pipeline, [t.qualified for t in measured if t.drift.clean])
    settled: list[str] = []
    for table in outcome.tables:
        if table.drift.unsafe or policy.safe is SafeChanges.review:
            table.held = True
            continue
        why = "source change: " + "; ".join(c.description for c in table.drift.changes)
        with acting_as(PLATFORM_ACTOR):
            if table.drift.proposed_ddl:
                apply_ddl(specs, spec, table.drift.proposed_ddl, why=why)
            table.applied = table.drift.proposed_ddl
            record("schema.followed", table.qualified, pipeline=pipeline, detail=why)
        settled.append(table.qualified)
    if settled:
        outcome.refreshed = _record_deployed(specs, pipeline, settled)
        retyped = any(c.kind == "widened" and c.ddl for t in outcome.applied for c in t.drift.changes)
        if _to_files(specs, pipeline):
            pass  # the platform's writer reads the new record at its next flush
        elif retyped:
            renew_sink(pipeline, connect)
        else:
            restart_failed_sink(pipeline, connect)
    if outcome.held:
        _hold(specs, pipeline, connect, outcome, alerts or load_alert_config(specs.directory))
    return outcome


def renew_sink(pipeline: str, connect: KafkaConnectResource) -> None:
    """Restart every sink task after a column changed type on the target: its pooled connections hold
    prepared statements whose parameter types the server fixed from the old column type (a bigint
    parameter refuses the text a column turned varchar now holds), and new tasks prepare them anew."""
    with acting_as(PLATFORM_ACTOR):
        connect.restart(PipelineNames(pipeline).sink_connector, only_failed=False, include_tasks=True)


def restart_failed_sink(pipeline: str, connect: KafkaConnectResource) -> bool:
    """A sink that met a change before its DDL was applied (a value written in the same moment as the
    DDL, or its own ``ADD COLUMN`` racing the platform's) failed on it; once the target follows, it
    runs again at once instead of waiting for the health sensor's backoff. Returns whether it did."""
    sink = PipelineNames(pipeline).sink_connector
    status = connect.status(sink) or {}
    if not any(t.get("state") == "FAILED" for t in status.get("tasks", [])):
        return False
    with acting_as(PLATFORM_ACTOR):
        connect.restart(sink, only_failed=True, include_tasks=True)
    return True


def _hold_text(table: TableFollow) -> str:
    changes = table.drift.unsafe or table.drift.changes
    text = f"{table.qualified}: " + "; ".join(c.description for c in changes)
    if table.drift.proposed_ddl:
        text += " -- proposed target DDL: " + "; ".join(table.drift.proposed_ddl)
    return text


def _hold(specs: Specs, pipeline: str, connect: KafkaConnectResource, outcome: FollowOutcome,
          alerts: AlertConfig) -> None:  # fmt: skip
    policy = specs.pipelines[pipeline].spec.schema_changes
    texts = [_hold_text(t) for t in outcome.held]
    if policy.unsafe is UnsafeChanges.pause:
        with acting_as(PLATFORM_ACTOR):
            pause(
                pipeline,
                connectors_of(specs, pipeline),
                connect,
                reason=f"{SCHEMA_HOLD}: " + " | ".join(texts),
            )
        outcome.paused = True
    rule = next((r for r in alerts.rules if r.name == HELD_RULE), None)
    if rule is None:
        return  # disabled in the alerts file
    history, now = AlertHistory(), time.time()
    review = (f"Review with `cdc-platform apply-drift {pipeline}`; apply with `--yes` (or the cdc_apply_drift job)"
              + (", which also resumes the pipeline." if outcome.paused else "."))  # fmt: skip
    for table, text in zip(outcome.held, texts, strict=True):
        if history.open_alert(HELD_RULE, pipeline, table.qualified) is not None:
            continue
        held = "paused the pipeline" if outcome.paused else "the pipeline runs on (policy unsafe: alert)"
        message = f"A source schema change {held}: {text}. {review}"
        alert = history.open(HELD_RULE, pipeline, table.qualified, rule.severity.value, message,
                             float(len(table.drift.unsafe or table.drift.changes)), now)  # fmt: skip
        notice = Notice("triggered", alert.id, HELD_RULE, pipeline, table.qualified, alert.severity, message,
                        alert.value, now)  # fmt: skip
        for channel in alerts.channels_of(rule):
            result = send(alerts.channels[channel], notice, specs.directory)
            history.record_notification(alert.id, channel, "triggered", result.ok, result.error, now)
        if not alerts.channels_of(rule):
            history.mark_notified(alert.id, now)


def _resolve_alerts(pipeline: str, tables: list[str]) -> None:
    """A held change that was applied (or undone on the source) no longer alerts."""
    history = AlertHistory()
    for name in tables:
        alert = history.open_alert(HELD_RULE, pipeline, name)
        if alert is not None:
            history.resolve(alert.id, time.time())


@dataclass
class Review:
    """What ``apply-drift`` shows, then applies on request."""

    pipeline: str
    tables: list[TableFollow]

    @property
    def statements(self) -> list[str]:
        return [s for t in self.tables for s in t.drift.proposed_ddl]


def review(specs: Specs, pipeline: str, tables: list[str] | None = None) -> Review:
    return Review(pipeline, [t for t in _measure(specs, pipeline, tables) if not t.drift.clean])


def apply_review(
    specs: Specs, pipeline: str, connect: KafkaConnectResource | None, reviewed: Review
) -> list[Table]:
    """Run the reviewed statements, record the tables as deployed anew, resolve their held-change
    alerts, and resume the pipeline when the platform had paused it for a schema change."""
    spec = specs.pipelines[pipeline].spec
    if _to_files(specs, pipeline):
        retyped = [c.description for t in reviewed.tables for c in t.drift.unsafe if c.kind != "added"]
        if retyped:
            raise ValueError(
                "an S3 target's files cannot change a column's type or name (readers could no longer merge the "
                "older files with the newer): "
                + "; ".join(retyped)
                + ". Keep the pipeline paused, or tear it "
                "down and deploy it again into a new prefix"
            )
    if reviewed.statements:
        apply_ddl(specs, spec, reviewed.statements, why="reviewed source change (apply-drift)")
    names = [t.qualified for t in reviewed.tables]
    now = _record_deployed(specs, pipeline, names)
    _resolve_alerts(pipeline, names)
    if connect is not None:
        if held_for_schema(pipeline):
            resume(
                pipeline, connectors_of(specs, pipeline), connect, reason="schema change applied after review"
            )
        if reviewed.statements and target_traits(specs.connection(spec.target).kind.value).sink_connector:
            renew_sink(pipeline, connect)  # also a sink that failed on the change meanwhile
    return now
