"""Each quality check's judgement of one table: what it reads, how it decides, what it reports.

The check definitions (cdc_platform/dagster/quality_checks.py) only select and record; a check that cannot
read a side fails on its own table and says why, the others still run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dagster as dg

from cdc_platform.dagster.catalog import PipelineCatalog
from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.health.collect import heartbeat_figures
from cdc_platform.health.metrics_store import MetricsStore
from cdc_platform.pipeline.plan import PipelineNames, heartbeat_of, table_topic
from cdc_platform.quality.checksum import reconcile_pipeline_table
from cdc_platform.quality.counts import compare_counts
from cdc_platform.quality.drift import drift_baseline, measure_drift
from cdc_platform.quality.expectations import run_suite
from cdc_platform.specs.loader import Specs
from cdc_platform.specs.models import (
    CHECKSUM_CHECK,
    COUNT_CHECK,
    DRIFT_CHECK,
    FRESHNESS_CHECK,
    GX_CHECK,
    PipelineSpec,
    QualitySpec,
)


@dataclass(frozen=True)
class CheckedTable:
    qualified: str
    asset_key: dg.AssetKey
    target_table: str


@dataclass(frozen=True)
class CheckRun:
    """What every check of one run reads: the pipeline, the location's specs, the settings."""

    spec: PipelineSpec
    live: Specs
    settings: CdcSettingsResource
    catalog: PipelineCatalog | None
    tables: list[CheckedTable]
    #: the sink connector's asset: a heartbeat older than its last deploy is not yet due
    sink_key: dg.AssetKey | None
    context: dg.AssetCheckExecutionContext


def _severity(quality: QualitySpec, check: str) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity(quality.policy(check).severity)


def _unreadable(
    t: CheckedTable, check: str, exc: Exception, severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult:
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return dg.AssetCheckResult(asset_key=t.asset_key, check_name=check, passed=False,
                               severity=severity, description=f"could not check: {reason}",
                               metadata={"error": reason})  # fmt: skip


def count_result(run: CheckRun, t: CheckedTable) -> dg.AssetCheckResult:
    spec, quality, live = run.spec, run.spec.quality, run.live
    source, target = live.connection(spec.source), live.connection(spec.target)
    schema, table = t.qualified.split(".", 1)
    stream = None
    if spec.streams:
        names = PipelineNames(spec.name)
        stream = (run.settings.kafka_bootstrap, table_topic(source, names, t.qualified),
                  f"connect-{names.sink_connector}")  # fmt: skip
    try:
        c = compare_counts(source, target, live.directory, (schema, table), (spec.target_schema, t.target_table),
                           stream=stream)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - this table's check fails and says why; the others run
        return _unreadable(t, COUNT_CHECK, exc, _severity(quality, COUNT_CHECK))
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
                               severity=_severity(quality, COUNT_CHECK), metadata=metadata, description=summary)  # fmt: skip


def describe_differences(differences: list, truncated: bool) -> str:
    """``2 changed, 1 missing row(s) differ: id=7 (note); ...``: what a checksum check's description
    says (each difference has ``kind``, ``key`` and ``columns``)."""
    kinds: dict[str, int] = {}
    for d in differences:
        kinds[d.kind] = kinds.get(d.kind, 0) + 1
    counted = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    more = f" (only the first {len(differences)} named; more differ)" if truncated else ""
    named = "; ".join(
        d.key + (f" ({', '.join(d.columns)})" if d.columns else f" ({d.kind})") for d in differences[:5]
    )
    return f"{counted} row(s) differ: {named}{more}"


