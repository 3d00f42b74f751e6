"""The ``schema_changes`` sensor (every 5 s) and the ``apply_drift`` job: the pipelines' source
schemas followed from Dagster (``quality/schema_follow.py`` decides and acts).

Each applied change and each held one is an observation on the affected table asset, so the table's
page says what the platform did to it and why; the tick's line names the pipelines it looked at.
"""

import json
import time
from pathlib import Path

import dagster as dg

from cdc_platform.audit import acting_as, run_actor
from cdc_platform.dagster.catalog import follow_catalog
from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.quality.schema_follow import (
    FollowOutcome,
    apply_review,
    follow_schema,
    followed_pipelines,
    restart_failed_sink,
    review,
)
from cdc_platform.specs.loader import load_specs

#: how often the source's columns are read: the time a widened column can wait for its target
SCHEMA_INTERVAL_SECONDS = 5
#: for this long after a change was applied, a FAILED sink task is restarted by this sensor (its
#: failure is the change it met in the same moment as the DDL, not a fault for the health sensor)
SETTLE_SECONDS = 60


def _observations(outcome: FollowOutcome, tables: dict[str, dg.AssetKey]) -> list[dg.AssetObservation]:
    events = []
    for t in outcome.tables:
        if t.qualified not in tables:
            continue
        changes = [c.description for c in t.drift.changes]
        if t.held:
            what = "held for review" + (" (pipeline paused)" if outcome.paused else "")
        else:
            what = "applied by the platform"
        events.append(dg.AssetObservation(
            asset_key=tables[t.qualified],
            description=f"source schema change {what}: " + "; ".join(changes),
            metadata={"schema_change": what, "source_changes": dg.MetadataValue.json(changes),
                      "target_ddl": dg.MetadataValue.md("```sql\n" + ";\n".join(t.drift.proposed_ddl) + ";\n```")
                      if t.drift.proposed_ddl else "none"},
        ))  # fmt: skip
    return events


def build_schema_changes_sensor(name: str, tables: dict[str, dict[str, dg.AssetKey]]) -> dg.SensorDefinition:
    """``tables``: pipeline -> source schema.table -> its target table's asset key."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=SCHEMA_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reads the captured tables' columns on each source and follows them on the target: safe "
        "changes (new columns, widenings, dropped columns kept NULL-able) applied and audited, the rest "
        "held for review with an alert (pipeline paused, per the spec's schema_changes policy).",
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        cdc_settings: CdcSettingsResource,
        kafka_connect: KafkaConnectResource,
    ) -> dg.SensorResult:
        specs = load_specs(Path(cdc_settings.specs_dir))
        now = time.time()
        applied_at: dict[str, float] = {
            p: at for p, at in json.loads(context.cursor or "{}").items() if now - at < SETTLE_SECONDS
        }
        events: list[dg.AssetObservation] = []
        lines: list[str] = []
        for pipeline in [p for p in followed_pipelines(specs) if p in tables]:
            try:
                outcome = follow_schema(specs, pipeline, kafka_connect)
            except Exception as exc:  # noqa: BLE001 - one pipeline's source being down stops no other
                context.log.warning(f"{pipeline}: schema not followed this tick: {type(exc).__name__}: {exc}")
                lines.append(f"{pipeline}: unreadable")
                continue
            if outcome.refreshed:
                follow_catalog(specs, pipeline, outcome.refreshed)
                applied_at[pipeline] = now
            elif (
                pipeline in applied_at
                and not outcome.skipped
                and restart_failed_sink(pipeline, kafka_connect)
            ):
                context.log.info(
                    f"{pipeline}: restarted the sink task that failed on the change just applied"
                )
            if outcome.tables:
                log = context.log.warning if outcome.held else context.log.info
                log(outcome.summary())
            events += _observations(outcome, tables[pipeline])
            lines.append(outcome.summary())
        return dg.SensorResult(asset_events=events, cursor=json.dumps(applied_at),
                               skip_reason="; ".join(lines) or "no streaming pipeline")  # fmt: skip

    return _sensor


class ApplyDriftConfig(dg.Config):
    pipeline: str
    tables: list[str] = []


def build_apply_drift_job(name: str) -> dg.JobDefinition:
    @dg.op(name=f"{name}_op")
    def _apply(
        context: dg.OpExecutionContext,
        config: ApplyDriftConfig,
        cdc_settings: CdcSettingsResource,
        kafka_connect: KafkaConnectResource,
    ) -> None:
        specs = load_specs(Path(cdc_settings.specs_dir))
        if config.pipeline not in specs.pipelines:
            raise dg.Failure(f"no pipeline {config.pipeline!r}; known: {', '.join(sorted(specs.pipelines))}")
        reviewed = review(specs, config.pipeline, config.tables or None)
        if not reviewed.tables:
            context.log.info(f"pipeline {config.pipeline}: no schema change to apply")
            return
        for table in reviewed.tables:
            for change in table.drift.changes:
                context.log.info(f"{table.qualified}: {change.description}")
        with acting_as(run_actor(context)):
            refreshed = apply_review(specs, config.pipeline, kafka_connect, reviewed)
        follow_catalog(specs, config.pipeline, refreshed)
        context.log.info(
            f"applied {len(reviewed.statements)} statement(s): " + "; ".join(reviewed.statements)
        )

    @dg.job(name=name, description="Apply the source schema changes held for review (config: pipeline, tables) "
            "and resume a pipeline the platform paused for them; what it runs is in the run's log and the "
            "audit log.", tags={"cdc/kind": "schema"})  # fmt: skip
    def _job():
        _apply()

    return _job
