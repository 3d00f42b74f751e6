"""Turning a failed connector task into a message that says what happened and what to change.

Kafka Connect reports a failed task as a Java stack trace. For the failures this platform knows,
the trace alone does not say which table caused it (a producer refusing an oversized record names
neither topic nor row), so the explanation looks at the source where it can: for PostgreSQL, the
pending changes in the pipeline's slot name the table and the event size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from cdc_platform.db import mysql_connect, pg_connect
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.pipeline.plan import PipelinePlan

_TOO_LARGE = re.compile(r"RecordTooLargeException: (?P<message>[^\n]*)")
_SERIALIZED = re.compile(r"The message is (?P<size>\d+) bytes when serialized")

#: README section a user is sent to for each known failure
README_LARGE_ROWS = "README.md, 'Large rows'"


@dataclass(frozen=True)
class Explanation:
    kind: str  # event_too_large | unknown
    message: str
    table: str | None = None
    event_bytes: int | None = None


def first_failed_trace(status: dict | None) -> str | None:
    """The trace of the first FAILED task (or of the connector itself), or None if nothing failed."""
    if not status:
        return None
    for task in status.get("tasks", []):
        if task.get("state") == "FAILED":
            return task.get("trace") or ""
    if status.get("connector", {}).get("state") == "FAILED":
        return status["connector"].get("trace") or ""
    return None


def explain(
    plan: PipelinePlan, trace: str, specs_dir: Path | None = None, connect: KafkaConnectResource | None = None
) -> Explanation:
    """Explain a failed task of ``plan``'s connectors; ``specs_dir`` (and for MySQL/MariaDB sources
    ``connect``, for the connector's binlog position) let it read the source."""
    limit = plan.spec.options.max_event_bytes
    match = _TOO_LARGE.search(trace)
    if match:
        size = _SERIALIZED.search(match.group("message"))
        table, event_bytes = None, int(size.group("size")) if size else None
        found = None
        if specs_dir is not None and plan.source.kind.value == "postgresql":
            found = largest_pending_change(plan, specs_dir)
        elif specs_dir is not None and connect is not None and plan.source.kind.value in ("mysql", "mariadb"):
            found = largest_pending_binlog_event(plan, specs_dir, connect)
        if found:
            table, pending = found
            event_bytes = event_bytes or pending
        where = f"a change of table {table}" if table else "a change of one of its tables"
        size_text = f" ({event_bytes:,} bytes)" if event_bytes else ""
        return Explanation(
            "event_too_large",
            f"pipeline {plan.spec.name}: capture stopped at {where}{size_text}: the change event is larger "
            f"than the pipeline's limit options.max_event_bytes = {limit:,} bytes. Nothing was skipped; "
            f"no later change is captured until the limit is raised above the event size (at most "
            f"96 MiB) and the pipeline re-materialized, or the row is made smaller. See {README_LARGE_ROWS}.",
            table,
            event_bytes,
        )
    first = trace.strip().splitlines()[0] if trace.strip() else "no trace"
    causes = re.findall(r"Caused by: ([^\n]*)", trace)
    detail = f"{first}" + (f" (caused by {causes[-1]})" if causes else "")
    return Explanation("unknown", f"pipeline {plan.spec.name}: connector task failed: {detail}")


def largest_pending_change(plan: PipelinePlan, specs_dir: Path) -> tuple[str, int] | None:
    """The table and size of the largest change waiting in the pipeline's (inactive) slot.

    Peeking decodes the slot's backlog without consuming it; pgoutput's insert/update/delete
    messages carry the table's OID right after their type byte. Returns None while the slot is in
    use (the task is running again) or holds no row change.
    """

    names = plan.names
    query = """
        WITH changes AS (
            SELECT ((get_byte(data, 1)::bigint << 24) | (get_byte(data, 2) << 16)
                    | (get_byte(data, 3) << 8) | get_byte(data, 4))::oid AS relid, length(data) AS size
              FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL,
                   'proto_version', '1', 'publication_names', %s)
             WHERE get_byte(data, 0) IN (73, 85, 68)   -- 'I', 'U', 'D'
             ORDER BY length(data) DESC LIMIT 1)
        SELECT n.nspname || '.' || c.relname, changes.size
          FROM changes JOIN pg_class c ON c.oid = changes.relid JOIN pg_namespace n ON n.oid = c.relnamespace"""
    try:
        with pg_connect(plan.source, specs_dir, autocommit=True) as conn:
            row = conn.execute(query, (names.slot, names.publication)).fetchone()
    except psycopg.errors.ObjectInUse:
        return None
    return (row[0], int(row[1])) if row else None


def largest_pending_binlog_event(
    plan: PipelinePlan, specs_dir: Path, connect: KafkaConnectResource, *, events: int = 20_000
) -> tuple[str, int] | None:
    """MySQL/MariaDB: the table of the largest row event after the connector's committed position.

    The position is the source connector's stored offset; ``SHOW BINLOG EVENTS`` lists the events
    after it with their sizes, and each rows event follows the table-map event naming its table.
    """
    offsets = [o.get("offset") or {} for o in connect.offsets(plan.names.source_connector).get("offsets", [])]
    position = next((o for o in offsets if o.get("file")), None)
    if position is None:
        return None
    conn = mysql_connect(plan.source, specs_dir)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SHOW BINLOG EVENTS IN %s FROM %s LIMIT {int(events)}",
                        (position["file"], int(position.get("pos", 4))))  # fmt: skip
            rows = cur.fetchall()
    finally:
        conn.close()
    tables: dict[str, str] = {}
    largest: tuple[str, int] | None = None
    for _log, pos, event_type, _server, end_pos, info in rows:
        match = re.match(r"table_id: (\d+)(?: \((?P<name>[^)]*)\))?", info or "")
        if not match:
            continue
        if event_type == "Table_map" and match.group("name"):
            tables[match.group(1)] = match.group("name")
        elif "rows" in event_type.lower() and match.group(1) in tables:
            size = int(end_pos) - int(pos)
            if largest is None or size > largest[1]:
                largest = (tables[match.group(1)], size)
    return largest
