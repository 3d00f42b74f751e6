"""Quality checks run on demand (``cdc-platform check``), outside the schedules.

Dagster's CLI can materialize assets but has no command that runs checks alone, and running a
table's asset to check it would re-load the table. This builds the same definitions the code
location builds for the one pipeline and runs the chosen checks in Dagster's asset job, as the
schedules do, recording the run and its evaluations in the instance so the UI shows them.
"""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from cdc_platform.dagster.catalog import read_catalog
from cdc_platform.dagster.check_runs import QUALITY_CHECKS_JOB
from cdc_platform.dagster.component import CdcPipelineComponent
from cdc_platform.specs.loader import Specs


class CheckSelectionError(ValueError):
    """A table or check name the pipeline does not have; the message lists the ones it has."""


class ChecksRunFailed(RuntimeError):
    """The run ended before every selected check reported (a failed check is a result, not this)."""


@dataclass(frozen=True)
class CheckOutcome:
    table: str
    asset_key: str
    check: str
    passed: bool
    severity: str
    description: str
    metadata: dict

    @property
    def fails_the_command(self) -> bool:
        """Only an ERROR fails the command; a failed WARN check is shown and reported, not fatal."""
        return not self.passed and self.severity == "ERROR"


@dataclass(frozen=True)
class ChecksRun:
    run_id: str
    outcomes: list[CheckOutcome]


def _plain(value: dg.MetadataValue) -> object:
    """A metadata value as JSON-ready data (the figures the UI shows beside the result)."""
    inner = getattr(value, "value", value)
    return inner if isinstance(inner, (str, int, float, bool, list, dict, type(None))) else str(inner)


def pipeline_check_defs(
    specs: Specs, pipeline: str, catalog_path: Path | None
) -> tuple[dg.Definitions, dict]:
    """The code location's definitions for this one pipeline (same checks, same stored catalog), and
    its checked tables' asset keys by source ``schema.table``."""

    component = CdcPipelineComponent(specs_dir=str(specs.directory), pipelines=[pipeline])
    defs = component.build_defs_from_state(None, catalog_path)  # type: ignore[arg-type]
    catalog = read_catalog(catalog_path)
    keys = component.pipeline_keys(specs, pipeline, catalog.pipelines.get(pipeline) if catalog else None)
    return defs, dict(keys.target_tables)


def select_checks(defs: dg.Definitions, pipeline: str, table_keys: dict[str, dg.AssetKey],
                  tables: tuple[str, ...], checks: tuple[str, ...]) -> dict[dg.AssetCheckKey, str]:  # fmt: skip
    """The pipeline's quality checks narrowed to ``tables`` (source ``schema.table``) and ``checks``,
    each with its source table's name; every name given must exist."""
    table_of = {key: table for table, key in table_keys.items()}
    by_key = {
        spec.key: table_of[spec.asset_key]
        for c in defs.asset_checks or []
        if c.node_def.name == f"{pipeline}_quality"
        for spec in c.check_specs
    }
    if not by_key:
        raise CheckSelectionError(
            f"pipeline {pipeline!r} has no quality checks (no tables yet: run `cdc-platform refresh`; "
            "an S3 target has none)"
        )
    known_tables = sorted(set(by_key.values()))
    known_checks = sorted({k.name for k in by_key})
    for given, known, what in ((tables, known_tables, "table"), (checks, known_checks, "check")):
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise CheckSelectionError(
                f"pipeline {pipeline!r} has no {what} {', '.join(unknown)}; its {what}s: {', '.join(known)}"
            )
    return {
        key: table
        for key, table in by_key.items()
        if (not tables or table in tables) and (not checks or key.name in checks)
    }


def run_checks(defs: dg.Definitions, selected: dict[dg.AssetCheckKey, str],
               instance: dg.DagsterInstance) -> ChecksRun:  # fmt: skip
    """Run the selected checks alone in the asset job; a failing check is a result, not an error."""
    job = defs.resolve_job_def(QUALITY_CHECKS_JOB).get_subset(
        asset_selection=set(), asset_check_selection=set(selected)
    )
    result = job.execute_in_process(
        instance=instance, raise_on_error=False, tags={"cdc/quality": "on demand"}
    )
    outcomes, reported = [], set()
    for event in result.all_events:
        if event.event_type_value != "ASSET_CHECK_EVALUATION":
            continue
        e = event.event_specific_data
        key = dg.AssetCheckKey(e.asset_key, e.check_name)
        reported.add(key)
        outcomes.append(CheckOutcome(
            table=selected.get(key, e.asset_key.to_user_string()), asset_key=e.asset_key.to_user_string(),
            check=e.check_name, passed=e.passed, severity=e.severity.value, description=e.description or "",
            metadata={k: _plain(v) for k, v in e.metadata.items()},
        ))  # fmt: skip
    missing = sorted(f"{k.name} on {selected[k]}" for k in set(selected) - reported)
    if missing:
        failure = next((e for e in result.all_events if e.is_failure), None)
        error = getattr(getattr(failure, "event_specific_data", None), "error", None)
        while error is not None and error.cause is not None:  # Dagster wraps what the check raised
            error = error.cause
        reason = error.message.strip() if error is not None else "the run ended"
        raise ChecksRunFailed(f"run {result.run_id}: {reason}; no result for {', '.join(missing)}")
    return ChecksRun(result.run_id, sorted(outcomes, key=lambda o: (o.table, o.check)))
