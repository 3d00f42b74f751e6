"""Health on every target table: the ``pipeline_running`` check.

A connector's failure is shown on the connector's asset, but people watch the tables. Each tick of
the health sensor (and the check on demand) turns the pipeline's derived state and the age of its
newest heartbeat on the target into one verdict for every table the pipeline writes: ERROR when the
pipeline is in ERROR, its heartbeat is older than the freshness limit, or its sink applies nothing
while changes wait (stalled, though every task shows RUNNING), WARN while it is held on purpose,
passed while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from cdc_platform.dagster.health_memory import REPORT_EVERY_SECONDS, TABLES_MEMORY, ConnectorMemory
from cdc_platform.health.metrics_store import MetricsStore
from cdc_platform.health.stall import FIGURE_MAX_AGE_SECONDS, SinkStall, sink_stall
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
            description=f"Pipeline {t.pipeline} keeps this table current: connectors running, sink not stalled, "
            f"heartbeat under {t.freshness_seconds:.0f} s old (WARN when paused or stopped on purpose). From the "
            "cdc_connect_health sensor, or on demand.",
        )
        for t in tables
        for key in t.keys
    ]


@dataclass(frozen=True)
class StreamReading:
    """What the metrics collection says of a pipeline's stream now."""

    #: the newest heartbeat's age on the target (seconds), None without a recent figure
    heartbeat_age: float | None = None
    #: the sink measured stalled by the newest collection, None when it was not
    stall: SinkStall | None = None


def table_verdict(
    reading: StateReading, heartbeat_age: float | None, freshness_seconds: float,
    stall: SinkStall | None = None, now: float = 0.0,
) -> tuple[bool, dg.AssetCheckSeverity, str]:  # fmt: skip
    """The tables' check from the pipeline's state, the age of its newest heartbeat on the target and
    whether its sink was measured stalled."""
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
    if stall is not None and reading.state is PipelineState.RUNNING:
        return False, dg.AssetCheckSeverity.ERROR, f"pipeline RUNNING, but {stall.describe(now)}"
    if reading.state is PipelineState.STARTING:
        return True, dg.AssetCheckSeverity.WARN, f"pipeline STARTING: {reading.reason}"
    age = f"; heartbeat {heartbeat_age:.0f} s old" if heartbeat_age is not None else ""
    return True, dg.AssetCheckSeverity.ERROR, f"pipeline {reading.state.value}{age}"


def table_events(tables: list[WatchedTables], states: dict[str, StateReading], streams: dict[str, StreamReading],
                 memory: dict[str, ConnectorMemory], now: float) -> list[dg.AssetCheckEvaluation]:  # fmt: skip
    """The ``pipeline_running`` evaluations of every table of a pipeline whose verdict changed (or
    every few minutes): a failed sink turns every table it writes red within one tick."""
    events = []
    for t in tables:
        reading = states.get(t.pipeline)
        if reading is None:
            continue
        stream = streams.get(t.pipeline, StreamReading())
        passed, severity, summary = table_verdict(reading, stream.heartbeat_age, t.freshness_seconds,
                                                  stream.stall, now)  # fmt: skip
        mem = memory.setdefault(TABLES_MEMORY + t.pipeline, ConnectorMemory())
        signature = f"{passed}|{severity.value}|{reading.state.value}|{summary.split(':')[0]}"
        if signature == mem.signature and now - mem.reported_at < REPORT_EVERY_SECONDS:
            continue
        mem.signature, mem.reported_at = signature, now
        # state_code plots the pipeline's life on the check (its Plots section), beside the heartbeat's age
        metadata = {"pipeline": t.pipeline, "pipeline_state": reading.state.value,
                    "pipeline_state_reason": reading.reason, "summary": summary, "state_code": reading.code}  # fmt: skip
        if stream.heartbeat_age is not None:
            metadata["heartbeat_age_seconds"] = round(stream.heartbeat_age, 1)
        metadata["sink_stalled"] = stream.stall is not None
        events += [dg.AssetCheckEvaluation(asset_key=key, check_name=TABLE_CHECK_NAME, passed=passed,
                                           severity=severity, metadata=metadata, description=summary)
                   for key in t.keys]  # fmt: skip
    return events


def stream_readings(context, pipelines: set[str], intents: dict[str, Control],
                    now: float) -> dict[str, StreamReading]:  # fmt: skip
    """Each pipeline's heartbeat age now, from the metrics schedule's newest figure (its age then plus
    the time since), and its sink's stall. Neither without a recent figure, or one since the pipeline
    was resumed."""
    readings: dict[str, StreamReading] = {}
    try:
        store = MetricsStore()
        for pipeline in pipelines:
            latest = store.latest(pipeline)
            control = intents.get(pipeline)
            since = control.changed_at if control is not None else None
            figure = latest.get(("pipeline", "heartbeat_age_seconds"))
            age = None
            if (
                figure is not None
                and now - figure[0] <= FIGURE_MAX_AGE_SECONDS
                and (since is None or figure[0] >= since)
            ):
                age = figure[1] + max(now - figure[0], 0.0)
            readings[pipeline] = StreamReading(age, sink_stall(latest, now, since))
    except Exception as exc:  # noqa: BLE001 - the tables' check then judges by the connectors alone
        context.log.warning(f"could not read the heartbeat and stall figures: {type(exc).__name__}: {exc}")
    return readings
