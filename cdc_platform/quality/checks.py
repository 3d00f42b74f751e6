"""Data-quality asset checks on every replicated table: row-count parity, checksum reconciliation,
schema drift, and freshness.

One ``@multi_asset_check`` per pipeline, subsettable: the UI, ``dagster asset check`` or the
quality schedules can run any one check of any table. A table the source cannot describe, or whose
target is unreachable, fails its own checks and says why; the other tables are still checked.
Severity and blocking come from the pipeline spec's ``quality.checks``: a blocking check that
fails as ERROR in the run that loaded its table fails that run, so a re-load that did not
reproduce the source shows as failed.
"""

import time
from dataclasses import dataclass

import dagster as dg

from cdc_platform.asset_specs import PipelineKeys
from cdc_platform.catalog import PipelineCatalog
from cdc_platform.health.metrics_store import MetricsStore, Sample
from cdc_platform.pipeline.plan import PipelineNames, table_topic, target_table_name
from cdc_platform.quality.counts import compare_counts
from cdc_platform.quality.drift import measure_drift
from cdc_platform.resources import CdcSettingsResource
from cdc_platform.specs.loader import LoadedPipeline, Specs
from cdc_platform.specs.models import (
    CHECKSUM_CHECK,
    COUNT_CHECK,
    DRIFT_CHECK,
    FRESHNESS_CHECK,
    GX_CHECK,
    PipelineSpec,
    QualitySpec,
)

#: the checks cheap enough for the frequent schedule; the checksum runs on its own (nightly)
CHEAP_CHECKS = (COUNT_CHECK, DRIFT_CHECK, FRESHNESS_CHECK, GX_CHECK)


@dataclass(frozen=True)
class CheckedTable:
    qualified: str
    asset_key: dg.AssetKey
    target_table: str


def _severity(quality: QualitySpec, check: str) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity(quality.policy(check).severity)


def quality_check_specs(pipeline: str, tables: list[CheckedTable], streams: bool,
                        quality: QualitySpec | None = None) -> list[dg.AssetCheckSpec]:  # fmt: skip
    quality = quality or QualitySpec()
    descriptions = {
        COUNT_CHECK: "{t} and its target hold the same number of rows, allowing only for changes in flight "
                     "between the two counts (bounded by Kafka offsets; an idle table must match exactly).",
        CHECKSUM_CHECK: "Every row of {t} is on the target with the same values (chunked hashes in both "
                        "databases, differing chunks narrowed to keys: missing, extra or changed columns).",
        DRIFT_CHECK: "{t}'s columns now match what the pipeline deployed and the target; differences are shown with "
                     "the DDL that would apply them (applied only by `cdc-platform apply-drift`).",
        FRESHNESS_CHECK: f"Pipeline {pipeline}'s latest heartbeat reached the target less than "
                         f"{quality.freshness_seconds:.0f} s ago (from the metrics schedule).",
    }  # fmt: skip
    specs = []
    for t in tables:
        suite = quality.expectations.get(t.qualified)
        if suite:
            descriptions[GX_CHECK] = "Great Expectations suite on the target table: " + ", ".join(
                e.expectation for e in suite
            )
        else:
            descriptions.pop(GX_CHECK, None)
        for check, text in descriptions.items():
            policy = quality.policy(check)
            if not policy.enabled or (check == FRESHNESS_CHECK and not streams):
                continue
            specs.append(dg.AssetCheckSpec(check, asset=t.asset_key, blocking=policy.blocking,
                                           description=text.format(t=t.qualified)))  # fmt: skip
    return specs


