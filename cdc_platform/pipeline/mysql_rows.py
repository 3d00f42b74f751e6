"""Reading a MySQL/MariaDB source table as Python rows, and the per-column rules that turn pymysql's
values into what a target receives (the same as the CDC converter's). Public, so every copy path
(database targets, SQL Server, S3) reads the same way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterable
from pathlib import Path

import pymysql.cursors

from cdc_platform.db import mysql_connect
from cdc_platform.pipeline.load_errors import FullLoadError
from cdc_platform.pipeline.mysql_session import session_watchdog
from cdc_platform.schema.ddl import qualified, quote
from cdc_platform.schema.model import CopyJob, Table
from cdc_platform.schema.rules import mysql_zero_in_date, rule_for


def mysql_select_list(table: Table) -> str:
    """Column list; FLOAT read as DOUBLE, because MySQL's text protocol prints a FLOAT with only
    6 significant digits while the DOUBLE of the same value is its exact binary value."""
    items = []
    for c in table.columns:
        column = quote("mysql", c.name)
        items.append(f"CAST({column} AS DOUBLE)" if c.type.name == "real" else column)
    return ", ".join(items)


def mysql_time_text(value: dt.timedelta) -> str:
    """MySQL TIME as [-]H:MM:SS.ffffff, the same text the CDC converter writes (Dates.duration)."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    sign, micros = ("-" if micros < 0 else ""), abs(micros)
    return (f"{sign}{micros // 3_600_000_000:02d}:{micros // 60_000_000 % 60:02d}:"
            f"{micros // 1_000_000 % 60:02d}.{micros % 1_000_000:06d}")  # fmt: skip


def mysql_value_fixers(table: Table, target_kind: str, substituted: dict[str, int]):
    """Per-column functions turning a pymysql value into what the target must receive.

    The same rules as the CDC converter: zero-in-date values become NULL (and are counted), TIME
    becomes duration text, BIT(n) a bit string for PostgreSQL, booleans and UTC time zones fixed.
    """
    #: PostgreSQL and S3 take a UTC instant for TIMESTAMP and BIT(n) as a bit string
    pg_forms = target_kind in ("postgresql", "s3")
    fixers: list[tuple[int, Callable]] = []
    for i, c in enumerate(table.columns):
        kind = c.type.name
        if kind in ("date", "timestamp", "timestamptz") and rule_for("mysql", target_kind, c.type):
            utc = kind == "timestamptz" and pg_forms

            def fix(v, name=c.name, utc=utc):
                if v is None:
                    return None
                if mysql_zero_in_date(v):
                    substituted[name] = substituted.get(name, 0) + 1
                    return None
                return v.replace(tzinfo=dt.timezone.utc) if utc else v

            fixers.append((i, fix))
        elif kind == "duration":
            fixers.append((i, lambda v: None if v is None else mysql_time_text(v)))
        elif kind == "boolean":  # BIT(1) arrives as bytes
            fixers.append(
                (i, lambda v: None if v is None else (v != b"\x00" if isinstance(v, bytes) else bool(v)))
            )
        elif kind == "bit" and pg_forms:
            fixers.append(
                (
                    i,
                    lambda v, n=c.type.length: (
                        None if v is None else format(int.from_bytes(v, "big"), f"0{n}b")
                    ),
                )
            )
    return fixers


def mysql_rows(src, job: CopyJob, specs_dir: Path, batch_size: int) -> Iterable[tuple]:
    select = (
        f"SELECT {mysql_select_list(job.table)} FROM {qualified('mysql', job.table.schema, job.table.name)}"
    )
    for batch in mysql_batches(src, job, specs_dir, select, batch_size):
        yield from batch


SNAPSHOT_SCRIPT = "SET SESSION time_zone = '+00:00'; START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"


def mysql_batches(src, job: CopyJob, specs_dir: Path, select: str, batch_size: int) -> Iterable[list]:
    """``select``'s rows in batches, read by pymysql with an unbuffered cursor in one consistent
    snapshot, UTC session time, the session watched (``session_watchdog``)."""

    conn = mysql_connect(src, specs_dir, database=job.table.schema, cursorclass=pymysql.cursors.SSCursor)
    cut: list[str] = []
    try:
        with conn.cursor() as cur, session_watchdog(conn, src, specs_dir, cut):
            for statement in SNAPSHOT_SCRIPT.split("; "):
                cur.execute(statement)
            cur.execute(select)
            while batch := cur.fetchmany(batch_size):
                yield batch
            conn.commit()
    except Exception as exc:
        if cut:
            raise FullLoadError(f"{job.table.qualified}: {cut[0]}") from exc
        raise
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def fixed_rows(rows: Iterable, fixers: list[tuple[int, Callable]]) -> Iterable:
    if not fixers:
        yield from rows
        return
    for row in rows:
        row = list(row)
        for i, fix in fixers:
            row[i] = fix(row[i])
        yield row