def checksum_result(run: CheckRun, t: CheckedTable) -> dg.AssetCheckResult:

    name, quality, live, cdc_settings = run.spec.name, run.spec.quality, run.live, run.settings
    try:
        r = reconcile_pipeline_table(live, live.pipelines[name].spec, t.qualified, t.target_table,
                                     bootstrap=cdc_settings.kafka_bootstrap, chunk_rows=quality.chunk_rows,
                                     max_differences=quality.max_differences)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - this table's check fails and says why; the others run
        return _unreadable(t, CHECKSUM_CHECK, exc, _severity(quality, CHECKSUM_CHECK))
    rows = max(r.source_rows, r.target_rows)
    metadata = {
        "source_rows": r.source_rows, "target_rows": r.target_rows, "chunks_compared": r.chunks,
        "chunks_differing": r.chunks_differing, "rounds": r.rounds, "seconds": round(r.seconds, 3),
        "rows_per_second": round(rows / r.seconds) if r.seconds > 0 else rows,
        "hashed_in": "database" if r.in_database else "python (real/double columns)",
        "differences": dg.MetadataValue.json([d.as_dict() for d in r.differences]),
    }  # fmt: skip
    if r.columns_not_compared:
        metadata["columns_not_compared"] = dg.MetadataValue.json(r.columns_not_compared)
    if r.agrees:
        summary = f"{r.source_rows:,} rows agree value for value ({r.chunks:,} chunks)"
    else:
        summary = describe_differences(r.differences, r.truncated)
    return dg.AssetCheckResult(asset_key=t.asset_key, check_name=CHECKSUM_CHECK, passed=r.agrees,
                               severity=_severity(quality, CHECKSUM_CHECK), metadata=metadata,
                               description=summary)  # fmt: skip


def drift_result(run: CheckRun, t: CheckedTable) -> dg.AssetCheckResult:

    name, quality, live, catalog = run.spec.name, run.spec.quality, run.live, run.catalog
    try:
        stored = drift_baseline(name, t.qualified, catalog.table(t.qualified) if catalog else None)
    except Exception as exc:  # noqa: BLE001 - the platform database is unreadable: say so
        return _unreadable(t, DRIFT_CHECK, exc, _severity(quality, DRIFT_CHECK))
    if stored is None:
        return dg.AssetCheckResult(asset_key=t.asset_key, check_name=DRIFT_CHECK, passed=False,
                                   severity=dg.AssetCheckSeverity.WARN,
                                   description=f"pipeline {name} has not deployed {t.qualified} yet: materialize "
                                   "it, then the check compares the source with what was deployed")  # fmt: skip
    try:
        d = measure_drift(live, live.pipelines[name].spec, stored, t.target_table)
    except Exception as exc:  # noqa: BLE001 - this table's check fails and says why; the others run
        return _unreadable(t, DRIFT_CHECK, exc, _severity(quality, DRIFT_CHECK))
    metadata = {"added": dg.MetadataValue.json(d.added), "dropped": dg.MetadataValue.json(d.dropped),
                "renamed": dg.MetadataValue.json(d.renamed), "type_changed": dg.MetadataValue.json(d.type_changed),
                "nullability_changed": dg.MetadataValue.json(d.nullability_changed),
                "missing_on_target": dg.MetadataValue.json(d.missing_on_target),
                "kept_on_target": dg.MetadataValue.json(d.kept)}  # fmt: skip
    if d.proposed_ddl:
        metadata["proposed_ddl"] = dg.MetadataValue.md("```sql\n" + ";\n".join(d.proposed_ddl) + ";\n```")
    if d.clean:
        return dg.AssetCheckResult(asset_key=t.asset_key, check_name=DRIFT_CHECK, passed=True, metadata=metadata,
                                   description="the source's columns match what was deployed and the target"
                                   + (f"; kept on the target on purpose (dropped on the source): {', '.join(d.kept)}"
                                      if d.kept else ""))  # fmt: skip
    severity = dg.AssetCheckSeverity.ERROR if d.errors else _severity(quality, DRIFT_CHECK)
    return dg.AssetCheckResult(asset_key=t.asset_key, check_name=DRIFT_CHECK, passed=False, severity=severity,
                               metadata=metadata, description="; ".join(d.errors + d.warnings))  # fmt: skip


