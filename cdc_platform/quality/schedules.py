"""Which quality checks run when. One job holds every table's checks; schedules and the health
sensor ask for subsets of it: the cheap checks (counts, drift, freshness, GX) often, the checksum
reconciliation nightly, and counts plus checksums after a recovery. A pipeline's spec may give
either schedule its own cron. One job rather than one per purpose: resolving a job over thousands
of checks is what a large code location spends its load time on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from cdc_platform.quality.checks import CHEAP_CHECKS
from cdc_platform.specs.models import CHECKSUM_CHECK, COUNT_CHECK, QualitySpec

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

#: what the health sensor runs after a recovery
CONSISTENCY_CHECKS = (COUNT_CHECK, CHECKSUM_CHECK)


def check_keys(check_def: dg.AssetChecksDefinition, names: tuple[str, ...]) -> list[dg.AssetCheckKey]:
    return [k for k in check_def.check_keys if k.name in names]


def quality_job(name: str, check_defs: list[dg.AssetChecksDefinition]) -> UnresolvedAssetJobDefinition | None:
    keys = [k for c in check_defs for k in c.check_keys]
    if not keys:
        return None
    return dg.define_asset_job(name, selection=dg.AssetSelection.checks(*keys),
                               description="The data-quality checks of every table; the schedules and the health "
                                           "sensor run subsets of it.")  # fmt: skip


def _schedule(name: str, job, cron: str, keys: list[dg.AssetCheckKey], what: str) -> dg.ScheduleDefinition:
    @dg.schedule(name=name, job=job, cron_schedule=cron, default_status=dg.DefaultScheduleStatus.RUNNING,
                 description=f"Runs {what}; failures show on the tables' Checks tab.")  # fmt: skip
    def _run(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return dg.RunRequest(asset_selection=[], asset_check_keys=keys, tags={"cdc/quality": what})

    return _run


def quality_schedules(
    job, pipelines: dict[str, tuple[QualitySpec, dg.AssetChecksDefinition]], cheap_cron: str, checksum_cron: str,
    cheap_name: str, checksum_name: str,
) -> list[dg.ScheduleDefinition]:  # fmt: skip
    """One schedule per (kind, cron): the default one for every pipeline without its own cron."""
    groups: dict[tuple[str, str], list[dg.AssetCheckKey]] = {}
    owners: dict[tuple[str, str], list[str]] = {}
    for name, (quality, check_def) in pipelines.items():
        for base, cron, default_cron, checks in (
            (cheap_name, quality.schedule, cheap_cron, CHEAP_CHECKS),
            (checksum_name, quality.checksum_schedule, checksum_cron, (CHECKSUM_CHECK,)),
        ):
            keys = check_keys(check_def, checks)
            if not keys:
                continue
            group = (base, default_cron) if cron is None else (f"{base}_{name}", cron)
            groups.setdefault(group, []).extend(keys)
            owners.setdefault(group, []).append(name)
    schedules = []
    for (base, cron), keys in groups.items():
        what = ("the checksum reconciliation" if base.startswith(checksum_name)
                else "the counts, schema drift, freshness and expectation checks")  # fmt: skip
        schedules.append(_schedule(f"{base}_schedule", job, cron, keys,
                                   f"{what} of pipelines {', '.join(owners[(base, cron)])}"))  # fmt: skip
    return schedules
