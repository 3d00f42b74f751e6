"""Data-quality asset checks on every replicated table: row-count parity, schema drift, and freshness.

One ``@multi_asset_check`` per pipeline, subsettable: the UI, ``dagster asset check`` or the
quality schedule can run any one check of any table. A table the source cannot describe, or whose
target is unreachable, fails its own checks and says why; the other tables are still checked.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from cdc_platform.assets import CdcSettingsResource
from cdc_platform.catalog import PipelineCatalog
from cdc_platform.health.metrics_store import MetricsStore
from cdc_platform.pipeline.plan import PipelineNames, table_topic, target_table_name
from cdc_platform.quality.counts import compare_counts
from cdc_platform.quality.drift import schema_drift
from cdc_platform.specs.loader import LoadedPipeline, Specs

COUNT_CHECK = "row_count_parity"
DRIFT_CHECK = "schema_drift"
FRESHNESS_CHECK = "replication_freshness"
#: heartbeat age above which a table's replication is stale
FRESHNESS_SECONDS = 300.0


@dataclass(frozen=True)
class CheckedTable:
    qualified: str
    asset_key: dg.AssetKey
    target_table: str


def quality_check_specs(pipeline: str, tables: list[CheckedTable], streams: bool) -> list[dg.AssetCheckSpec]:
    specs = []
    for t in tables:
        specs.append(dg.AssetCheckSpec(COUNT_CHECK, asset=t.asset_key, description=
                     f"{t.qualified} and its target hold the same number of rows, allowing only for changes in "
                     "flight between the two counts (bounded by Kafka offsets; an idle table must match exactly)."))  # fmt: skip
        specs.append(dg.AssetCheckSpec(DRIFT_CHECK, asset=t.asset_key, description=
                     f"{t.qualified}'s columns now match the stored catalog and the target; differences are shown "
                     "with the DDL that would apply them (never applied by the check)."))  # fmt: skip
        if streams:
            specs.append(dg.AssetCheckSpec(FRESHNESS_CHECK, asset=t.asset_key, description=
                         f"Pipeline {pipeline}'s latest heartbeat reached the target less than "
                         f"{FRESHNESS_SECONDS:.0f} s ago (from the metrics schedule)."))  # fmt: skip
    return specs


def build_quality_checks(loaded: LoadedPipeline, specs: Specs, catalog: PipelineCatalog | None,
                         tables: list[CheckedTable]) -> dg.AssetChecksDefinition:  # fmt: skip
    spec = loaded.spec
    name = spec.name

    @dg.multi_asset_check(specs=quality_check_specs(name, tables, spec.streams), name=f"{name}_quality",
                          can_subset=True)  # fmt: skip
    def _checks(context: dg.AssetCheckExecutionContext, cdc_settings: CdcSettingsResource):
        from cdc_platform.schema.discovery import describe_table
        from cdc_platform.specs.loader import load_specs

        live = load_specs(Path(cdc_settings.specs_dir))
        source, target = live.connection(spec.source), live.connection(spec.target)
        selected = {(k.asset_key, k.name) for k in context.selected_asset_check_keys}
        for t in tables:
            if (t.asset_key, COUNT_CHECK) in selected:
                yield _count_result(t, source, target, live, cdc_settings)
            if (t.asset_key, DRIFT_CHECK) in selected:
                yield _drift_result(t, source, target, live, catalog, describe_table)
            if (t.asset_key, FRESHNESS_CHECK) in selected:
                yield _freshness_result(t, name)

    def _count_result(t, source, target, live, cdc_settings) -> dg.AssetCheckResult:
        schema, table = t.qualified.split(".", 1)
        stream = None
        if spec.streams:
            names = PipelineNames(name)
            stream = (cdc_settings.kafka_bootstrap, table_topic(source, names, t.qualified),
                      f"connect-{names.sink_connector}")  # fmt: skip
        try:
            c = compare_counts(source, target, live.directory, (schema, table), (spec.target_schema, t.target_table),
                               stream=stream)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - this table's check fails and says why; the others run
            return _unreadable(t, COUNT_CHECK, exc)
        metadata = {"source_rows": c.source_rows, "target_rows": c.target_rows, "difference": c.difference,
                    "attempts": c.attempts, "seconds": round(c.seconds, 3)}  # fmt: skip
        if c.in_flight_bound is not None:
            metadata["in_flight_bound"] = c.in_flight_bound
        if c.difference == 0:
            summary = f"{c.source_rows:,} rows on both sides"
        elif c.agrees:
            summary = (f"{c.difference:+,} rows, within the {c.in_flight_bound:,} changes in flight between the "
                       "counts (a busy table; no divergence shown)")  # fmt: skip
        else:
            summary = (f"source {c.source_rows:,} vs target {c.target_rows:,} rows ({c.difference:+,}), more than the "
                       f"{c.in_flight_bound or 0:,} changes in flight can explain")  # fmt: skip
        return dg.AssetCheckResult(asset_key=t.asset_key, check_name=COUNT_CHECK, passed=c.agrees,
                                   severity=dg.AssetCheckSeverity.ERROR, metadata=metadata, description=summary)  # fmt: skip

    def _drift_result(t, source, target, live, catalog, describe_table) -> dg.AssetCheckResult:
        schema, table = t.qualified.split(".", 1)
        stored = catalog.table(t.qualified) if catalog else None
        if stored is None:
            return dg.AssetCheckResult(asset_key=t.asset_key, check_name=DRIFT_CHECK, passed=False,
                                       severity=dg.AssetCheckSeverity.WARN,
                                       description="no stored catalog for this table: run `cdc-platform refresh`")  # fmt: skip
        try:
            from cdc_platform.db import engine_for

            source_engine, target_engine = (
                engine_for(source, live.directory),
                engine_for(target, live.directory),
            )
            try:
                now = describe_table(source_engine, source.kind.value, schema, table)
                target_columns = {c.name for c in describe_table(target_engine, target.kind.value,
                                                                 spec.target_schema, t.target_table).columns}  # fmt: skip
            finally:
                source_engine.dispose()
                target_engine.dispose()
        except Exception as exc:  # noqa: BLE001 - this table's check fails and says why; the others run
            return _unreadable(t, DRIFT_CHECK, exc)
        d = schema_drift(stored, now, target_columns, target.kind.value, spec.target_schema, t.target_table)
        metadata = {"added": dg.MetadataValue.json(d.added), "dropped": dg.MetadataValue.json(d.dropped),
                    "renamed": dg.MetadataValue.json(d.renamed), "type_changed": dg.MetadataValue.json(d.type_changed),
                    "nullability_changed": dg.MetadataValue.json(d.nullability_changed),
                    "missing_on_target": dg.MetadataValue.json(d.missing_on_target)}  # fmt: skip
        if d.proposed_ddl:
            metadata["proposed_ddl"] = dg.MetadataValue.md("```sql\n" + ";\n".join(d.proposed_ddl) + ";\n```")
        if d.clean:
            return dg.AssetCheckResult(asset_key=t.asset_key, check_name=DRIFT_CHECK, passed=True, metadata=metadata,
                                       description="the source's columns match the catalog and the target")  # fmt: skip
        severity = dg.AssetCheckSeverity.ERROR if d.errors else dg.AssetCheckSeverity.WARN
        return dg.AssetCheckResult(asset_key=t.asset_key, check_name=DRIFT_CHECK, passed=False, severity=severity,
                                   metadata=metadata, description="; ".join(d.errors + d.warnings))  # fmt: skip

    def _freshness_result(t, pipeline: str) -> dg.AssetCheckResult:
        latest = MetricsStore().latest(pipeline).get(("pipeline", "heartbeat_age_seconds"))
        if latest is None:
            return dg.AssetCheckResult(asset_key=t.asset_key, check_name=FRESHNESS_CHECK, passed=False,
                                       severity=dg.AssetCheckSeverity.WARN,
                                       description="no heartbeat figure yet (the metrics schedule records it)")  # fmt: skip
        measured_at, age = latest
        staleness = age + max(time.time() - measured_at, 0)
        return dg.AssetCheckResult(
            asset_key=t.asset_key, check_name=FRESHNESS_CHECK, passed=staleness < FRESHNESS_SECONDS,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"heartbeat_age_seconds": round(staleness, 1), "threshold_seconds": FRESHNESS_SECONDS},
            description=f"the target is at most {staleness:.0f} s behind the source",
        )  # fmt: skip

    return _checks


def _unreadable(t: CheckedTable, check: str, exc: Exception) -> dg.AssetCheckResult:
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return dg.AssetCheckResult(asset_key=t.asset_key, check_name=check, passed=False,
                               severity=dg.AssetCheckSeverity.ERROR, description=f"could not check: {reason}",
                               metadata={"error": reason})  # fmt: skip


def checked_tables(loaded: LoadedPipeline, catalog: PipelineCatalog | None, key_of) -> list[CheckedTable]:
    """The pipeline's table assets (the stored catalog's tables, else the named ones)."""
    from cdc_platform.assets import selected_tables

    spec = loaded.spec
    qualified = selected_tables(loaded, catalog)
    return [
        CheckedTable(q, key_of(spec, target_table_name(spec, q)), target_table_name(spec, q))
        for q in qualified
    ]
