"""A pipeline's state, as the seed's lifecycle names it: STOPPED, STARTING, RUNNING, PAUSED, STOPPING,
ERROR (with the reason).

Derived, never stored: from the intent a person recorded (``lifecycle``), what Kafka Connect
reports for the pipeline's connectors, and whether it was ever deployed. A stored state would go
stale the moment a task fails; derived, the CLI, the health sensor and the UI say the same thing
from the same facts. Pure, so every combination is unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from cdc_platform.connectors.traces import innermost_cause
from cdc_platform.pipeline.lifecycle import Control, Intent


class PipelineState(str, Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPING = "STOPPING"
    ERROR = "ERROR"


#: the state as a number, for the time series and the UI's plots (ordered by how much it needs a person)
STATE_CODES = {
    PipelineState.RUNNING: 0,
    PipelineState.STARTING: 1,
    PipelineState.PAUSED: 2,
    PipelineState.STOPPING: 3,
    PipelineState.STOPPED: 4,
    PipelineState.ERROR: 5,
}
#: after a resume or a deploy, connectors not yet RUNNING are STARTING for this long, then an ERROR
STARTING_GRACE_SECONDS = 120.0


@dataclass(frozen=True)
class StateReading:
    state: PipelineState
    reason: str

    @property
    def code(self) -> int:
        return STATE_CODES[self.state]

    def __str__(self) -> str:
        return f"{self.state.value} ({self.reason})" if self.reason else self.state.value


def _units(status: dict) -> dict[str, dict]:
    """The connector and each task, by a readable name."""
    return {"connector": status.get("connector", {}),
            **{f"task {t.get('id')}": t for t in status.get("tasks", [])}}  # fmt: skip


def derive_state(
    *,
    streams: bool,
    deployed: bool,
    control: Control | None,
    statuses: dict[str, dict | None] | None,
    now: float,
    last_deployed_at: float | None = None,
    connect_error: str | None = None,
) -> StateReading:
    """``statuses``: each of the pipeline's connectors -> its Connect status (None: not on the worker);
    ``statuses`` None with ``connect_error``: Kafka Connect could not be read."""
    if not streams:
        return StateReading(PipelineState.STOPPED, "full load only: nothing streams")
    if statuses is None:
        return StateReading(
            PipelineState.ERROR, f"Kafka Connect unreachable: {connect_error or 'unknown error'}"
        )
    present = {name: s for name, s in statuses.items() if s is not None}
    if not deployed and not present:
        return StateReading(PipelineState.STOPPED, "not deployed: materialize the pipeline")
    missing = sorted(name for name, s in statuses.items() if s is None)
    states = {
        (name, unit): u.get("state", "UNKNOWN")
        for name, s in present.items()
        for unit, u in _units(s).items()
    }
    failed = [(name, unit) for (name, unit), st in states.items() if st == "FAILED"]
    if control is not None and control.intent is Intent.PAUSED:
        return _settled(PipelineState.PAUSED, "PAUSED", control, states, missing)
    if control is not None and control.intent is Intent.STOPPED:
        return _settled(PipelineState.STOPPED, "STOPPED", control, states, missing)
    if missing:
        return StateReading(
            PipelineState.ERROR, f"{', '.join(missing)} not on the worker: materialize to deploy it again"
        )
    if failed:
        name, unit = failed[0]
        trace = _units(present[name])[unit].get("trace")
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return StateReading(
            PipelineState.ERROR, f"{name} {unit} FAILED{more}: {innermost_cause(trace)[:300]}"
        )
    held = sorted({name for (name, _), st in states.items() if st in ("PAUSED", "STOPPED")})
    if held:
        return StateReading(
            PipelineState.ERROR,
            f"{', '.join(held)} paused or stopped outside the platform: `cdc-platform resume` runs it, "
            "`cdc-platform pause` keeps it paused on purpose",
        )
    no_tasks = [name for name, s in present.items() if not s.get("tasks")]
    waiting = sorted({name for (name, _), st in states.items() if st != "RUNNING"} | set(no_tasks))
    if waiting:
        started = [t for t in (last_deployed_at, control.changed_at if control else None) if t is not None]
        since = max(started) if started else None
        if since is None or now - since < STARTING_GRACE_SECONDS:
            return StateReading(PipelineState.STARTING, f"waiting for {', '.join(waiting)} to run")
        return StateReading(PipelineState.ERROR, f"{', '.join(waiting)} not running "
                            f"{now - since:.0f} s after it was started")  # fmt: skip
    return StateReading(PipelineState.RUNNING, "")


def _settled(
    target: PipelineState, connect_state: str, control: Control, states: dict, missing: list[str]
) -> StateReading:
    """Paused or stopped on purpose: settled once every connector and task says so."""
    moving = sorted({name for (name, _), st in states.items() if st not in (connect_state, "FAILED")})
    if moving:
        verb = "pausing" if target is PipelineState.PAUSED else "stopping"
        return StateReading(PipelineState.STOPPING, f"{verb}: {', '.join(moving)} not {connect_state} yet")
    note = f"; {', '.join(missing)} not on the worker" if missing else ""
    return StateReading(target, control.describe() + note)
