"""The S3 writer: a sensor that flushes every S3 pipeline's new changes into Parquet change files.

Run-less on purpose: each tick writes what arrived since the last one and reports it as a
materialization of the table's asset (files, rows, bytes, committed offset, lag, rules applied),
so an asset's history reads as the table's change log and its numbers plot over time, without a
run per batch crowding the runs page. The tick is bounded (``TICK_BUDGET_SECONDS``) to stay inside
Dagster's sensor timeout; what is left waits for the next tick, whose interval is configurable.
One pipeline's failure is logged and does not stop the others.
"""

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.health.s3_heartbeat import read_heartbeat, record_heartbeat
from cdc_platform.pipeline.deployed import deployed_tables
from cdc_platform.pipeline.lifecycle import held
from cdc_platform.schema.model import Table

# The writer (Arrow, Parquet, the Kafka consumer, the S3 client) is imported when a tick runs:
# loading the code location only builds the sensor.
if TYPE_CHECKING:
    from cdc_platform.s3.changes import TableFlush
    from cdc_platform.s3.storage import TableLocation

#: seconds of one tick's flushing, shared by the pipelines (Dagster's sensor timeout is 60 s)
TICK_BUDGET_SECONDS = 40.0
#: the check on every S3 table: its captured changes are written (none stuck behind one that cannot be)
CHECK_NAME = "changes_written"
#: the outcome remembered for a pipeline whose flush failed as a whole (the endpoint or Kafka unreachable)
FLUSH_FAILED = "flush failed"


@dataclass(frozen=True)
class S3TableAsset:
    qualified: str
    topic: str
    target_schema: str
    target_name: str
    key: dg.AssetKey
    #: the stored catalog's table, used when the platform has no record of a deploy (older deploys)
    catalog_table: Table | None = None


@dataclass(frozen=True)
class S3Pipeline:
    pipeline: str
    source_kind: str
    target: str
    tables: tuple[S3TableAsset, ...]
    #: the pipeline's heartbeat topic, read after each flush (None: no heartbeat table)
    heartbeat_topic: str | None = None


def materialization(
    asset: S3TableAsset, result: "TableFlush", location: "TableLocation"
) -> dg.AssetMaterialization:
    metadata: dict = {
        "files_written": len(result.files),
        "rows": result.rows,
        "bytes": result.bytes,
        "committed_offset": sum(result.committed.values()),
        "lag_messages": sum(result.lag.values()),
        "path": dg.MetadataValue.path(location.uri),
    }
    if result.files:
        metadata["last_file"] = dg.MetadataValue.path(f"s3://{result.files[-1]}")
    if result.snapshots:
        metadata["iceberg_snapshot_id"] = dg.MetadataValue.text(str(result.snapshots[-1]))
        metadata["iceberg_commits"] = len(result.snapshots)
    if result.recovered:
        metadata["recovered_uncommitted_through"] = max(result.recovered.values())
    if result.substituted:
        metadata["values_substituted"] = sum(result.substituted.values())
        for column, count in sorted(result.substituted.items()):
            metadata[f"values_substituted/{column}"] = count
    return dg.AssetMaterialization(asset_key=asset.key, metadata=metadata,
                                   description="changes written to S3 by the platform's writer")  # fmt: skip


def evaluation(
    asset: S3TableAsset, result: "TableFlush | None", waiting: str | None = None
) -> dg.AssetCheckEvaluation:
    """The table's ``changes_written`` outcome: ERROR while its changes are stuck, named in words."""
    if result is None:
        return dg.AssetCheckEvaluation(asset_key=asset.key, check_name=CHECK_NAME, passed=False,
                                       severity=dg.AssetCheckSeverity.WARN, description=waiting,
                                       metadata={"state": "not deployed"})  # fmt: skip
    metadata = {"lag_messages": sum(result.lag.values()), "committed_offset": sum(result.committed.values())}
    if result.error:
        return dg.AssetCheckEvaluation(asset_key=asset.key, check_name=CHECK_NAME, passed=False,
                                       severity=dg.AssetCheckSeverity.ERROR, description=result.error,
                                       metadata={**metadata, "error": result.error})  # fmt: skip
    return dg.AssetCheckEvaluation(asset_key=asset.key, check_name=CHECK_NAME, passed=True, metadata=metadata,
                                   description=f"every captured change is written or pending "
                                   f"({sum(result.lag.values()):,} waiting for the next flush)")  # fmt: skip


