"""Copying tables source -> target by the fastest native path each pair has.

* PostgreSQL -> PostgreSQL: ``COPY (SELECT ...) TO STDOUT`` read by psql in a second process (or
  psycopg) and relayed in megabyte blocks into ``COPY ... FROM STDIN``; rows are never parsed.
* PostgreSQL -> MySQL/MariaDB: ``COPY ... (FORMAT csv)``, read the same way, streamed through a
  FIFO into ``LOAD DATA LOCAL INFILE``; no row becomes a Python object.
* MySQL/MariaDB -> PostgreSQL: each row rendered as a ``COPY`` text line by the source server
  (``mysql_copy_text``) inside ``START TRANSACTION WITH CONSISTENT SNAPSHOT``, read by the
  ``mariadb`` client in a second process (``mysql_client``) or pymysql, relayed into
  ``COPY ... FROM STDIN`` unparsed.
* MySQL/MariaDB -> MySQL/MariaDB: the same cursor, written as multi-row INSERTs in batches.

A PostgreSQL source copy can join an exported snapshot (``snapshot`` argument), which is what makes
the handoff to Debezium gap-free: every table is read at the slot's consistent point.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from cdc_platform.db import mysql_connect, pg_connect
from cdc_platform.pipeline.client_process import ClientUnavailable
from cdc_platform.pipeline.load_errors import FullLoadError
from cdc_platform.pipeline.mysql_client import ClientResult, client_for
from cdc_platform.pipeline.mysql_copy_text import (
    LOAD_DATA_FORMAT,
    copy_text_select,
    load_data_columns,
    take_substitutions,
)
from cdc_platform.pipeline.mysql_rows import (
    SNAPSHOT_SCRIPT,
    fixed_rows,
    mysql_batches,
    mysql_rows,
    mysql_value_fixers,
)
from cdc_platform.pipeline.mysql_session import session_watchdog, watch_session
from cdc_platform.pipeline.pg_client import PsqlCopyOut, psql_for
from cdc_platform.pipeline.pg_rows import begin_pg_snapshot
from cdc_platform.pipeline.sqlserver_load import (
    mysql_decimal_fixer,
    pg_rows_for_sqlserver,
    sqlserver_rows,
    write_sqlserver,
)
from cdc_platform.schema.ddl import qualified, quote, shadow_name, truncate_sql
from cdc_platform.schema.model import CopyJob, Table
from cdc_platform.schema.rules import (
    describe_rules,
    pg_null_predicate,
    pg_substituted_predicate,
)
from cdc_platform.specs.models import ConnectionSpec

PROGRESS_EVERY_S = 5.0
#: the psycopg relay gathers rows into writes of this size (one write per row costs a Python call each)
COPY_WRITE_BYTES = 1 << 20


@dataclass(frozen=True)
class CopyStats:
    table: str
    rows: int
    #: bytes streamed, where the path sees them (the COPY paths); None where rows never become bytes for us
    bytes: int | None
    seconds: float
    #: column -> rows whose value a rule of cdc_platform/schema/rules.py turned into NULL
    substituted: dict[str, int] = field(default_factory=dict)

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


def _pg_to_pg(
    src: ConnectionSpec, dst: ConnectionSpec, job: CopyJob, specs_dir: Path, snapshot, log, batch_size
):
    """``COPY TO STDOUT`` relayed into ``COPY FROM STDIN`` after a TRUNCATE in the same target
    transaction (all rows or none)."""
    t = job.table
    select = f"COPY (SELECT {_columns('postgresql', t)} FROM {qualified('postgresql', t.schema, t.name)}) TO STDOUT"
    insert = f"COPY {qualified('postgresql', job.target_schema, job.target_name)} ({_columns('postgresql', t)}) FROM STDIN"
    progress = _Progress(t.qualified, log)
    rows = nbytes = 0
    with pg_connect(dst, specs_dir) as d:
        dcur = d.cursor()
        dcur.execute("SET LOCAL synchronous_commit = off")
        dcur.execute("SET LOCAL client_encoding = 'UTF8'")  # what the source is asked to send
        dcur.execute(truncate_sql("postgresql", job.target_schema, job.target_name))
        with dcur.copy(insert) as into:
            for block in _pg_copy_blocks(src, specs_dir, snapshot, select, t.qualified, log):
                into.write(block)
                nbytes += len(block)
                rows += block.count(b"\n")
                progress.tick(rows)
        _refuse_other_count(dcur.rowcount, rows, job)
        d.commit()
    return rows, nbytes, {}


def _refuse_other_count(loaded: int, sent: int, job: CopyJob, loader: str = "COPY") -> None:
    """Raise (before the commit, so the target keeps its rows) when the target's ``loader`` took
    another number of rows than the source sent: the counts are exact (in ``COPY`` text each row is
    one line), so any difference is a row misread, never a rounding of the count."""
    if loaded != sent:
        raise FullLoadError(
            f"{job.table.qualified} -> {job.target_schema}.{job.target_name}: the source sent {sent:,} rows and "
            f"{loader} loaded {loaded:,}; the target table was left as it was"
        )


def _pg_copy_blocks(src, specs_dir: Path, snapshot: str | None, select: str, label: str, log,
                    settings: tuple[str, ...] = (), in_snapshot: Callable | None = None):  # fmt: skip
    """Blocks of a PostgreSQL ``COPY ... TO STDOUT`` read in ``snapshot`` (or in one snapshot of
    its own), UTF-8 encoded; ``in_snapshot(cursor)`` runs first in that same snapshot (the
    substitution counts).

    psql reads the stream in a second process where it is installed (``pg_client``), importing the
    snapshot, which stays exported by the psycopg transaction here until the copy ends; else
    psycopg reads it, its row-by-row reads gathered into megabyte blocks.
    """
    binary = psql_for()
    with pg_connect(src, specs_dir, autocommit=True) as s:
        cur = s.cursor()
        cur.execute("SET client_encoding = 'UTF8'")
        begin_pg_snapshot(cur, snapshot)
        for setting in settings:
            cur.execute(setting)
        if in_snapshot:
            in_snapshot(cur)
        reader = None
        if binary:
            # the name comes from CREATE_REPLICATION_SLOT's or pg_export_snapshot()'s reply, never a spec
            shared = snapshot or cur.execute("SELECT pg_export_snapshot()").fetchone()[0]
            statements = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", f"SET TRANSACTION SNAPSHOT '{shared}'",
                          *settings, select, "COMMIT"]  # fmt: skip
            try:
                reader = PsqlCopyOut(binary, src, specs_dir, statements)
                reader.started()
            except ClientUnavailable as exc:
                log(f"{label}: {binary} could not read the table ({exc}); reading with psycopg")
                reader = None
        if reader:
            try:
                yield from reader.blocks()
            except RuntimeError as exc:
                raise FullLoadError(f"{label}: reading the source failed: {exc}") from exc
            finally:
                reader.close()
        else:
            buffer = bytearray()
            with cur.copy(select) as out:
                for row in out:
                    buffer += row
                    if len(buffer) >= COPY_WRITE_BYTES:
                        yield bytes(buffer)
                        buffer.clear()
            if buffer:
                yield bytes(buffer)
        cur.execute("COMMIT")


def _pg_csv_expression(column, index: int, target_kind: str) -> tuple[str, str, str | None]:
    """(PostgreSQL select expression, LOAD DATA column or @var, SET clause) for one column.

    Values are rendered so MySQL parses them exactly: booleans as 0/1, timestamps as wall time
    (timestamptz in UTC), bytea as hex decoded by UNHEX on the server, real through float8 (its
    exact binary value: the shortest float4 text can round above FLT_MAX in MySQL), intervals in
    ISO 8601. Values the pair's rule covers become NULL, as the CDC converter makes them.
    """
    name = quote("postgresql", column.name)
    target = quote("mysql", column.name)
    kind = column.type.name
    substituted = pg_null_predicate(target_kind, name, column.type)
    if kind == "boolean":
        expr = f"{name}::int"
    elif kind == "real":
        expr = f"{name}::float8"
    elif kind == "timestamptz":
        expr = f"to_char({name} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
    elif kind == "timestamp":
        expr = f"to_char({name}, 'YYYY-MM-DD HH24:MI:SS.US')"
    elif kind == "date":
        expr = f"to_char({name}, 'YYYY-MM-DD')"
    elif kind == "binary":
        var = f"@b{index}"
        return f"encode({name}, 'hex')", var, f"{target} = UNHEX({var})"
    elif kind in ("json", "jsonb", "uuid", "interval", "char"):
        expr = f"{name}::text"  # char: the value without PostgreSQL's padding, as char::text gives it
    else:
        expr = name
    if substituted:
        expr = f"CASE WHEN {substituted} THEN NULL ELSE {expr} END"
    return expr, target, None


def _pg_row_and_substitution_counts(cur, table: Table, target_kind: str) -> tuple[int, dict[str, int]]:
    """(rows, rows per column that the pair's rule turns into NULL), read in the copy's own snapshot.

    One extra scan of the table before the copy. The row count is what the target's ``LOAD DATA``
    must have loaded: CSV values may hold newlines, so the stream's line count is not the row count,
    and a format the server reads differently from how it was written loses rows without a warning.
    The substitution counts let the asset say how many values were substituted instead of leaving
    them silent.
    """
    predicates = {
        c.name: pg_substituted_predicate(target_kind, quote("postgresql", c.name), c.type)
        for c in table.columns
    }
    predicates = {k: v for k, v in predicates.items() if v}
    counts = "".join(f", count(*) FILTER (WHERE {p})" for p in predicates.values())
    row = cur.execute(
        f"SELECT count(*){counts} FROM {qualified('postgresql', table.schema, table.name)}"
    ).fetchone()
    substituted = {name: int(n) for name, n in zip(predicates, row[1:], strict=True) if n}
    return int(row[0]), substituted


def _pg_to_mysql(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    """PostgreSQL COPY (CSV) into MariaDB's LOAD DATA LOCAL INFILE (``_load_data_local``).

    CSV with every non-NULL value quoted and NULL written as a bare ``NULL`` is read by MySQL's
    ``OPTIONALLY ENCLOSED BY '"' ESCAPED BY ''`` without loss (embedded quotes doubled, newlines kept);
    no row passes through Python objects.
    """
    t = job.table
    exprs = [_pg_csv_expression(c, i, dst.kind.value) for i, c in enumerate(t.columns)]
    select = (
        f"COPY (SELECT {', '.join(e[0] for e in exprs)} FROM {qualified('postgresql', t.schema, t.name)}) "
        "TO STDOUT (FORMAT csv, NULL 'NULL', FORCE_QUOTE *)"
    )
    substituted: dict[str, int] = {}
    source_rows: list[int] = []

    def count(cur) -> None:
        rows, counts = _pg_row_and_substitution_counts(cur, t, dst.kind.value)
        source_rows.append(rows)
        substituted.update(counts)

    def blocks() -> Iterable[tuple[bytes, int]]:
        for data in _pg_copy_blocks(
            src, specs_dir, snapshot, select, t.qualified, log, settings=("SET LOCAL intervalstyle = 'iso_8601'",),
            in_snapshot=count,
        ):  # fmt: skip
            yield data, data.count(b"\n")  # lines: the progress figure only

    csv = (
        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
        "LINES TERMINATED BY '\\n'"
    )
    loaded, nbytes = _load_data_local(dst, job, specs_dir, blocks, csv, [e[1] for e in exprs],
                                      [e[2] for e in exprs if e[2]], log, sent_rows=lambda: source_rows[0])  # fmt: skip
    return loaded, nbytes, substituted


#: the loading session: UTC, as the values are written; the format's backslashes must mean escapes
#: whatever the server's sql_mode (under NO_BACKSLASH_ESCAPES a CSV load read one row of thousands)
LOAD_SESSION = "SET SESSION time_zone = '+00:00', sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')"


def _load_data_local(dst, job: CopyJob, specs_dir: Path, blocks: Callable[[], Iterable[tuple[bytes, int]]],
                     line_format: str, columns: list[str], sets: list[str], log,
                     sent_rows: Callable[[], int]) -> tuple[int, int]:  # fmt: skip
    """``blocks()`` (whole lines and their row counts) written through a FIFO into ``LOAD DATA LOCAL
    INFILE`` on a shadow of the target table, swapped in on success: (rows loaded, bytes).

    ``sent_rows()``, asked once the blocks are exhausted, is how many rows the source sent; a load of
    any other number is refused: a format the server reads differently from how it was written (a
    ``sql_mode``, an escape, a line terminator) loses rows without a warning.

    Either side can fail at any moment, and neither may leave the other blocked on the FIFO: the
    producer opens it for writing (blocking until LOAD DATA opens it for reading) and a failed side
    releases the other with a non-blocking open of the opposite end, so every path ends, with the
    first side's own error, within seconds.
    """
    import os
    import tempfile
    import threading

    t = job.table
    workdir = tempfile.mkdtemp(prefix="cdc-load-")
    fifo = os.path.join(workdir, "rows")
    os.mkfifo(fifo, 0o600)
    progress = _Progress(t.qualified, log)
    counters = {"rows": 0, "bytes": 0}
    failure: list[BaseException] = []

    def release(flags: int) -> None:
        """Open the FIFO's other end without blocking, so a side waiting in open() returns."""
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, flags | os.O_NONBLOCK))

    def produce() -> None:
        try:
            with open(fifo, "wb") as sink:
                for data, rows in blocks():
                    sink.write(data)
                    counters["bytes"] += len(data)
                    counters["rows"] += rows
                    progress.tick(counters["rows"])
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)
            release(os.O_WRONLY)  # a LOAD DATA still waiting to open the FIFO sees an empty file

    dconn = mysql_connect(dst, specs_dir, database=job.target_schema, autocommit=False, local_infile=True)
    producer = threading.Thread(target=produce, name=f"copy {t.qualified}", daemon=True)
    try:
        reconnect = lambda: mysql_connect(dst, specs_dir, database=job.target_schema, autocommit=True)  # noqa: E731
        with dconn.cursor() as dcur, _mysql_shadow(dcur, job, reconnect) as shadow:
            # unique_checks and foreign_key_checks stay on: turned off together they send a load into
            # an empty InnoDB table down its bulk-insert path, measured 1-1.5 s slower per million rows
            # here (bench/README.md), and the shadow has no foreign keys (CREATE TABLE LIKE copies none).
            dcur.execute(LOAD_SESSION)
            load = (
                f"LOAD DATA LOCAL INFILE '{fifo}' INTO TABLE {qualified('mysql', job.target_schema, shadow)} "
                f"{line_format} ({', '.join(columns)})" + (f" SET {', '.join(sets)}" if sets else "")
            )
            producer.start()
            cut: list[str] = []
            try:
                with session_watchdog(dconn, dst, specs_dir, cut):
                    loaded = dcur.execute(load)
            except BaseException as exc:
                # the reader is gone: a producer still waiting in open() must not wait forever
                release(os.O_RDONLY)
                producer.join(timeout=10)
                if cut:  # pymysql reports a cut socket as an AttributeError; say what happened
                    raise FullLoadError(
                        f"{t.qualified} -> {job.target_schema}.{job.target_name}: {cut[0]}"
                    ) from exc
                raise
            producer.join(timeout=60)
            if failure:
                raise failure[0]
            if producer.is_alive():
                raise FullLoadError(f"{t.qualified}: the source side did not finish after LOAD DATA ended")
            _refuse_other_count(loaded, sent_rows(), job, "LOAD DATA")
            # LOAD DATA LOCAL turns data errors into warnings; any warning means a changed value
            dcur.execute("SHOW COUNT(*) WARNINGS")
            warnings = dcur.fetchone()[0]
            if warnings:
                dcur.execute("SHOW WARNINGS LIMIT 5")
                shown = "; ".join(f"{w[2]}" for w in dcur.fetchall())
                raise FullLoadError(
                    f"{t.qualified} -> {job.target_schema}.{job.target_name}: MariaDB/MySQL reported "
                    f"{warnings} warning(s) loading the rows, so values would have changed; the target "
                    f"table was left as it was. First: {shown}"
                )
            dconn.commit()
    finally:
        if producer.ident is not None:  # started: make sure it is not left waiting on the FIFO
            release(os.O_RDONLY)
            producer.join(timeout=10)
        dconn.close()
        os.unlink(fifo)
        os.rmdir(workdir)
    return loaded, counters["bytes"]


