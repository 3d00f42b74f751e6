"""A PostgreSQL table read as Python values in batches, with a pair's rules applied in SQL.

For targets that take rows rather than a COPY stream (SQL Server, S3): a named (server-side) cursor
inside the copy's snapshot, so memory stays flat whatever the table's size. Each value a rule
covers comes back NULL, followed by a flag column saying so; :func:`unflag` counts the flags.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from cdc_platform.db import pg_connect
from cdc_platform.schema.ddl import qualified, quote
from cdc_platform.schema.model import CopyJob, Table
from cdc_platform.schema.rules import pg_null_predicate
from cdc_platform.schema.types import CanonicalType

Row = list


def begin_pg_snapshot(cur, snapshot: str | None) -> None:
    cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if snapshot:
        # the name comes from CREATE_REPLICATION_SLOT's reply, never from a spec
        cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")


def pg_rule_select(
    table: Table, target_kind: str, as_text: Callable[[CanonicalType], bool]
) -> tuple[str, list[str]]:
    """The SELECT, and the columns followed by a substitution flag. ``as_text`` picks the columns
    read in PostgreSQL's own text form (what the CDC converter sends for them too)."""
    items, flagged = [], []
    for c in table.columns:
        col = quote("postgresql", c.name)
        expr = f"{col}::text" if as_text(c.type) else col
        predicate = pg_null_predicate(target_kind, col, c.type)
        if predicate:
            items.append(f"CASE WHEN {predicate} THEN NULL ELSE {expr} END")
            items.append(f"COALESCE({predicate}, false)")
            flagged.append(c.name)
        else:
            items.append(expr)
    return f"SELECT {', '.join(items)} FROM {qualified('postgresql', table.schema, table.name)}", flagged


def pg_rule_rows(src, job: CopyJob, specs_dir: Path, snapshot: str | None, batch_size: int, target_kind: str,
                 substituted: dict[str, int], as_text: Callable[[CanonicalType], bool]) -> Iterator[Row]:  # fmt: skip
    t = job.table
    select, flagged = pg_rule_select(t, target_kind, as_text)
    with pg_connect(src, specs_dir, autocommit=True) as conn:
        cur = conn.cursor()
        begin_pg_snapshot(cur, snapshot)
        cur.execute("SET LOCAL intervalstyle = 'iso_8601'")
        cur.execute("SET LOCAL TIME ZONE 'UTC'")
        with conn.cursor(name="cdc_full_load") as named:  # server-side: batches, never the whole table
            named.itersize = batch_size
            named.execute(select)
            for raw in named:
                yield unflag(list(raw), t, flagged, substituted, {})
        cur.execute("COMMIT")


def unflag(raw: list, table: Table, flagged: list[str], substituted: dict[str, int],
           fixers: dict[int, Callable]) -> Row:  # fmt: skip
    """The table's row from a select that follows each ``flagged`` column with a 0/1 flag (the value
    was changed by a rule): flags counted per column, then each non-NULL value fixed for the target."""
    row, i = [], 0
    for index, c in enumerate(table.columns):
        value = raw[i]
        i += 1
        if c.name in flagged:
            if raw[i]:
                substituted[c.name] = substituted.get(c.name, 0) + 1
            i += 1
        fix = fixers.get(index)
        row.append(fix(value) if fix is not None and value is not None else value)
    return row