def flush_failed(asset: S3TableAsset, message: str) -> dg.AssetCheckEvaluation:
    """A flush that failed as a whole (S3 or Kafka unreachable): nothing is lost, nothing committed;
    the changes wait in Kafka and the first tick that reaches both writes them."""
    return dg.AssetCheckEvaluation(
        asset_key=asset.key, check_name=CHECK_NAME, passed=False, severity=dg.AssetCheckSeverity.ERROR,
        description=f"the S3 writer's flush failed ({message}); the changes wait in Kafka, uncommitted, and "
        "the next tick that reaches the endpoint writes them",
        metadata={"state": FLUSH_FAILED, "error": message},
    )  # fmt: skip


def resolve_tables(p: S3Pipeline) -> tuple[list, str | None]:
    """(asset, Table) for each table the pipeline has deployed, and why the others wait (or None)."""

    deployed = deployed_tables(p.pipeline)
    ready = [(t, deployed.get(t.qualified) or t.catalog_table) for t in p.tables]
    waiting = [t.qualified for t, table in ready if table is None]
    why = None
    if waiting:
        why = (f"pipeline {p.pipeline} has not deployed {', '.join(waiting)} yet: materialize the pipeline "
               "(its full load and source connector) and the writer starts with the next flush")  # fmt: skip
    return [(t, table) for t, table in ready if table is not None], why


def flush_pipeline(p: S3Pipeline, specs, bootstrap: str, log, budget_seconds: float, dry_run: bool = False):
    """One flush (or dry run) of the pipeline's deployed tables: [(asset, location, result)], why others wait."""
    # lazy: keeps pyarrow off the code location's load path
    from cdc_platform.s3.changes import S3Table, flush_tables
    from cdc_platform.s3.iceberg_catalog import LakeNames
    from cdc_platform.s3.storage import TableLocation

    target = specs.connection(p.target)
    iceberg = target.table_format == "iceberg"
    ready, waiting = resolve_tables(p)
    located = [(t, table, TableLocation.of(target, t.target_schema, t.target_name)) for t, table in ready]
    if not located:
        return [], waiting
    results = flush_tables(
        target, specs.directory, bootstrap, p.pipeline, p.source_kind,
        [S3Table(t.qualified, t.topic, table, loc, LakeNames(t.target_schema, t.target_name) if iceberg else None)
         for t, table, loc in located],
        log, budget_seconds, dry_run=dry_run,
    )  # fmt: skip
    return [(t, loc, results[t.qualified]) for t, _, loc in located], waiting


