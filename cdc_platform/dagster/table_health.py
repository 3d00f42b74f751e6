"""Health on every target table: the ``pipeline_running`` check.

A connector's failure is shown on the connector's asset, but people watch the tables. Each tick of
the health sensor (and the check on demand) turns the pipeline's derived state and the age of its
newest heartbeat on the target into one verdict for every table the pipeline writes: ERROR when the
pipeline is in ERROR or its heartbeat is older than the freshness limit, WARN while it is held on
purpose, passed while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from cdc_platform.dagster.health_memory import REPORT_EVERY_SECONDS, TABLES_MEMORY, ConnectorMemory
from cdc_platform.health.metrics_store import MetricsStore
from cdc_platform.pipeline.lifecycle import Control
from cdc_platform.pipeline.state import PipelineState, StateReading

#: the check every target table of a streaming pipeline carries: is its pipeline keeping it current
TABLE_CHECK_NAME = "pipeline_running"


@dataclass(frozen=True)
class WatchedTables:
    """A streaming pipeline's target tables, each carrying the ``pipeline_running`` check."""

    pipeline: str
    keys: tuple[dg.AssetKey, ...]
    #: the heartbeat older than this (seconds) fails the tables' check: changes no longer arrive
    freshness_seconds: float


def table_check_specs(tables: list[WatchedTables]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            TABLE_CHECK_NAME,
            asset=key,
            description=f"Pipeline {t.pipeline} keeps this table current: its connectors run (no FAILED or "
            "missing one, Kafka Connect reachable) and its heartbeat is younger than "
            f"{t.freshness_seconds:.0f} s. WARN while the pipeline is paused or stopped on purpose. Evaluated "
            "by the cdc_connect_health sensor every interval, or on demand.",
        )
        for t in tables
        for key in t.keys
    ]


def table_verdict(
    reading: StateReading, heartbeat_age: float | None, freshness_seconds: float
) -> tuple[bool, dg.AssetCheckSeverity, str]:
    """The tables' check from the pipeline's state and the age of its newest heartbeat on the target."""
    if reading.state in (PipelineState.PAUSED, PipelineState.STOPPED, PipelineState.STOPPING):
        return False, dg.AssetCheckSeverity.WARN, f"pipeline {reading}: changes wait in Kafka"
    if reading.state is PipelineState.ERROR:
        return False, dg.AssetCheckSeverity.ERROR, f"pipeline ERROR: {reading.reason}"
    if heartbeat_age is not None and heartbeat_age > freshness_seconds:
        return (
            False,
            dg.AssetCheckSeverity.ERROR,
            (
                f"pipeline {reading.state.value}, but its newest heartbeat on the target is {heartbeat_age:.0f} s "
                f"old (limit {freshness_seconds:.0f} s): changes are not arriving"
            ),
        )
    if reading.state is PipelineState.STARTING:
        return True, dg.AssetCheckSeverity.WARN, f"pipeline STARTING: {reading.reason}"
    age = f"; heartbeat {heartbeat_age:.0f} s old" if heartbeat_age is not None else ""
    return True, dg.AssetCheckSeverity.ERROR, f"pipeline {reading.state.value}{age}"


def table_events(tables: list[WatchedTables], states: dict[str, StateReading], ages: dict[str, float | None],
                 memory: dict[str, ConnectorMemory], now: float) -> list[dg.AssetCheckEvaluation]:  # fmt: skip
    """The ``pipeline_running`` evaluations of every table of a pipeline whose verdict changed (or
    every few minutes): a failed sink turns every table it writes red within one tick."""
    events = []
    for t in tables:
        reading = states.get(t.pipeline)
        if reading is None:
            continue
        passed, severity, summary = table_verdict(reading, ages.get(t.pipeline), t.freshness_seconds)
        mem = memory.setdefault(TABLES_MEMORY + t.pipeline, ConnectorMemory())
        signature = f"{passed}|{severity.value}|{reading.state.value}|{summary.split(':')[0]}"
        if signature == mem.signature and now - mem.reported_at < REPORT_EVERY_SECONDS:
            continue
        mem.signature, mem.reported_at = signature, now
        # state_code plots the pipeline's life on the check (its Plots section), beside the heartbeat's age
        metadata = {"pipeline": t.pipeline, "pipeline_state": reading.state.value,
                    "pipeline_state_reason": reading.reason, "summary": summary, "state_code": reading.code}  # fmt: skip
        if ages.get(t.pipeline) is not None:
            metadata["heartbeat_age_seconds"] = round(ages[t.pipeline], 1)
        events += [dg.AssetCheckEvaluation(asset_key=key, check_name=TABLE_CHECK_NAME, passed=passed,
                                           severity=severity, metadata=metadata, description=summary)
                   for key in t.keys]  # fmt: skip
    return events


#: a heartbeat figure older than this is no evidence: the metrics schedule may not be running
HEARTBEAT_FIGURE_MAX_AGE_SECONDS = 300.0


def heartbeat_ages(context, pipelines: set[str], intents: dict[str, Control],
                    now: float) -> dict[str, float | None]:  # fmt: skip
    """Each pipeline's heartbeat age now, from the metrics schedule's newest figure (its age then plus
    the time since). None when there is no recent figure, or none since the pipeline was resumed."""
    ages: dict[str, float | None] = {}
    try:
        store = MetricsStore()
        for pipeline in pipelines:
            figure = store.latest(pipeline).get(("pipeline", "heartbeat_age_seconds"))
            control = intents.get(pipeline)
            if (
                figure is None
                or now - figure[0] > HEARTBEAT_FIGURE_MAX_AGE_SECONDS
                or (control is not None and figure[0] < control.changed_at)
            ):
                ages[pipeline] = None
                continue
            ages[pipeline] = figure[1] + max(now - figure[0], 0.0)
    except Exception as exc:  # noqa: BLE001 - the tables' check then judges by the connectors alone
        context.log.warning(f"could not read the heartbeat figures: {type(exc).__name__}: {exc}")
    return ages
