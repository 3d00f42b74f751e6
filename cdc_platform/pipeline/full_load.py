"""Copying tables source -> target by the fastest native path each pair has.

* PostgreSQL -> PostgreSQL: ``COPY (SELECT ...) TO STDOUT`` streamed block by block into
  ``COPY ... FROM STDIN``; rows are never parsed in Python.
* PostgreSQL -> MySQL/MariaDB: ``COPY ... (FORMAT csv)`` streamed through a FIFO into
  ``LOAD DATA LOCAL INFILE``; no row becomes a Python object.
* MySQL/MariaDB -> PostgreSQL: an unbuffered cursor inside ``START TRANSACTION WITH CONSISTENT
  SNAPSHOT``, written with psycopg's C-level ``COPY ... write_row``.
* MySQL/MariaDB -> MySQL/MariaDB: the same cursor, written as multi-row INSERTs in batches.

A PostgreSQL source copy can join an exported snapshot (``snapshot`` argument), which is what makes
the handoff to Debezium gap-free: every table is read at the slot's consistent point.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from cdc_platform.db import mysql_connect, pg_connect
from cdc_platform.schema.ddl import qualified, quote, truncate_sql
from cdc_platform.schema.discovery import Table
from cdc_platform.specs.models import ConnectionSpec

PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class CopyJob:
    table: Table
    target_schema: str
    target_name: str


@dataclass(frozen=True)
class CopyStats:
    table: str
    rows: int
    #: bytes streamed, where the path sees them (the COPY paths); None where rows never become bytes for us
    bytes: int | None
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float(self.rows)


class _Progress:
    def __init__(self, label: str, log: Callable[[str], None]):
        self.label, self.log = label, log
        self.started = self.last = time.monotonic()

    def tick(self, rows: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            rate = rows / (now - self.started)
            self.log(f"{self.label}: {rows:,} rows copied ({rate:,.0f} rows/s)")


def _columns(kind: str, table: Table) -> str:
    return ", ".join(quote(kind, c.name) for c in table.columns)


def _begin_pg_snapshot(cur, snapshot: str | None) -> None:
    cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    if snapshot:
        # the name comes from CREATE_REPLICATION_SLOT's reply, never from a spec
        cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")


def _pg_to_pg(
    src: ConnectionSpec, dst: ConnectionSpec, job: CopyJob, specs_dir: Path, snapshot, log, batch_size
):
    t = job.table
    progress = _Progress(t.qualified, log)
    rows = nbytes = 0
    select = f"COPY (SELECT {_columns('postgresql', t)} FROM {qualified('postgresql', t.schema, t.name)}) TO STDOUT"
    insert = f"COPY {qualified('postgresql', job.target_schema, job.target_name)} ({_columns('postgresql', t)}) FROM STDIN"
    with pg_connect(src, specs_dir, autocommit=True) as s, pg_connect(dst, specs_dir) as d:
        scur, dcur = s.cursor(), d.cursor()
        _begin_pg_snapshot(scur, snapshot)
        dcur.execute("SET LOCAL synchronous_commit = off")
        dcur.execute(truncate_sql("postgresql", job.target_schema, job.target_name))
        with scur.copy(select) as out, dcur.copy(insert) as into:
            for block in out:
                into.write(block)
                nbytes += len(block)
                rows += bytes(block).count(b"\n")
                progress.tick(rows)
        d.commit()
        scur.execute("COMMIT")
    return rows, nbytes


def _pg_csv_expression(column) -> tuple[str, str, str | None]:
    """(PostgreSQL select expression, LOAD DATA column or @var, SET clause) for one column.

    Values are rendered so MySQL parses them exactly: booleans as 0/1, timestamptz as UTC wall time,
    bytea as hex decoded by UNHEX on the server.
    """
    name = quote("postgresql", column.name)
    target = quote("mysql", column.name)
    kind = column.type.name
    if kind == "boolean":
        return f"{name}::int", target, None
    if kind == "timestamptz":
        return f"to_char({name} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')", target, None
    if kind == "binary":
        var = f"@b{abs(hash(column.name)) % 10_000_000}"
        return f"encode({name}, 'hex')", var, f"{target} = UNHEX({var})"
    return f"{name}::text" if kind in ("json", "jsonb", "uuid") else name, target, None


def _pg_to_mysql(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    """PostgreSQL COPY (CSV) streamed through a FIFO into MariaDB's LOAD DATA LOCAL INFILE.

    CSV with every non-NULL value quoted and NULL written as a bare ``NULL`` is read by MySQL's
    ``OPTIONALLY ENCLOSED BY '"' ESCAPED BY ''`` without loss (embedded quotes doubled, newlines kept);
    no row passes through Python objects.
    """
    import os
    import tempfile
    import threading

    t = job.table
    exprs = [_pg_csv_expression(c) for c in t.columns]
    select = (
        f"COPY (SELECT {', '.join(e[0] for e in exprs)} FROM {qualified('postgresql', t.schema, t.name)}) "
        "TO STDOUT (FORMAT csv, NULL 'NULL', FORCE_QUOTE *)"
    )
    sets = [e[2] for e in exprs if e[2]]
    workdir = tempfile.mkdtemp(prefix="cdc-load-")
    fifo = os.path.join(workdir, "rows.csv")
    os.mkfifo(fifo, 0o600)
    load = (
        f"LOAD DATA LOCAL INFILE '{fifo}' INTO TABLE {qualified('mysql', job.target_schema, job.target_name)} "
        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
        f"LINES TERMINATED BY '\\n' ({', '.join(e[1] for e in exprs)})"
        + (f" SET {', '.join(sets)}" if sets else "")
    )
    progress = _Progress(t.qualified, log)
    counters = {"rows": 0, "bytes": 0}
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with open(fifo, "wb") as sink, pg_connect(src, specs_dir, autocommit=True) as s:
                scur = s.cursor()
                _begin_pg_snapshot(scur, snapshot)
                with scur.copy(select) as out:
                    for block in out:
                        data = bytes(block)
                        sink.write(data)
                        counters["bytes"] += len(data)
                        counters["rows"] += data.count(b"\n")
                        progress.tick(counters["rows"])
                scur.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)
            with contextlib.suppress(OSError):  # unblock a reader waiting on the FIFO
                open(fifo, "wb").close()

    dconn = mysql_connect(dst, specs_dir, database=job.target_schema, autocommit=False, local_infile=True)
    producer = threading.Thread(target=produce, daemon=True)
    try:
        with dconn.cursor() as dcur:
            dcur.execute("SET SESSION time_zone = '+00:00', unique_checks = 0, foreign_key_checks = 0")
            dcur.execute(truncate_sql("mysql", job.target_schema, job.target_name))
            producer.start()
            loaded = dcur.execute(load)
        producer.join()
        if failure:
            raise failure[0]
        dconn.commit()
    finally:
        producer.join(timeout=5)
        dconn.close()
        os.unlink(fifo)
        os.rmdir(workdir)
    return loaded, counters["bytes"]


def _mysql_rows(src, job: CopyJob, specs_dir: Path, batch_size: int) -> Iterable[tuple]:
    import pymysql.cursors

    t = job.table
    conn = mysql_connect(src, specs_dir, database=t.schema, cursorclass=pymysql.cursors.SSCursor)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            cur.execute(f"SELECT {_columns('mysql', t)} FROM {qualified('mysql', t.schema, t.name)}")
            while True:
                batch = cur.fetchmany(batch_size)
                if not batch:
                    break
                yield from batch
            conn.commit()
    finally:
        conn.close()


def _mysql_to_pg(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    t = job.table
    progress = _Progress(t.qualified, log)
    bool_cols = [i for i, c in enumerate(t.columns) if c.type.name == "boolean"]
    tz_cols = [i for i, c in enumerate(t.columns) if c.type.name == "timestamptz"]
    rows = 0
    insert = f"COPY {qualified('postgresql', job.target_schema, job.target_name)} ({_columns('postgresql', t)}) FROM STDIN"
    with pg_connect(dst, specs_dir) as d:
        dcur = d.cursor()
        dcur.execute("SET LOCAL synchronous_commit = off")
        dcur.execute("SET LOCAL TIME ZONE 'UTC'")
        dcur.execute(truncate_sql("postgresql", job.target_schema, job.target_name))
        with dcur.copy(insert) as into:
            for row in _mysql_rows(src, job, specs_dir, batch_size):
                if bool_cols or tz_cols:
                    row = list(row)
                    for i in bool_cols:
                        if isinstance(row[i], bytes):
                            row[i] = row[i] != b"\x00"
                        elif row[i] is not None:
                            row[i] = bool(row[i])
                    for i in tz_cols:
                        if row[i] is not None:
                            row[i] = row[i].replace(tzinfo=dt.timezone.utc)
                into.write_row(row)
                rows += 1
                if rows % 10_000 == 0:
                    progress.tick(rows)
        d.commit()
    return rows, None


def _mysql_to_mysql(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    t = job.table
    progress = _Progress(t.qualified, log)
    placeholders = ", ".join(["%s"] * len(t.columns))
    insert = f"INSERT INTO {qualified('mysql', job.target_schema, job.target_name)} ({_columns('mysql', t)}) VALUES ({placeholders})"
    rows = 0
    dconn = mysql_connect(dst, specs_dir, database=job.target_schema, autocommit=False)
    try:
        with dconn.cursor() as dcur:
            dcur.execute("SET SESSION time_zone = '+00:00', unique_checks = 0, foreign_key_checks = 0")
            dcur.execute(truncate_sql("mysql", job.target_schema, job.target_name))
            batch: list[tuple] = []
            for row in _mysql_rows(src, job, specs_dir, batch_size):
                batch.append(row)
                if len(batch) >= batch_size:
                    dcur.executemany(insert, batch)
                    rows += len(batch)
                    batch = []
                    progress.tick(rows)
            if batch:
                dcur.executemany(insert, batch)
                rows += len(batch)
        dconn.commit()
    finally:
        dconn.close()
    return rows, None


COPY_PAIRS = {
    (src, dst) for src in ("postgresql", "mysql", "mariadb") for dst in ("postgresql", "mysql", "mariadb")
}


def _route(src_kind: str, dst_kind: str):
    pg, my = "postgresql", ("mysql", "mariadb")
    if src_kind == pg and dst_kind == pg:
        return _pg_to_pg
    if src_kind == pg and dst_kind in my:
        return _pg_to_mysql
    if src_kind in my and dst_kind == pg:
        return _mysql_to_pg
    if src_kind in my and dst_kind in my:
        return _mysql_to_mysql
    raise ValueError(f"no full-load path for {src_kind} -> {dst_kind} (specs are checked for this at load)")


def copy_table(src: ConnectionSpec, dst: ConnectionSpec, job: CopyJob, specs_dir: Path, *,
               snapshot: str | None = None, log: Callable[[str], None] = print, batch_size: int = 10_000) -> CopyStats:  # fmt: skip
    copy = _route(src.kind.value, dst.kind.value)
    started = time.monotonic()
    rows, nbytes = copy(src, dst, job, specs_dir, snapshot, log, batch_size)
    stats = CopyStats(job.table.qualified, rows, nbytes, time.monotonic() - started)
    log(f"{job.table.qualified} -> {job.target_schema}.{job.target_name}: {rows:,} rows in "
        f"{stats.seconds:.1f} s ({stats.rows_per_second:,.0f} rows/s)")  # fmt: skip
    return stats


def copy_tables(src: ConnectionSpec, dst: ConnectionSpec, jobs: list[CopyJob], specs_dir: Path, *,
                parallelism: int, snapshot: str | None = None, log: Callable[[str], None] = print,
                batch_size: int = 10_000) -> dict[str, CopyStats]:  # fmt: skip
    """Copy every job, ``parallelism`` tables at a time; the first failure is raised after the rest stop."""
    results: dict[str, CopyStats] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(jobs)))) as pool:
        futures = {
            pool.submit(
                copy_table, src, dst, job, specs_dir, snapshot=snapshot, log=log, batch_size=batch_size
            ): job
            for job in jobs
        }
        for future in as_completed(futures):
            job = futures[future]
            results[job.table.qualified] = future.result()
    return results


__all__ = ["CopyJob", "CopyStats", "copy_table", "copy_tables"]
