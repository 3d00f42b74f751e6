"""When to restart a failed connector task: bounded exponential backoff, and errors a restart cannot fix.

Pure functions over a small history record, so the policy is unit-tested without a worker and the
history can live in a sensor cursor (it survives daemon restarts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cdc_platform.clock import epoch_of, iso_utc
from cdc_platform.connectors.traces import innermost_cause

#: failures a restart cannot fix: retrying them in a loop only hides the cause
NOT_RETRYABLE = (
    (re.compile(r"password authentication failed|Access denied for user|Login failed for user", re.I),
     "authentication failed: fix the credentials, then re-materialize the connector"),
    (re.compile(r"RecordTooLargeException|larger than the maximum request size|max\.message\.bytes", re.I),
     "a change event is larger than the pipeline's limit: see `cdc-platform status` and options.max_event_bytes"),
    (re.compile(r"relation \S+ does not exist|Table '[^']+' doesn't exist|Invalid object name", re.I),
     "a table is missing: re-materialize the pipeline's target tables"),
    (re.compile(r"replication slot \S+ does not exist|slot .* is invalidated|requested WAL segment .* has already been removed", re.I),
     "the replication slot is gone or invalidated: re-materialize the pipeline (a full load) to recover"),
)  # fmt: skip


@dataclass(frozen=True)
class RecoveryPolicy:
    """Restart a FAILED task after ``first_delay``, then twice as long each time. Give up (and
    alert) only when ``max_attempts`` restarts in a row each failed again at once: within
    ``relapse`` seconds of the restart. A task that ran longer than that after its last restart
    recovered; its next failure is a new incident with the whole budget again, so a target restarted
    for maintenance a few times an hour never leaves its pipelines "gave up" (issue 34). Restarts
    older than ``window`` are forgotten in any case."""

    first_delay: float = 30.0
    factor: float = 2.0
    max_attempts: int = 5
    window: float = 3600.0
    #: a restart takes effect asynchronously: never judge it sooner than this
    settle: float = 10.0
    #: a failure this soon after a restart is the same error coming back, not a new incident
    relapse: float = 120.0

    def delay(self, attempts_so_far: int) -> float:
        backoff = self.first_delay * self.factor**attempts_so_far
        return backoff if attempts_so_far == 0 else max(backoff, self.settle)


@dataclass
class TaskHistory:
    """What the sensor remembers about one task (or the connector itself, id ``connector``)."""

    failed_since: float | None = None
    attempts: list[float] = field(default_factory=list)
    error: str | None = None
    gave_up: bool = False

    def to_json(self) -> dict:
        """Times in UTC text and only what is set: the cursor is read by people on the sensor's page."""
        out: dict = {}
        if self.failed_since is not None:
            out["failed_since"] = iso_utc(self.failed_since)
        if self.attempts:
            out["restarted_at"] = [iso_utc(t) for t in self.attempts]
        if self.error:
            out["error"] = self.error
        if self.gave_up:
            out["gave_up"] = True
        return out

    @classmethod
    def from_json(cls, raw: dict) -> TaskHistory:
        attempts = raw.get("restarted_at", raw.get("attempts", []))
        return cls(
            epoch_of(raw.get("failed_since")),
            [epoch_of(t) for t in attempts],
            raw.get("error"),
            bool(raw.get("gave_up")),
        )


@dataclass(frozen=True)
class Decision:
    action: str  # restart | wait | gave_up | not_retryable | running
    reason: str
    next_attempt_at: float | None = None


def error_signature(trace: str | None) -> str:
    """The first line of the innermost cause, digits blurred: the same fault reads the same every time."""
    return re.sub(r"\d+", "N", innermost_cause(trace))[:300]


def not_retryable(trace: str | None) -> str | None:
    for pattern, reason in NOT_RETRYABLE:
        if trace and pattern.search(trace):
            return reason
    return None


def decide(
    history: TaskHistory, state: str, trace: str | None, now: float, policy: RecoveryPolicy
) -> Decision:
    """Update ``history`` for a task seen in ``state`` and say what to do about it now."""
    history.attempts = [t for t in history.attempts if now - t <= policy.window]
    if state != "FAILED":
        history.failed_since, history.gave_up = None, False
        return Decision("running" if state == "RUNNING" else "wait", state)
    signature = error_signature(trace)
    if history.failed_since is None:
        history.failed_since = now
        if history.attempts and now - history.attempts[-1] > policy.relapse:
            # it ran cleanly after the last restart: the budget is earned back
            history.attempts = []
    history.error = signature
    reason = not_retryable(trace)
    if reason:
        return Decision("not_retryable", f"{reason} ({signature})")
    if len(history.attempts) >= policy.max_attempts:
        history.gave_up = True
        return Decision(
            "gave_up",
            f"gave up: the error came back within {policy.relapse:.0f} s of each of {len(history.attempts)} restarts; "
            f"last error: {signature}",
        )
    since = max([history.failed_since, *history.attempts])
    due = since + policy.delay(len(history.attempts))
    if now >= due:
        history.attempts.append(now)
        return Decision("restart", f"restart {len(history.attempts)} of {policy.max_attempts}: {signature}")
    return Decision("wait", f"restart {len(history.attempts) + 1} due in {due - now:.0f} s: {signature}", due)