def build_s3_writer_sensor(
    name: str, pipelines: list[S3Pipeline], interval_seconds: int
) -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Writes the S3 pipelines' captured changes to Parquet change files and commits their offsets.",
    )
    def _writer(context: dg.SensorEvaluationContext, cdc_settings: CdcSettingsResource):
        # lazy: keeps pyarrow off the code location's load path
        from cdc_platform.s3.changes import consumer_group

        specs = cdc_settings.specs()
        #: asset key -> the last outcome reported ("ok", "waiting" or the error): a check evaluation
        #: is recorded when it changes, not every tick
        reported: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        events: list = []
        failures: list[str] = []
        #: tables stopped at a change they cannot write: red on their check, not a failed tick
        stuck: list[str] = []
        notes: list[str] = []
        paused = held(p.pipeline for p in pipelines)
        for name, control in sorted(paused.items()):
            notes.append(f"{name} is {control.describe()}: its changes wait in Kafka until it is resumed")
        live = [p for p in pipelines if p.pipeline in specs.pipelines and p.pipeline not in paused]
        for p in live:
            try:
                flushed, waiting = flush_pipeline(p, specs, cdc_settings.kafka_bootstrap, context.log.info,
                                                  TICK_BUDGET_SECONDS / max(len(live), 1))  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one pipeline's failure must not stop the others
                failures.append(f"{p.pipeline}: {type(exc).__name__}: {exc}")
                context.log.error(
                    f"S3 writer, pipeline {p.pipeline} (group {consumer_group(p.pipeline)}): {exc}"
                )
                for t in p.tables:  # red on the tables once, when it starts; green at the next good flush
                    if reported.get(t.key.to_user_string()) != FLUSH_FAILED:
                        reported[t.key.to_user_string()] = FLUSH_FAILED
                        events.append(flush_failed(t, f"{type(exc).__name__}: {exc}"))
                continue
            if p.heartbeat_topic:
                try:
                    newest = read_heartbeat(cdc_settings.kafka_bootstrap, p.pipeline, p.heartbeat_topic)
                    if newest is not None:
                        record_heartbeat(p.pipeline, newest)
                except Exception as exc:  # noqa: BLE001 - the tables are written; the freshness figure waits
                    context.log.warning(
                        f"S3 writer, pipeline {p.pipeline}: reading its heartbeat failed: {exc}"
                    )
            if waiting:
                notes.append(waiting)
                for t in p.tables:
                    if t.qualified in waiting and reported.get(t.key.to_user_string()) != "waiting":
                        reported[t.key.to_user_string()] = "waiting"
                        events.append(evaluation(t, None, waiting))
            for asset, location, result in flushed:
                if result.files or result.snapshots or result.recovered:
                    events.append(materialization(asset, result, location))
                outcome = result.error or "ok"
                if reported.get(asset.key.to_user_string()) != outcome:
                    reported[asset.key.to_user_string()] = outcome
                    events.append(evaluation(asset, result))
                if result.error:
                    stuck.append(result.error)
        cursor = json.dumps(reported, sort_keys=True)
        if failures and not events:
            raise RuntimeError("the S3 writer wrote nothing: " + "; ".join(failures))
        if stuck:
            notes.insert(0, f"{len(stuck)} table(s) stopped at a change they cannot write (see their "
                            f"{CHECK_NAME} check): " + "; ".join(stuck))  # fmt: skip
        if not events:
            return dg.SensorResult(skip_reason=" ".join(notes) or "no new changes for the S3 pipelines",
                                   cursor=cursor)  # fmt: skip
        return dg.SensorResult(asset_events=events, cursor=cursor)

    return _writer


def build_s3_writer_checks(p: S3Pipeline) -> dg.AssetChecksDefinition:
    """``changes_written`` on demand: the pending changes decoded as the writer would, nothing written."""

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                CHECK_NAME,
                asset=t.key,
                description=f"Every change captured from {t.qualified} is written to S3 or waits for the "
                "next flush; none is stuck behind a value the writer cannot write. Evaluated by the "
                "S3 writer sensor when it changes, or on demand (a dry run of the pending changes).",
            )
            for t in p.tables
        ],  # fmt: skip
        name=f"{p.pipeline}_changes_written",
        can_subset=True,
    )
    def _checks(context: dg.AssetCheckExecutionContext, cdc_settings: CdcSettingsResource):
        specs = cdc_settings.specs()
        selected = {k.asset_key for k in context.selected_asset_check_keys}
        chosen = S3Pipeline(
            p.pipeline, p.source_kind, p.target, tuple(t for t in p.tables if t.key in selected)
        )
        flushed, waiting = flush_pipeline(chosen, specs, cdc_settings.kafka_bootstrap, context.log.info, 30.0,
                                          dry_run=True)  # fmt: skip
        done = set()
        for asset, _, result in flushed:
            done.add(asset.key)
            e = evaluation(asset, result)
            yield dg.AssetCheckResult(asset_key=e.asset_key, check_name=CHECK_NAME, passed=e.passed,
                                      severity=e.severity, metadata=e.metadata, description=e.description)  # fmt: skip
        for t in chosen.tables:
            if t.key not in done:
                yield dg.AssetCheckResult(asset_key=t.key, check_name=CHECK_NAME, passed=False,
                                          severity=dg.AssetCheckSeverity.WARN, description=waiting)  # fmt: skip

    return _checks
