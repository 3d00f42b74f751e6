"""An Iceberg target's current-state tables as assets: merged from their change logs, kept current by
an automation condition.

Each pipeline with an S3 target of ``table_format: iceberg`` gets one multi-asset holding its tables'
current states (subsettable, so one table merges on its own). A materialization merges what the
change log gained since the last merge (cdc_platform/s3/current_state.py) and reports the table's row
count, what changed, and the Iceberg snapshot it committed. The specs carry
``AutomationCondition.eager()``: the writer sensor's materializations of the change log make them
due, and this code location's own automation sensor evaluates them every ``lake_merge_seconds``, so
the current state trails the change log by at most that interval plus one run.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.pipeline.deployed import deployed_tables
from cdc_platform.schema.model import Table
from cdc_platform.specs.models import DEFAULT_SNAPSHOT_RETENTION_HOURS


@dataclass(frozen=True)
class CurrentStateTable:
    qualified: str
    target_schema: str
    target_name: str
    key: dg.AssetKey
    #: the stored catalog's table, used when the platform has no record of a deploy
    catalog_table: Table | None = None


def merge_metadata(result, identifier: str) -> dict:
    metadata: dict = {
        "dagster/row_count": result.total_rows,
        "changes_read": result.changes_read,
        "keys_changed": result.keys_changed,
        "rows_written": result.rows_written,
        "rows_deleted": result.rows_deleted,
        "iceberg_table": dg.MetadataValue.text(identifier),
    }
    if result.snapshot_id is not None:
        metadata["iceberg_snapshot_id"] = dg.MetadataValue.text(str(result.snapshot_id))
    if result.through_snapshot is not None:
        metadata["change_log_snapshot_id"] = dg.MetadataValue.text(str(result.through_snapshot))
    return metadata


def housekeeping(change_log, current, merged_through: int | None, retention_hours: int, identifier: str,
                 log) -> dict:  # fmt: skip
    """The tables' maintenance after a merge, as metadata; a failure is logged and named there (the
    merge is committed, and the next merge's maintenance tries again)."""
    # lazy: pyiceberg and Arrow only when a merge runs
    from cdc_platform.s3.lake_maintenance import maintain

    try:
        done = maintain(change_log, current, merged_through, retention_hours)
    except Exception as exc:  # noqa: BLE001 - the merge stands; maintenance is retried at the next one
        log.warning(f"{identifier}: maintenance failed: {type(exc).__name__}: {exc}")
        return {"maintenance_error": dg.MetadataValue.text(f"{type(exc).__name__}: {exc}")}
    for note in done.notes:
        log.info(f"{identifier}: {note}")
    return {"snapshots_expired": done.snapshots_expired, "files_deleted": done.files_deleted,
            "files_compacted": done.files_compacted, "snapshot_retention_hours": retention_hours}  # fmt: skip


def build_current_state_assets(
    pipeline: str, target: str, specs: Sequence[dg.AssetSpec], tables: Sequence[CurrentStateTable]
) -> dg.AssetsDefinition:
    by_key = {t.key: t for t in tables}

    @dg.multi_asset(specs=list(specs), name=f"{pipeline}_current_state", can_subset=True)
    def _merge(context: dg.AssetExecutionContext, cdc_settings: CdcSettingsResource):
        # lazy: pyiceberg and Arrow only when a merge runs
        from cdc_platform.s3.current_state import merge_current
        from cdc_platform.s3.iceberg_catalog import LakeNames, lake_catalog
        from cdc_platform.s3.iceberg_tables import ensure_lake_tables
        from cdc_platform.s3.lake_maintenance import due

        loaded = cdc_settings.specs()
        catalog = lake_catalog(loaded.connection(target), loaded.directory)
        retention = loaded.connection(target).snapshot_retention_hours or DEFAULT_SNAPSHOT_RETENTION_HOURS
        deployed = deployed_tables(pipeline)
        failures = []
        for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
            t = by_key[key]
            table = deployed.get(t.qualified) or t.catalog_table
            identifier = f"{t.target_schema}.{t.target_name}"
            if table is None:
                failures.append(f"{identifier}: pipeline {pipeline} has not deployed {t.qualified} yet; "
                                "materialize the pipeline first")  # fmt: skip
                continue
            if not table.primary_key:
                failures.append(f"{identifier}: {t.qualified} has no primary key, so no row can be told from "
                                f"another; read its change log {identifier}_changes instead")  # fmt: skip
                continue
            change_log, current = ensure_lake_tables(
                catalog, LakeNames(t.target_schema, t.target_name), table
            )
            result = merge_current(change_log, current, list(table.primary_key), identifier, context.log.info)
            context.log.info(
                f"{identifier}: {result.changes_read:,} changes read, {result.keys_changed:,} keys changed, "
                f"{result.rows_deleted:,} rows deleted; {result.total_rows:,} rows"
            )
            metadata = merge_metadata(result, identifier)
            if due(current.refresh()):
                metadata.update(housekeeping(change_log.refresh(), current.refresh(), result.through_snapshot,
                                             retention, identifier, context.log))  # fmt: skip
            yield dg.MaterializeResult(asset_key=key, metadata=metadata)
        if failures:
            raise dg.Failure("; ".join(failures))

    return _merge


def build_merge_sensor(name: str, keys: Sequence[dg.AssetKey], interval_seconds: int):
    """The automation sensor of this location's current-state tables: how often their conditions
    are evaluated is the delay a user configures (``lake_merge_seconds``)."""
    return dg.AutomationConditionSensorDefinition(
        name,
        target=dg.AssetSelection.assets(*keys),
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Merges the Iceberg change logs into their current-state tables when the S3 writer has "
        "committed new changes.",
    )