@contextlib.contextmanager
def _mysql_shadow(dcur, job: CopyJob, reconnect: Callable):
    """Load a MySQL/MariaDB table into a shadow copy and swap it in with one atomic RENAME.

    TRUNCATE commits on MySQL, so loading into the table itself would leave it empty (or half
    full) when a re-load fails. The shadow is created LIKE the target; on success the two names
    are exchanged in one ``RENAME TABLE`` and the old rows dropped; on failure the shadow is dropped
    and the target keeps every row it had.
    """
    schema, name = job.target_schema, job.target_name
    shadow, retired = shadow_name(name, "load"), shadow_name(name, "old")
    target_q = qualified("mysql", schema, name)
    shadow_q, retired_q = qualified("mysql", schema, shadow), qualified("mysql", schema, retired)
    dcur.execute(f"DROP TABLE IF EXISTS {shadow_q}, {retired_q}")
    dcur.execute(f"CREATE TABLE {shadow_q} LIKE {target_q}")
    try:
        yield shadow
    except BaseException:
        try:
            dcur.execute(f"DROP TABLE IF EXISTS {shadow_q}")
        except Exception:  # noqa: BLE001 - the loading connection died; clean up on a fresh one
            with contextlib.suppress(Exception):
                fresh = reconnect()
                try:
                    with fresh.cursor() as cur:
                        cur.execute(f"DROP TABLE IF EXISTS {shadow_q}")
                finally:
                    fresh.close()
        raise
    dcur.execute(f"RENAME TABLE {target_q} TO {retired_q}, {shadow_q} TO {target_q}")
    dcur.execute(f"DROP TABLE {retired_q}")


