"""Runs of quality checks alone, in Dagster's asset job.

Every code location with assets has that job, and it holds every asset and check; a job of our own
over the same checks cost a fifth of a large code location's load time to resolve and snapshot
(issue 14). The schedules, the health sensor's recovery runs and ``cdc-platform check`` all go
through here, so each of them names its checks and an empty asset selection.
"""

import dagster as dg

# Dagster's own name for the asset job (the constant is not exported at the top level)
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME

#: the job the checks run in
QUALITY_CHECKS_JOB = IMPLICIT_ASSET_JOB_NAME


def checks_request(
    keys: list[dg.AssetCheckKey], tags: dict[str, str], run_key: str | None = None
) -> dg.RunRequest:
    """A run of these checks alone: the empty asset selection keeps the asset job from
    materializing anything (``None`` would mean every asset)."""
    return dg.RunRequest(
        run_key=run_key,
        job_name=QUALITY_CHECKS_JOB,
        asset_selection=[],
        asset_check_keys=list(keys),
        tags=tags,
    )
