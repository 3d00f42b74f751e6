"""What the S3 writers (the sensor, the writer runs) share: the pipelines and tables they write, one
flush of a pipeline, and how a flush is reported (the table's materialization, its ``changes_written``
check, the heartbeat it read)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from cdc_platform.health.s3_heartbeat import read_heartbeat, record_heartbeat
from cdc_platform.pipeline.deployed import deployed_tables
from cdc_platform.schema.model import Table

# The writer (Arrow, Parquet, the Kafka consumer, the S3 client) is imported when a flush runs:
# loading the code location only builds the sensor.
if TYPE_CHECKING:
    from cdc_platform.s3.changes import TableFlush
    from cdc_platform.s3.storage import TableLocation

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
    asset: S3TableAsset, result: "TableFlush", location: "TableLocation", share: str | None = None
) -> dg.AssetMaterialization:
    metadata: dict = {
        "files_written": len(result.files),
        "rows": result.rows,
        "bytes": result.bytes,
        "committed_offset": sum(result.committed.values()),
        "lag_messages": sum(result.lag.values()),
        "path": dg.MetadataValue.path(location.uri),
    }
    if share is not None:
        metadata["writer"] = dg.MetadataValue.text(share)
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


def flush_pipeline(p: S3Pipeline, specs, bootstrap: str, log, budget_seconds: float, dry_run: bool = False,
                   share=None):  # fmt: skip
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
        log, budget_seconds, dry_run=dry_run, share=share,
    )  # fmt: skip
    return [(t, loc, results[t.qualified]) for t, _, loc in located], waiting


def record_pipeline_heartbeat(p: S3Pipeline, bootstrap: str, warn: Callable[[str], None]) -> None:
    """The newest heartbeat the pipeline's topic holds, stored for its freshness and latency figures."""
    if not p.heartbeat_topic:
        return
    try:
        newest = read_heartbeat(bootstrap, p.pipeline, p.heartbeat_topic)
        if newest is not None:
            record_heartbeat(p.pipeline, newest)
    except Exception as exc:  # noqa: BLE001 - the tables are written; the freshness figure waits
        warn(f"S3 writer, pipeline {p.pipeline}: reading its heartbeat failed: {exc}")
