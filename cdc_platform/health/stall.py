"""Whether a pipeline's sink is stalled now, read from the metrics collection's newest figures.

After a Connect worker's crash every task showed RUNNING while nothing was applied for 45 s (issue
34): the connectors' states cannot tell a stall, only Kafka's offsets can. The collection records
``sink_stalled`` (no change applied since its previous run while changes wait); the table check and
``cdc-platform status`` read it here, with the same rules: a figure too old to be evidence, or one
measured before the pipeline was last resumed, says nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

#: a figure older than this is no evidence: the metrics schedule may not be running
FIGURE_MAX_AGE_SECONDS = 300.0


@dataclass(frozen=True)
class SinkStall:
    """A stall the newest collection measured: changes waiting, none applied since the one before."""

    #: changes waiting in Kafka for the sink when it was measured
    waiting: int
    #: when it was measured (epoch seconds)
    measured_at: float

    def describe(self, now: float) -> str:
        return (f"its sink applied nothing while {self.waiting:,} changes wait in Kafka "
                f"(measured {max(now - self.measured_at, 0):.0f} s ago): stalled")  # fmt: skip


def sink_stall(
    latest: dict[tuple[str, str], tuple[float, float]], now: float, since: float | None = None
) -> SinkStall | None:
    """The stall in ``latest`` (a ``MetricsStore.latest`` answer), if its newest figure says so and
    is recent, and taken after ``since`` (when the pipeline was last resumed or restarted)."""
    figure = latest.get(("sink", "sink_stalled"))
    if figure is None or figure[1] < 1.0 or now - figure[0] > FIGURE_MAX_AGE_SECONDS:
        return None
    if since is not None and figure[0] < since:
        return None
    waiting = latest.get(("sink", "lag_messages"), (figure[0], 0.0))[1]
    return SinkStall(int(waiting), figure[0])
