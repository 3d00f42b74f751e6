"""Which quality checks run when: the cheap ones (counts, drift, freshness) often, the checksum
reconciliation nightly; a pipeline's spec may give either its own cron, which gets it its own job
so one busy pipeline's schedule does not drag the others along."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from cdc_platform.quality.checks import CHEAP_CHECKS
from cdc_platform.specs.models import CHECKSUM_CHECK, COUNT_CHECK, QualitySpec


def _keys(check_def: dg.AssetChecksDefinition, names: tuple[str, ...]) -> list[dg.AssetCheckKey]:
    return [k for k in check_def.check_keys if k.name in names]


def quality_schedules(
    cheap_job: str, checksum_job: str, pipelines: dict[str, tuple[QualitySpec, dg.AssetChecksDefinition]],
    cheap_cron: str, checksum_cron: str,
) -> list[tuple[UnresolvedAssetJobDefinition, dg.ScheduleDefinition]]:  # fmt: skip
    """One job and schedule per (kind, cron): the default one for every pipeline without its own."""
    groups: dict[tuple[str, str], list[dg.AssetCheckKey]] = {}
    owners: dict[tuple[str, str], list[str]] = {}
    for name, (quality, check_def) in pipelines.items():
        for job, cron, default_cron, checks in (
            (cheap_job, quality.schedule, cheap_cron, CHEAP_CHECKS),
            (checksum_job, quality.checksum_schedule, checksum_cron, (CHECKSUM_CHECK,)),
        ):
            keys = _keys(check_def, checks)
            if not keys:
                continue
            group = (job, default_cron) if cron is None else (f"{job}_{name}", cron)
            groups.setdefault(group, []).extend(keys)
            owners.setdefault(group, []).append(name)
    out = []
    for (job_name, cron), keys in groups.items():
        what = ("the checksum reconciliation" if job_name.startswith(checksum_job)
                else "the counts, schema drift and freshness checks")  # fmt: skip
        job = dg.define_asset_job(job_name, selection=dg.AssetSelection.checks(*keys),
                                  description=f"Runs {what} of pipelines {', '.join(owners[(job_name, cron)])}.")  # fmt: skip
        out.append((job, dg.ScheduleDefinition(
            name=f"{job_name}_schedule", job=job, cron_schedule=cron, default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"Runs {what}; failures show on the tables' Checks tab.",
        )))  # fmt: skip
    return out


def consistency_job(name: str, check_defs: list[dg.AssetChecksDefinition]):
    """Counts and checksums of every table, no schedule: what runs after a recovery (the health sensor
    requests it for the recovered pipeline's tables) and what a user runs to ask "do they agree now?"."""
    keys = [k for c in check_defs for k in _keys(c, (COUNT_CHECK, CHECKSUM_CHECK))]
    if not keys:
        return None
    return dg.define_asset_job(name, selection=dg.AssetSelection.checks(*keys),
                               description="Row counts and checksums of the tables: do source and target agree now?")  # fmt: skip
