"""The S3 writer: a sensor that flushes every S3 pipeline's new changes into Parquet change files.

Run-less on purpose: each tick writes what arrived since the last one and reports it as a
materialization of the table's asset (files, rows, bytes, committed offset, lag, rules applied),
so an asset's history reads as the table's change log and its numbers plot over time, without a
run per batch crowding the runs page. The tick is bounded (``TICK_BUDGET_SECONDS``) to stay inside
Dagster's sensor timeout; what is left waits for the next tick, whose interval is configurable.
One pipeline's failure is logged and does not stop the others.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from cdc_platform.assets import CdcSettingsResource
from cdc_platform.schema.model import Table

# The writer (Arrow, Parquet, the Kafka consumer, the S3 client) is imported when a tick runs:
# loading the code location only builds the sensor.
if TYPE_CHECKING:
    from cdc_platform.s3.changes import TableFlush
    from cdc_platform.s3.storage import TableLocation

#: seconds of one tick's flushing, shared by the pipelines (Dagster's sensor timeout is 60 s)
TICK_BUDGET_SECONDS = 40.0


@dataclass(frozen=True)
class S3TableAsset:
    qualified: str
    topic: str
    table: Table
    target_schema: str
    target_name: str
    key: dg.AssetKey


@dataclass(frozen=True)
class S3Pipeline:
    pipeline: str
    source_kind: str
    target: str
    tables: tuple[S3TableAsset, ...]


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
    if result.recovered:
        metadata["recovered_uncommitted_through"] = max(result.recovered.values())
    if result.substituted:
        metadata["values_substituted"] = sum(result.substituted.values())
        for column, count in sorted(result.substituted.items()):
            metadata[f"values_substituted/{column}"] = count
    return dg.AssetMaterialization(asset_key=asset.key, metadata=metadata,
                                   description="changes written to S3 by the platform's writer")  # fmt: skip


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
        from cdc_platform.s3.changes import S3Table, consumer_group, flush_tables
        from cdc_platform.s3.storage import TableLocation
        from cdc_platform.specs.loader import load_specs

        specs = load_specs(Path(cdc_settings.specs_dir))
        events: list[dg.AssetMaterialization] = []
        failures: list[str] = []
        live = [p for p in pipelines if p.pipeline in specs.pipelines]
        for p in live:
            target = specs.connection(p.target)
            tables = {
                t.qualified: (t, TableLocation.of(target, t.target_schema, t.target_name)) for t in p.tables
            }
            try:
                results = flush_tables(
                    target, specs.directory, cdc_settings.kafka_bootstrap, p.pipeline, p.source_kind,
                    [S3Table(q, t.topic, t.table, loc) for q, (t, loc) in tables.items()],
                    context.log.info, TICK_BUDGET_SECONDS / max(len(live), 1),
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one pipeline's failure must not stop the others
                failures.append(f"{p.pipeline}: {type(exc).__name__}: {exc}")
                context.log.error(
                    f"S3 writer, pipeline {p.pipeline} (group {consumer_group(p.pipeline)}): {exc}"
                )
                continue
            for qualified, result in results.items():
                if result.files or result.recovered:
                    asset, location = tables[qualified]
                    events.append(materialization(asset, result, location))
        if failures and not events:
            raise RuntimeError("the S3 writer wrote nothing: " + "; ".join(failures))
        if not events:
            return dg.SkipReason("no new changes for the S3 pipelines")
        return dg.SensorResult(asset_events=events)

    return _writer
