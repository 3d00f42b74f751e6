"""The audit log: every change the platform makes outside Dagster's own records, with who, what, when,
and the old and new config as a (masked) diff.

Connector writes are recorded where they happen (``KafkaConnectResource``), slot, publication,
heartbeat and DDL changes where the pipeline makes them, the sensor's restarts and acknowledgements
where they are decided. *Who* comes from :func:`acting_as`: the Dagster run (and the user who
launched it, when Dagster knows), the sensor, or the OS user of the CLI. A failure to write the log
is logged loudly but never stops the change it describes: a pipeline must not stay broken because
the audit database is.
"""

from __future__ import annotations

import contextvars
import getpass
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from cdc_platform.clock import utc_text
from cdc_platform.platform_db import AUDIT, platform_engine
from cdc_platform.secrets import mask_secret_values

log = logging.getLogger(__name__)
_actor: contextvars.ContextVar[str | None] = contextvars.ContextVar("cdc_audit_actor", default=None)


def current_actor() -> str:
    return _actor.get() or f"{_os_user()} (cli)"


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def run_user(context) -> str | None:
    """The user who launched the run, where Dagster knows: behind the production profile's proxy every
    run launched from the UI or GraphQL carries the signed-in user (``dagster/user``, set by the
    proxy's webservers and by no client); sensors', schedules' and CLI runs carry none."""
    run = getattr(context, "run", None)
    return (run.tags or {}).get("dagster/user") if run else None


def run_actor(context) -> str:
    """A Dagster run as an actor: its id, and the launching user where the run's tags say."""
    run = getattr(context, "run", None)
    user = run_user(context)
    return f"dagster run {run.run_id if run else context.run_id}" + (f" by {user}" if user else "")


def _masked_text(text: str | None) -> str | None:
    return None if text is None else mask_secret_values(text)


def record(action: str, target: str, *, pipeline: str | None = None, detail: str | None = None,
           diff: dict | None = None, url: str | None = None) -> None:  # fmt: skip
    """Append one entry; ``diff`` must already be masked (``plan.config_diff`` masks)."""
    try:
        with platform_engine(url).begin() as conn:
            conn.execute(AUDIT.insert().values(
                at=time.time(), actor=current_actor(), pipeline=pipeline or _pipeline_of(target), action=action,
                target=target, detail=_masked_text(detail), diff=json.dumps(diff, sort_keys=True) if diff else None,
            ))  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - see the module docstring
        log.error("could not write the audit log (%s %s): %s: %s", action, target, type(exc).__name__, exc)


def _pipeline_of(target: str) -> str | None:
    """``<pipeline>-source`` / ``<pipeline>-sink`` connectors and ``cdc_<pipeline>`` slots name their pipeline."""
    match = re.match(r"^([a-z][a-z0-9_]*)-(source|sink)$", target) or re.match(
        r"^cdc_([a-z][a-z0-9_]*)$", target
    )
    return match.group(1) if match else None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    pipeline: str | None
    action: str
    target: str
    detail: str | None
    diff: str | None


def audit_table(rows: list[AuditEntry]) -> str:
    """Markdown of audit entries (newest first), for asset metadata."""
    lines = ["| when (UTC) | who | what | detail |", "|---|---|---|---|"]
    for e in rows:
        when = utc_text(e.at)
        detail = (e.detail or (f"{len(json.loads(e.diff))} key(s) changed" if e.diff else "")).replace(
            "|", "/"
        )
        lines.append(f"| {when} | {e.actor} | {e.action} | {detail[:120]} |")
    return "\n".join(lines) if rows else "no audit entries yet"


def entries(pipeline: str | None = None, since: float = 0.0, target: str | None = None, limit: int = 500,
            url: str | None = None) -> list[AuditEntry]:  # fmt: skip
    query = (
        sa.select(AUDIT)
        .where(AUDIT.c.at >= since)
        .order_by(AUDIT.c.at.desc(), AUDIT.c.id.desc())
        .limit(limit)
    )
    if pipeline:
        query = query.where(AUDIT.c.pipeline == pipeline)
    if target:
        query = query.where(AUDIT.c.target == target)
    with platform_engine(url).connect() as conn:
        return [AuditEntry(**row._mapping) for row in conn.execute(query)]
