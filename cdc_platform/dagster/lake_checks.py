"""Row-count parity and checksum reconciliation on an Iceberg target's current-state tables, the same
two checks (names, severities, schedules) the database targets have, judged against the pinned
current state and the changes in flight (cdc_platform/quality/lake_reconcile.py)."""

import dagster as dg

from cdc_platform.dagster.lake_assets import CurrentStateTable
from cdc_platform.dagster.quality_checks import record_outcome
from cdc_platform.dagster.quality_results import describe_differences
from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.health.s3_heartbeat import stored_heartbeat_figures
from cdc_platform.pipeline.deployed import deployed_tables
from cdc_platform.pipeline.plan import PipelineNames, table_topic
from cdc_platform.specs.loader import LoadedPipeline
from cdc_platform.specs.models import CHECKSUM_CHECK, COUNT_CHECK, FRESHNESS_CHECK

LAKE_CHECKS = {
    FRESHNESS_CHECK: "Pipeline {p}'s latest heartbeat reached the change log less than {s:.0f} s ago (read by the "
    "S3 writer; the current state trails it by up to lake_merge_seconds).",
    COUNT_CHECK: "{t} and its current-state table hold as many rows, but for changes in flight (bounded by Kafka "
    "offsets from the table's last merge).",
    CHECKSUM_CHECK: "Every row of {t} is in its current-state table with the same values, down to the keys that "
    "differ (changes in flight not judged).",
}


def _count_result(key: dg.AssetKey, r, severity) -> dg.AssetCheckResult:
    difference = r.source_rows - r.target_rows
    metadata = {"source_rows": r.source_rows, "target_rows": r.target_rows, "difference": difference,
                "in_flight_bound": r.in_flight, "seconds": round(r.seconds, 3)}  # fmt: skip
    if difference == 0:
        summary = f"{r.source_rows:,} rows on both sides"
    elif r.counts_agree:
        summary = (
            f"{difference:+,} rows, within the {r.in_flight:,} changes not yet merged (no divergence shown)"
        )
    else:
        summary = (f"source {r.source_rows:,} vs current state {r.target_rows:,} rows ({difference:+,}), more than "
                   f"the {r.in_flight:,} changes not yet merged can explain")  # fmt: skip
    return dg.AssetCheckResult(asset_key=key, check_name=COUNT_CHECK, passed=r.counts_agree, severity=severity,
                               metadata=metadata, description=summary)  # fmt: skip


def _checksum_result(key: dg.AssetKey, r, severity) -> dg.AssetCheckResult:
    metadata = {"source_rows": r.source_rows, "target_rows": r.target_rows, "seconds": round(r.seconds, 3),
                "not_judged_in_flight": r.not_judged,
                "differences": dg.MetadataValue.json([d.as_dict() for d in r.differences])}  # fmt: skip
    if r.snapshot_id is not None:
        metadata["iceberg_snapshot_id"] = dg.MetadataValue.text(str(r.snapshot_id))
    if r.agrees:
        summary = f"{r.source_rows:,} rows agree value for value"
        if r.not_judged:
            summary += f" ({r.not_judged:,} keys with changes not yet merged not judged)"
    else:
        summary = describe_differences(r.differences, r.truncated)
    return dg.AssetCheckResult(asset_key=key, check_name=CHECKSUM_CHECK, passed=r.agrees, severity=severity,
                               metadata=metadata, description=summary)  # fmt: skip


def _freshness_result(key: dg.AssetKey, pipeline: str, threshold: float, severity) -> dg.AssetCheckResult:
    figures = stored_heartbeat_figures(pipeline)
    if not figures:
        return dg.AssetCheckResult(asset_key=key, check_name=FRESHNESS_CHECK, passed=False,
                                   severity=dg.AssetCheckSeverity.WARN,
                                   description="no heartbeat has reached the change log yet")  # fmt: skip
    age = figures["heartbeat_age_seconds"]
    metadata = {"heartbeat_age_seconds": round(age, 1), "latency_seconds": round(figures["latency_seconds"], 1),
                "threshold_seconds": threshold}  # fmt: skip
    return dg.AssetCheckResult(asset_key=key, check_name=FRESHNESS_CHECK, passed=age < threshold, severity=severity,
                               metadata=metadata, description=f"the change log is at most {age:.0f} s behind the source")  # fmt: skip


def build_lake_checks(loaded: LoadedPipeline, tables: list[CurrentStateTable]) -> dg.AssetChecksDefinition:
    spec = loaded.spec
    quality = spec.quality
    specs = [
        dg.AssetCheckSpec(check, asset=t.key, blocking=quality.policy(check).blocking,
                          description=text.format(t=t.qualified, p=spec.name, s=quality.freshness_seconds))
        for t in tables
        for check, text in LAKE_CHECKS.items()
        if quality.policy(check).enabled and (check != FRESHNESS_CHECK or spec.streams)
    ]  # fmt: skip

    @dg.multi_asset_check(specs=specs, name=f"{spec.name}_lake_quality", can_subset=True)
    def _checks(context: dg.AssetCheckExecutionContext, cdc_settings: CdcSettingsResource):
        # lazy: pyiceberg, Arrow and the Kafka consumer only when a check runs
        from cdc_platform.quality.lake_reconcile import LakeSide, count_lake_table, reconcile_lake_table

        live = cdc_settings.specs()
        deployed = deployed_tables(spec.name)
        selected = {(k.asset_key, k.name) for k in context.selected_asset_check_keys}
        source = live.connection(spec.source)
        for t in tables:
            if (t.key, FRESHNESS_CHECK) in selected:
                result = _freshness_result(t.key, spec.name, quality.freshness_seconds,
                                           dg.AssetCheckSeverity(quality.policy(FRESHNESS_CHECK).severity))  # fmt: skip
                record_outcome(context, spec.name, t.qualified, FRESHNESS_CHECK, result)
                yield result
            for check, measure, report in ((COUNT_CHECK, count_lake_table, _count_result),
                                           (CHECKSUM_CHECK, reconcile_lake_table, _checksum_result)):  # fmt: skip
                if (t.key, check) not in selected:
                    continue
                severity = dg.AssetCheckSeverity(quality.policy(check).severity)
                table = deployed.get(t.qualified) or t.catalog_table
                try:
                    if table is None:
                        raise RuntimeError(f"pipeline {spec.name} has not deployed {t.qualified} yet")
                    topic = (
                        table_topic(source, PipelineNames(spec.name), t.qualified) if spec.streams else None
                    )
                    side = LakeSide.of(live, spec, table, t.target_name, topic, cdc_settings.kafka_bootstrap)
                    result = report(t.key, measure(side), severity)
                except Exception as exc:  # noqa: BLE001 - this table's check fails and says why; the others run
                    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    result = dg.AssetCheckResult(asset_key=t.key, check_name=check, passed=False, severity=severity,
                                                 description=f"could not check: {reason}", metadata={"error": reason})  # fmt: skip
                record_outcome(context, spec.name, t.qualified, check, result)
                yield result

    return _checks