def _mysql_copy_text(src, job: CopyJob, specs_dir: Path, batch_size: int, substituted: dict[str, int], log,
                     target_kind: str = "postgresql"):  # fmt: skip
    """Blocks of whole ``COPY`` text lines, rendered by the source server (``mysql_copy_text``) and
    read in one consistent snapshot, each with its row count; what the rules changed counted into
    ``substituted`` (``take_substitutions``).

    Read by the ``mariadb``/``mysql`` client in a second process where it can be (``mysql_client``),
    else by pymysql; the lines are the same bytes either way.
    """
    select = copy_text_select(job.table, target_kind)
    binary = client_for(src, specs_dir)
    if binary:
        try:
            result = ClientResult(binary, src, specs_dir, f"{SNAPSHOT_SCRIPT}; {select.sql}; COMMIT")
        except ClientUnavailable as exc:
            log(f"{job.table.qualified}: {binary} could not read the table ({exc}); reading with pymysql")
        else:
            yield from _client_blocks(result, src, job, specs_dir, select, substituted)
            return
    yield from _pymysql_blocks(src, job, specs_dir, batch_size, select, substituted)


def _client_blocks(result: ClientResult, src, job: CopyJob, specs_dir: Path, select, substituted):
    cut: list[str] = []
    try:
        with watch_session(result.session, result.kill, src, specs_dir, cut, look_after_failure=False):
            for block in result.blocks():
                yield take_substitutions(block, select, substituted), block.count(b"\n")
    except Exception as exc:
        if cut:
            raise FullLoadError(f"{job.table.qualified}: {cut[0]}") from exc
        raise FullLoadError(f"{job.table.qualified}: reading the source failed: {exc}") from exc
    finally:
        result.close()


