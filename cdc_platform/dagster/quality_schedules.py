"""Which quality checks run when. The schedules and the health sensor ask Dagster's asset job (the
one every code location with assets has, holding every asset and check) for subsets of checks: the
cheap checks (counts, drift, freshness, GX) often, the checksum reconciliation nightly, and counts
plus checksums after a recovery. A pipeline's spec may give either schedule its own cron.

No job of our own: resolving and snapshotting a second job over thousands of checks was a fifth of
a large code location's load time (issue 14), and the asset job already holds them. Every request
names its checks and an empty asset selection, so none of them materializes an asset."""

import dagster as dg

from cdc_platform.dagster.check_runs import QUALITY_CHECKS_JOB, checks_request
from cdc_platform.dagster.quality_checks import CHEAP_CHECKS
from cdc_platform.specs.models import CHECKSUM_CHECK, COUNT_CHECK, QualitySpec

#: what the health sensor runs after a recovery
CONSISTENCY_CHECKS = (COUNT_CHECK, CHECKSUM_CHECK)


def check_keys(check_def: dg.AssetChecksDefinition, names: tuple[str, ...]) -> list[dg.AssetCheckKey]:
    return [k for k in check_def.check_keys if k.name in names]


def _schedule(name: str, cron: str, keys: list[dg.AssetCheckKey], what: str) -> dg.ScheduleDefinition:
    @dg.schedule(name=name, job_name=QUALITY_CHECKS_JOB, cron_schedule=cron,
                 default_status=dg.DefaultScheduleStatus.RUNNING, description=f"Runs {what}; failures show on the tables' Checks tab.")  # fmt: skip
    def _run(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return checks_request(keys, {"cdc/quality": what})

    return _run


def quality_schedules(
    pipelines: dict[str, tuple[QualitySpec, dg.AssetChecksDefinition]], cheap_cron: str, checksum_cron: str,
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
        schedules.append(_schedule(f"{base}_schedule", cron, keys,
                                   f"{what} of pipelines {', '.join(owners[(base, cron)])}"))  # fmt: skip
    return schedules