def build_quality_checks(loaded: LoadedPipeline, specs: Specs, catalog: PipelineCatalog | None,
                         tables: list[CheckedTable], sink_key: dg.AssetKey | None = None) -> dg.AssetChecksDefinition:  # fmt: skip
    """``sink_key``: the sink connector's asset; a heartbeat older than its last deploy is not yet due."""
    spec = loaded.spec
    name = spec.name
    quality = spec.quality

    @dg.multi_asset_check(specs=quality_check_specs(name, tables, spec.streams, quality), name=f"{name}_quality",
                          can_subset=True, pool=f"cdc_source_{spec.source}")  # fmt: skip
    def _checks(context: dg.AssetCheckExecutionContext, cdc_settings: CdcSettingsResource):
        live = cdc_settings.specs()
        source, target = live.connection(spec.source), live.connection(spec.target)
        selected = {(k.asset_key, k.name) for k in context.selected_asset_check_keys}
        for t in tables:
            runs = {
                COUNT_CHECK: lambda t=t: _count_result(t, source, target, live, cdc_settings),
                CHECKSUM_CHECK: lambda t=t: _checksum_result(t, live, cdc_settings),
                DRIFT_CHECK: lambda t=t: _drift_result(t, live, catalog),
                GX_CHECK: lambda t=t: _expectations_result(t, live),
                FRESHNESS_CHECK: lambda t=t: _freshness_result(t, name, context, live),
            }
            for check, run in runs.items():
                if (t.asset_key, check) in selected:
                    result = run()
                    _record_outcome(context, name, t.qualified, check, result)
                    yield result

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

    def _checksum_result(t, live, cdc_settings) -> dg.AssetCheckResult:
        from cdc_platform.quality.checksum import reconcile_pipeline_table

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
            kinds: dict[str, int] = {}
            for d in r.differences:
                kinds[d.kind] = kinds.get(d.kind, 0) + 1
            counted = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
            more = f" (only the first {len(r.differences)} named; more differ)" if r.truncated else ""
            summary = f"{counted} row(s) differ: " + "; ".join(
                d.key + (f" ({', '.join(d.columns)})" if d.columns else f" ({d.kind})") for d in r.differences[:5]
            ) + more  # fmt: skip
        return dg.AssetCheckResult(asset_key=t.asset_key, check_name=CHECKSUM_CHECK, passed=r.agrees,
                                   severity=_severity(quality, CHECKSUM_CHECK), metadata=metadata,
                                   description=summary)  # fmt: skip

    def _drift_result(t, live, catalog) -> dg.AssetCheckResult:
        from cdc_platform.quality.drift import drift_baseline

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
                    "missing_on_target": dg.MetadataValue.json(d.missing_on_target)}  # fmt: skip
        if d.proposed_ddl:
            metadata["proposed_ddl"] = dg.MetadataValue.md("```sql\n" + ";\n".join(d.proposed_ddl) + ";\n```")
        if d.clean:
            return dg.AssetCheckResult(asset_key=t.asset_key, check_name=DRIFT_CHECK, passed=True, metadata=metadata,
                                       description="the source's columns match what was deployed and the target")  # fmt: skip
        severity = dg.AssetCheckSeverity.ERROR if d.errors else _severity(quality, DRIFT_CHECK)
        return dg.AssetCheckResult(asset_key=t.asset_key, check_name=DRIFT_CHECK, passed=False, severity=severity,
                                   metadata=metadata, description="; ".join(d.errors + d.warnings))  # fmt: skip

    def _expectations_result(t, live) -> dg.AssetCheckResult:
        from cdc_platform.quality.expectations import run_suite

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

    def _freshness_result(t, pipeline: str, context, live) -> dg.AssetCheckResult:
        age, measured = _live_heartbeat_age(live), "read on the target now"
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
        deployed = _seconds_since_deploy(context)
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

    def _live_heartbeat_age(live) -> float | None:
        """The heartbeat's age on the target now (None: no heartbeat table, or it cannot be read)."""
        from cdc_platform.health.collect import heartbeat_figures
        from cdc_platform.pipeline.plan import heartbeat_of

        beat = heartbeat_of(spec, live.connection(spec.source), live.connection(spec.target),
                            sorted({t.qualified.split(".", 1)[0] for t in tables}))  # fmt: skip
        if beat is None:
            return None
        try:
            return heartbeat_figures(live, name, beat).get("heartbeat_age_seconds")
        except Exception:  # noqa: BLE001 - fall back to the stored figure
            return None

    def _seconds_since_deploy(context) -> float | None:
        if sink_key is None:
            return None
        event = context.instance.get_latest_materialization_event(sink_key)
        return None if event is None else max(time.time() - event.timestamp, 0.0)

    return _checks


def _record_outcome(context, pipeline: str, table: str, check: str, result: dg.AssetCheckResult) -> None:
    """Each outcome as a time series (``<check>_ok`` = 1 or 0 on the table), so alert rules see
    quality like they see lag; built-in rules watch counts and checksums."""
    try:
        MetricsStore().record(
            [Sample(time.time(), pipeline, table, f"{check}_ok", float(bool(result.passed)))]
        )
    except Exception as exc:  # noqa: BLE001 - the check's result stands; the series misses one point
        context.log.warning(f"could not store the outcome of {check} on {table}: {type(exc).__name__}: {exc}")


def _unreadable(
    t: CheckedTable, check: str, exc: Exception, severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult:
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return dg.AssetCheckResult(asset_key=t.asset_key, check_name=check, passed=False,
                               severity=severity, description=f"could not check: {reason}",
                               metadata={"error": reason})  # fmt: skip


def checked_tables(spec: PipelineSpec, keys: PipelineKeys) -> list[CheckedTable]:
    """The pipeline's table assets (the stored catalog's tables, else the named ones), by the keys
    the translator gave them."""
    return [CheckedTable(q, key, target_table_name(spec, q)) for q, key in keys.target_tables.items()]