def _pymysql_blocks(src, job: CopyJob, specs_dir: Path, batch_size: int, select, substituted):
    for batch in mysql_batches(src, job, specs_dir, select.sql, batch_size):
        block = b"\n".join([row[0] for row in batch]) + b"\n"
        yield take_substitutions(block, select, substituted), len(batch)


def _mysql_to_pg(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    """MySQL/MariaDB -> PostgreSQL: lines of ``COPY`` text made by the source server, relayed into
    ``COPY ... FROM STDIN`` after a TRUNCATE in the same transaction (all rows or none)."""
    t = job.table
    substituted: dict[str, int] = {}
    progress = _Progress(t.qualified, log)
    rows = nbytes = 0
    insert = f"COPY {qualified('postgresql', job.target_schema, job.target_name)} ({_columns('postgresql', t)}) FROM STDIN"
    with pg_connect(dst, specs_dir) as d:
        dcur = d.cursor()
        dcur.execute("SET LOCAL synchronous_commit = off")
        dcur.execute("SET LOCAL TIME ZONE 'UTC'")
        dcur.execute("SET LOCAL client_encoding = 'UTF8'")  # the lines are utf8mb4 bytes
        dcur.execute(truncate_sql("postgresql", job.target_schema, job.target_name))
        with dcur.copy(insert) as into:
            for block, count in _mysql_copy_text(src, job, specs_dir, batch_size, substituted, log):
                into.write(block)
                rows += count
                nbytes += len(block)
                progress.tick(rows)
        _refuse_other_count(dcur.rowcount, rows, job)
        d.commit()
    return rows, nbytes, substituted


def _rows_to_pg(dst, job: CopyJob, specs_dir: Path, rows: Iterable, log) -> int:
    """Rows (Python values) into a PostgreSQL table with psycopg's C-level ``COPY ... write_row``,
    after a TRUNCATE in the same transaction: all rows or none."""
    t = job.table
    progress = _Progress(t.qualified, log)
    count = 0
    insert = f"COPY {qualified('postgresql', job.target_schema, job.target_name)} ({_columns('postgresql', t)}) FROM STDIN"
    with pg_connect(dst, specs_dir) as d:
        dcur = d.cursor()
        dcur.execute("SET LOCAL synchronous_commit = off")
        dcur.execute("SET LOCAL TIME ZONE 'UTC'")
        dcur.execute(truncate_sql("postgresql", job.target_schema, job.target_name))
        with dcur.copy(insert) as into:
            for row in rows:
                into.write_row(row)
                count += 1
                if count % 10_000 == 0:
                    progress.tick(count)
        d.commit()
    return count


def _mysql_to_mysql(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    """MySQL/MariaDB -> MySQL/MariaDB: lines made by the source server (``mysql_copy_text``, MySQL's
    own value text) into ``LOAD DATA LOCAL INFILE`` (``_load_data_local``); no row passes through
    Python objects."""
    substituted: dict[str, int] = {}
    columns, sets = load_data_columns(job.table)
    sent = [0]

    def blocks() -> Iterable[tuple[bytes, int]]:
        # each line is one row here: the server escapes newlines inside values
        for block, rows in _mysql_copy_text(
            src, job, specs_dir, batch_size, substituted, log, dst.kind.value
        ):
            sent[0] += rows
            yield block, rows

    loaded, nbytes = _load_data_local(dst, job, specs_dir, blocks, LOAD_DATA_FORMAT, columns, sets, log,
                                      sent_rows=lambda: sent[0])  # fmt: skip
    return loaded, nbytes, substituted


def _rows_to_mysql(dst, job: CopyJob, specs_dir: Path, rows: Iterable, log, batch_size: int) -> int:
    """Rows into a shadow of the MySQL/MariaDB table in INSERT batches, swapped in on success."""
    t = job.table
    progress = _Progress(t.qualified, log)
    placeholders = ", ".join(["%s"] * len(t.columns))
    insert = f"INSERT INTO {qualified('mysql', job.target_schema, job.target_name)} ({_columns('mysql', t)}) VALUES ({placeholders})"
    count = 0
    dconn = mysql_connect(dst, specs_dir, database=job.target_schema, autocommit=False)
    try:
        reconnect = lambda: mysql_connect(dst, specs_dir, database=job.target_schema, autocommit=True)  # noqa: E731
        with dconn.cursor() as dcur, _mysql_shadow(dcur, job, reconnect) as shadow:
            insert = insert.replace(qualified("mysql", job.target_schema, job.target_name),
                                    qualified("mysql", job.target_schema, shadow), 1)  # fmt: skip
            # unique and foreign-key checks stay on, as in _load_data_local (faster here, see there)
            dcur.execute("SET SESSION time_zone = '+00:00'")
            # strict: a value the target cannot hold fails the copy instead of changing silently
            dcur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")
            batch: list = []
            cut: list[str] = []
            try:
                with session_watchdog(dconn, dst, specs_dir, cut):
                    for row in rows:
                        batch.append(row)
                        if len(batch) >= batch_size:
                            dcur.executemany(insert, batch)
                            count += len(batch)
                            batch = []
                            progress.tick(count)
                    if batch:
                        dcur.executemany(insert, batch)
                        count += len(batch)
                    dconn.commit()
            except Exception as exc:
                if cut:
                    raise FullLoadError(
                        f"{t.qualified} -> {job.target_schema}.{job.target_name}: {cut[0]}"
                    ) from exc
                raise
    finally:
        dconn.close()
    return count


def _sqlserver_to_pg(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    substituted: dict[str, int] = {}
    rows = sqlserver_rows(src, job, specs_dir, batch_size, "postgresql", substituted)
    return _rows_to_pg(dst, job, specs_dir, rows, log), None, substituted


def _sqlserver_to_mysql(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    substituted: dict[str, int] = {}
    rows = sqlserver_rows(src, job, specs_dir, batch_size, dst.kind.value, substituted)
    return _rows_to_mysql(dst, job, specs_dir, rows, log, batch_size), None, substituted


def _to_sqlserver(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    substituted: dict[str, int] = {}
    kind = src.kind.value
    if kind == "postgresql":
        rows: Iterable = pg_rows_for_sqlserver(src, job, specs_dir, snapshot, batch_size, substituted)
    elif kind == "sqlserver":
        rows = sqlserver_rows(src, job, specs_dir, batch_size, "sqlserver", substituted)
    else:
        fixers = mysql_value_fixers(job.table, "sqlserver", substituted)
        fixers += sorted(mysql_decimal_fixer(job.table, substituted).items())
        rows = fixed_rows(mysql_rows(src, job, specs_dir, batch_size), fixers)
    progress = _Progress(job.table.qualified, log)
    return write_sqlserver(dst, job, specs_dir, rows, batch_size, progress.tick), None, substituted


def _to_s3(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    from cdc_platform.s3.snapshot import write_snapshot

    progress = _Progress(job.table.qualified, log)
    return write_snapshot(
        src, dst, job, specs_dir, snapshot=snapshot, batch_size=batch_size, tick=progress.tick
    )


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
    if dst_kind == "s3" and src_kind in (pg, *my):
        return _to_s3
    if dst_kind == "sqlserver" and src_kind in (pg, *my, "sqlserver"):
        return _to_sqlserver
    if src_kind == "sqlserver" and dst_kind == pg:
        return _sqlserver_to_pg
    if src_kind == "sqlserver" and dst_kind in my:
        return _sqlserver_to_mysql
    raise ValueError(f"no full-load path for {src_kind} -> {dst_kind} (specs are checked for this at load)")


def copy_table(src: ConnectionSpec, dst: ConnectionSpec, job: CopyJob, specs_dir: Path, *,
               snapshot: str | None = None, log: Callable[[str], None] = print, batch_size: int = 10_000) -> CopyStats:  # fmt: skip
    copy = _route(src.kind.value, dst.kind.value)
    started = time.monotonic()
    rows, nbytes, substituted = copy(src, dst, job, specs_dir, snapshot, log, batch_size)
    stats = CopyStats(job.table.qualified, rows, nbytes, time.monotonic() - started, substituted)
    for column, count in sorted(substituted.items()):
        ctype = next(c.type for c in job.table.columns if c.name == column)
        log(f"{job.table.qualified}.{column}: {count:,} value(s) changed by rule: "
            f"{describe_rules(src.kind.value, dst.kind.value, ctype)}")  # fmt: skip
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


__all__ = ["CopyStats", "copy_table", "copy_tables"]