def expectations_result(run: CheckRun, t: CheckedTable) -> dg.AssetCheckResult:

    name, quality, live = run.spec.name, run.spec.quality, run.live
    suite = quality.expectations[t.qualified]
    started = time.monotonic()
    try:
        outcomes = run_suite(live, live.pipelines[name].spec, t.target_table, suite)
    except Exception as exc:  # noqa: BLE001 - this table's check fails and says why; the others run
        return _unreadable(t, GX_CHECK, exc, _severity(quality, GX_CHECK))
    failed = [o for o in outcomes if not o.success]
    metadata = {"results": dg.MetadataValue.json([o.as_dict() for o in outcomes]),
                "expectations": len(outcomes), "failed": len(failed),
                "seconds": round(time.monotonic() - started, 3)}  # fmt: skip
    for o in outcomes:
        column = o.kwargs.get("column")
        metadata[f"{o.expectation}{'/' + column if column else ''}"] = "passed" if o.success else "FAILED"
    summary = (f"all {len(outcomes)} expectations hold" if not failed else
               "failed: " + "; ".join(f"{o.expectation}({o.kwargs.get('column', '')})" +
                                      (f" {o.observed['unexpected_count']} unexpected"
                                       if "unexpected_count" in o.observed else "") for o in failed))  # fmt: skip
    return dg.AssetCheckResult(asset_key=t.asset_key, check_name=GX_CHECK, passed=not failed,
                               severity=_severity(quality, GX_CHECK), metadata=metadata, description=summary)  # fmt: skip


def freshness_result(run: CheckRun, t: CheckedTable) -> dg.AssetCheckResult:
    spec, pipeline, quality = run.spec, run.spec.name, run.spec.quality
    age, measured = _live_heartbeat_age(run), "read on the target now"
    if age is None:
        latest = MetricsStore().latest(pipeline).get(("pipeline", "heartbeat_age_seconds"))
        if latest is None:
            return dg.AssetCheckResult(asset_key=t.asset_key, check_name=FRESHNESS_CHECK, passed=False,
                                       severity=dg.AssetCheckSeverity.WARN,
                                       description="no heartbeat has reached the target yet")  # fmt: skip
        measured_at, stored_age = latest
        age, measured = stored_age + max(time.time() - measured_at, 0), "from the metrics schedule"
    metadata = {"heartbeat_age_seconds": round(age, 1), "threshold_seconds": quality.freshness_seconds,
                "measured": measured}  # fmt: skip
    deployed = _seconds_since_deploy(run)
    if (
        age >= quality.freshness_seconds
        and deployed is not None
        and deployed < min(age, quality.freshness_seconds)
    ):
        # the heartbeat predates the connectors' deploy: the first one since is not due yet
        return dg.AssetCheckResult(
            asset_key=t.asset_key, check_name=FRESHNESS_CHECK, passed=False, severity=dg.AssetCheckSeverity.WARN,
            metadata=metadata, description=f"the connectors were deployed {deployed:.0f} s ago; no heartbeat has "
            f"reached the target since (one is sent every {spec.options.heartbeat_interval_ms / 1000:.0f} s)",
        )  # fmt: skip
    return dg.AssetCheckResult(
        asset_key=t.asset_key, check_name=FRESHNESS_CHECK, passed=age < quality.freshness_seconds,
        severity=_severity(quality, FRESHNESS_CHECK), metadata=metadata,
        description=f"the target is at most {age:.0f} s behind the source",
    )  # fmt: skip


def _live_heartbeat_age(run: CheckRun) -> float | None:
    """The heartbeat's age on the target now (None: no heartbeat table, or it cannot be read)."""

    spec, name, live, tables = run.spec, run.spec.name, run.live, run.tables
    beat = heartbeat_of(spec, live.connection(spec.source), live.connection(spec.target),
                        sorted({t.qualified.split(".", 1)[0] for t in tables}))  # fmt: skip
    if beat is None:
        return None
    try:
        return heartbeat_figures(live, name, beat).get("heartbeat_age_seconds")
    except Exception:  # noqa: BLE001 - fall back to the stored figure
        return None


def _seconds_since_deploy(run: CheckRun) -> float | None:
    sink_key, context = run.sink_key, run.context
    if sink_key is None:
        return None
    event = context.instance.get_latest_materialization_event(sink_key)
    return None if event is None else max(time.time() - event.timestamp, 0.0)


EVALUATORS = {
    COUNT_CHECK: count_result,
    CHECKSUM_CHECK: checksum_result,
    DRIFT_CHECK: drift_result,
    GX_CHECK: expectations_result,
    FRESHNESS_CHECK: freshness_result,
}
