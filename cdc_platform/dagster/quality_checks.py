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

import dagster as dg

from cdc_platform.dagster.asset_specs import PipelineKeys
from cdc_platform.dagster.catalog import PipelineCatalog
from cdc_platform.dagster.quality_results import EVALUATORS, CheckedTable, CheckRun
from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.health.metrics_store import MetricsStore, Sample
from cdc_platform.pipeline.plan import target_table_name
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


def quality_check_specs(pipeline: str, tables: list[CheckedTable], streams: bool,
                        quality: QualitySpec | None = None) -> list[dg.AssetCheckSpec]:  # fmt: skip
    quality = quality or QualitySpec()
    descriptions = {
        # every description is in the code location's snapshot once per table: short, the README says more
        COUNT_CHECK: "{t} and its target hold as many rows, but for changes in flight (bounded by Kafka offsets).",
        CHECKSUM_CHECK: "Every row of {t} is on the target with the same values (chunked hashes, narrowed to keys).",
        DRIFT_CHECK: "{t}'s columns match what was deployed and the target; differences with the DDL that applies "
                     "them (safe ones by the cdc_schema_changes sensor, the rest by `cdc-platform apply-drift`).",
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
        run = CheckRun(spec, cdc_settings.specs(), cdc_settings, catalog, tables, sink_key, context)
        selected = {(k.asset_key, k.name) for k in context.selected_asset_check_keys}
        for t in tables:
            for check, evaluate in EVALUATORS.items():
                if (t.asset_key, check) in selected:
                    result = evaluate(run, t)
                    record_outcome(context, name, t.qualified, check, result)
                    yield result

    return _checks


def record_outcome(context, pipeline: str, table: str, check: str, result: dg.AssetCheckResult) -> None:
    """Each outcome as a time series (``<check>_ok`` = 1 or 0 on the table), so alert rules see
    quality like they see lag; built-in rules watch counts and checksums. A check that could not
    read a side measured nothing: a 0 would open "row counts differ" on tables nobody compared (the
    check itself fails and names the error; Connect and connection alerts cover the outage)."""
    if "error" in (result.metadata or {}):
        return
    try:
        MetricsStore().record(
            [Sample(time.time(), pipeline, table, f"{check}_ok", float(bool(result.passed)))]
        )
    except Exception as exc:  # noqa: BLE001 - the check's result stands; the series misses one point
        context.log.warning(f"could not store the outcome of {check} on {table}: {type(exc).__name__}: {exc}")


def checked_tables(spec: PipelineSpec, keys: PipelineKeys) -> list[CheckedTable]:
    """The pipeline's table assets (the stored catalog's tables, else the named ones), by the keys
    the translator gave them."""
    return [CheckedTable(q, key, target_table_name(spec, q)) for q, key in keys.target_tables.items()]
