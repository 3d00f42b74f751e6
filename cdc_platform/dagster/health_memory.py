"""What the health sensor remembers between ticks: its cursor.

Per connector: the last reported verdict (so an unchanged one is written only every few minutes),
its restarts and each task's failure history (so a restarted daemon keeps counting where it left
off); one entry for the worker asset and one per pipeline's table checks. People read the cursor on
the sensor's page: times are UTC text, and only what is set is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cdc_platform.clock import epoch_of, iso_utc
from cdc_platform.health.recovery import TaskHistory

#: re-report an unchanged state this often, so the UI's "last evaluated" stays fresh
REPORT_EVERY_SECONDS = 300.0

#: the cursor entry of the worker asset (orphans), beside the connectors' entries
WORKER_MEMORY = "__worker__"

#: the cursor entry of a pipeline's table checks: ``TABLES_MEMORY + pipeline``
TABLES_MEMORY = "__tables__:"


@dataclass
class ConnectorMemory:
    """The cursor's record of one connector."""

    signature: str | None = None
    reported_at: float = 0.0
    unhealthy_since: float | None = None
    restarts: int = 0
    tasks: dict[str, TaskHistory] = field(default_factory=dict)
    #: it failed (or Connect was unreachable) since it last ran: running again is a recovery
    failed: bool = False

    def to_json(self) -> dict:
        """Times in UTC text and only what is set: the cursor is read by people on the sensor's page."""
        out: dict = {"reported_at": iso_utc(self.reported_at)}
        if self.signature:
            out["signature"] = self.signature
        if self.unhealthy_since is not None:
            out["unhealthy_since"] = iso_utc(self.unhealthy_since)
        if self.restarts:
            out["restarts"] = self.restarts
        tasks = {k: v.to_json() for k, v in self.tasks.items()}
        if any(tasks.values()):
            out["tasks"] = {k: v for k, v in tasks.items() if v}
        if self.failed:
            out["failed"] = True
        return out

    @classmethod
    def from_json(cls, raw: dict) -> ConnectorMemory:
        return cls(raw.get("signature"), epoch_of(raw.get("reported_at")) or 0.0, epoch_of(raw.get("unhealthy_since")),
                   int(raw.get("restarts", 0)),
                   {k: TaskHistory.from_json(v) for k, v in raw.get("tasks", {}).items()},
                   bool(raw.get("failed", False)))  # fmt: skip


def load_cursor(cursor: str | None) -> dict[str, ConnectorMemory]:
    if not cursor:
        return {}
    try:
        raw = json.loads(cursor)
    except ValueError:
        return {}
    return {name: ConnectorMemory.from_json(v) for name, v in raw.get("connectors", {}).items()}


def dump_cursor(memory: dict[str, ConnectorMemory]) -> str:
    return json.dumps(
        {"connectors": {k: v.to_json() for k, v in sorted(memory.items())}}, sort_keys=True, indent=1
    )
