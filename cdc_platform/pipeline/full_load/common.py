"""What every copy path shares: its figures, progress, the count check, LOAD DATA through a FIFO, the shadow table swap, and writing Python rows into PostgreSQL or MySQL/MariaDB."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cdc_platform.db import mysql_connect, pg_connect
from cdc_platform.pipeline.full_load.mysql_deferred_indexes import (
    indexes_built_after as mysql_indexes_built_after,
)
from cdc_platform.pipeline.full_load.pg_deferred_key import indexes_built_after
from cdc_platform.pipeline.load_errors import FullLoadError
from cdc_platform.pipeline.mysql_session import session_watchdog
from cdc_platform.schema.ddl import qualified, quote, shadow_name, truncate_sql
from cdc_platform.schema.model import CopyJob, Table

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


class Progress:
    def __init__(self, label: str, log: Callable[[str], None]):
        self.label, self.log = label, log
        self.started = self.last = time.monotonic()

    def tick(self, rows: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            rate = rows / (now - self.started)
            self.log(f"{self.label}: {rows:,} rows copied ({rate:,.0f} rows/s)")

    def tick_bytes(self, nbytes: int) -> None:
        """For a stream whose rows cannot be counted as it passes (PostgreSQL's binary COPY)."""
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            rate = nbytes / (now - self.started) / 1e6
            self.log(f"{self.label}: {nbytes / 1e6:,.0f} MB copied ({rate:,.1f} MB/s)")


def column_list(kind: str, table: Table) -> str:
    return ", ".join(quote(kind, c.name) for c in table.columns)


def refuse_other_count(loaded: int, sent: int, job: CopyJob, loader: str = "COPY") -> None:
    """Raise (before the commit, so the target keeps its rows) when the target's ``loader`` took
    another number of rows than the source sent: the counts are exact (in ``COPY`` text each row is
    one line), so any difference is a row misread, never a rounding of the count."""
    if loaded != sent:
        raise FullLoadError(
            f"{job.table.qualified} -> {job.target_schema}.{job.target_name}: the source sent {sent:,} rows and "
            f"{loader} loaded {loaded:,}; the target table was left as it was"
        )


#: the loading session: UTC, as the values are written; the format's backslashes must mean escapes
#: whatever the server's sql_mode (under NO_BACKSLASH_ESCAPES a CSV load read one row of thousands)
LOAD_SESSION = "SET SESSION time_zone = '+00:00', sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')"


def load_data_local(dst, job: CopyJob, specs_dir: Path, blocks: Callable[[], Iterable[tuple[bytes, int]]],
                     line_format: str, columns: list[str], sets: list[str], log,
                     sent_rows: Callable[[], int]) -> tuple[int, int]:  # fmt: skip
    """``blocks()`` (whole lines and their row counts) written through a FIFO into ``LOAD DATA LOCAL
    INFILE`` (:func:`load_local_file`): (rows loaded, bytes).

    Either side can fail at any moment, and neither may leave the other blocked on the FIFO: the
    producer opens it for writing (blocking until LOAD DATA opens it for reading) and a failed side
    releases the other with a non-blocking open of the opposite end, so every path ends, with the
    first side's own error, within seconds.
    """

    t = job.table
    workdir = tempfile.mkdtemp(prefix="cdc-load-")
    fifo = os.path.join(workdir, "rows")
    os.mkfifo(fifo, 0o600)
    progress = Progress(t.qualified, log)
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

    def abandon() -> None:
        # the reader is gone: a producer still waiting in open() must not wait forever
        release(os.O_RDONLY)
        producer.join(timeout=10)

    def finish() -> None:
        producer.join(timeout=60)
        if failure:
            raise failure[0]
        if producer.is_alive():
            raise FullLoadError(f"{t.qualified}: the source side did not finish after LOAD DATA ended")

    producer = threading.Thread(target=produce, name=f"copy {t.qualified}", daemon=True)
    try:
        loaded = load_local_file(dst, job, specs_dir, [fifo], line_format, columns, sets, start=producer.start,
                                 finish=finish, abandon=abandon, sent_rows=sent_rows, log=log)  # fmt: skip
    finally:
        if producer.ident is not None:  # started: make sure it is not left waiting on the FIFO
            release(os.O_RDONLY)
            producer.join(timeout=10)
        os.unlink(fifo)
        os.rmdir(workdir)
    return loaded, counters["bytes"]


def load_local_file(dst, job: CopyJob, specs_dir: Path, paths: list[str], line_format: str, columns: list[str],
                    sets: list[str], *, start: Callable[[], None], finish: Callable[[], None],
                    abandon: Callable[[], None], sent_rows: Callable[[], int],
                    log: Callable[[str], None]) -> int:  # fmt: skip
    """``LOAD DATA LOCAL INFILE`` of each of ``paths`` on a shadow of the target table, swapped in on
    success: the rows loaded. Each path is a stream another party writes (a FIFO, a client's pipe).

    Several paths are several ranges of one table, loaded at once by as many sessions, each its own
    transaction: one ``LOAD DATA`` is one server thread, and on a target that has cores to spare it
    was the limit of the whole copy. Every session's rows are committed only once all of them have
    loaded without a warning, and the shadow is not visible before its swap, so the target still sees
    all of the copy or none of it.

    ``start()`` runs just before the loads; ``finish()``, once every load has read its stream to the
    end, raises the writing side's own error (a stream that ended early reads as a short file);
    ``abandon()`` runs when a load fails, so no writer waits forever on a stream nobody reads (and the
    other loads end). ``sent_rows()``, asked after ``finish()``, is how many rows the source sent; a
    load of any other number is refused: a format the server reads differently from how it was written
    (a ``sql_mode``, an escape, a line terminator) loses rows without a warning. The shadow's secondary
    indexes are built once the rows are in (``mysql_deferred_indexes``), before the swap.
    """
    t = job.table
    dconn = mysql_connect(dst, specs_dir, database=job.target_schema, autocommit=False, local_infile=True)
    sessions = [dconn]
    try:
        reconnect = lambda: mysql_connect(dst, specs_dir, database=job.target_schema, autocommit=True)  # noqa: E731
        with dconn.cursor() as dcur, mysql_shadow(dcur, job, reconnect) as shadow:
            target = qualified("mysql", job.target_schema, shadow)
            with mysql_indexes_built_after(dcur, target, t.qualified, log):
                sessions += [mysql_connect(dst, specs_dir, database=job.target_schema, autocommit=False, local_infile=True)
                             for _ in paths[1:]]  # fmt: skip
                loads = [
                    f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {target} {line_format} ({', '.join(columns)})"
                    + (f" SET {', '.join(sets)}" if sets else "")
                    for path in paths
                ]
                start()
                try:
                    outcomes = _load_at_once(sessions, loads, dst, specs_dir, abandon, job)
                    finish()
                    loaded = sum(o.rows for o in outcomes)
                    refuse_other_count(loaded, sent_rows(), job, "LOAD DATA")
                    warnings = sum(o.warnings for o in outcomes)
                    if warnings:
                        shown = "; ".join(w for o in outcomes for w in o.shown)
                        raise FullLoadError(
                            f"{t.qualified} -> {job.target_schema}.{job.target_name}: MariaDB/MySQL reported "
                            f"{warnings} warning(s) loading the rows, so values would have changed; the target "
                            f"table was left as it was. First: {shown}"
                        )
                    for session in sessions[1:]:
                        session.commit()
                except BaseException:
                    # the other sessions' open transactions hold the shadow's metadata lock, which the
                    # shadow's DROP below would wait for forever: they end first
                    for session in sessions[1:]:
                        with contextlib.suppress(Exception):
                            session.rollback()
                        with contextlib.suppress(Exception):
                            session.close()
                    raise
                dconn.commit()
    finally:
        for session in sessions:
            with contextlib.suppress(Exception):
                session.close()
    return loaded


@dataclass
class _LoadOutcome:
    rows: int
    #: LOAD DATA LOCAL turns data errors into warnings; any warning means a changed value
    warnings: int
    shown: list[str]


def _load_one(session, load: str, dst, specs_dir: Path, cut: list[str]) -> _LoadOutcome:
    with session.cursor() as cur:
        # unique_checks and foreign_key_checks stay on: turned off together they send a load into an
        # empty InnoDB table down its bulk-insert path, measured 1-1.5 s slower per million rows here
        # (bench/README.md), and the shadow has no foreign keys (CREATE TABLE LIKE copies none).
        cur.execute(LOAD_SESSION)
        with session_watchdog(session, dst, specs_dir, cut):
            rows = cur.execute(load)
        cur.execute("SHOW COUNT(*) WARNINGS")
        warnings = cur.fetchone()[0]
        shown = []
        if warnings:
            cur.execute("SHOW WARNINGS LIMIT 5")
            shown = [str(w[2]) for w in cur.fetchall()]
    return _LoadOutcome(rows, warnings, shown)


def _load_at_once(sessions: list, loads: list[str], dst, specs_dir: Path, abandon: Callable[[], None],
                  job: CopyJob) -> list[_LoadOutcome]:  # fmt: skip
    """Each load on its own session, all at once (threads: pymysql waits on its socket without the
    GIL); the first failure is raised once every load has ended, the others' streams abandoned."""
    cuts: list[list[str]] = [[] for _ in loads]
    outcomes: list[_LoadOutcome | None] = [None] * len(loads)
    failures: list[tuple[int, BaseException]] = []

    def run(i: int) -> None:
        try:
            outcomes[i] = _load_one(sessions[i], loads[i], dst, specs_dir, cuts[i])
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
            failures.append((i, exc))
            abandon()

    if len(loads) == 1:
        run(0)
    else:
        threads = [threading.Thread(target=run, args=(i,), name=f"load {job.table.qualified} #{i}", daemon=True)
                   for i in range(len(loads))]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        i, exc = failures[0]
        if cuts[i]:  # pymysql reports a cut socket as an AttributeError; say what happened
            raise FullLoadError(
                f"{job.table.qualified} -> {job.target_schema}.{job.target_name}: {cuts[i][0]}"
            ) from exc
        raise exc
    return outcomes  # type: ignore[return-value]


#: the foreign keys of a MySQL/MariaDB table and the ones that refer to it
FOREIGN_KEYS_SQL = """
SELECT table_name, constraint_name, referenced_table_name
FROM information_schema.referential_constraints
WHERE (constraint_schema = %s AND table_name = %s)
   OR (unique_constraint_schema = %s AND referenced_table_name = %s)
ORDER BY table_name, constraint_name
"""


def refuse_foreign_keys(dcur, job: CopyJob) -> None:
    """A MySQL/MariaDB target that has or is referred to by foreign keys is refused before anything
    is touched: ``CREATE TABLE ... LIKE`` gives the shadow none of the table's own, so the swap would
    drop them silently, and a table referring to the target follows the ``RENAME`` to the retired
    table, whose ``DROP`` then fails with the new rows already swapped in."""
    schema, name = job.target_schema, job.target_name
    dcur.execute(FOREIGN_KEYS_SQL, (schema, name, schema, name))
    found = dcur.fetchall()
    if found:
        listed = ", ".join(f"{table}.{constraint} -> {referenced}" for table, constraint, referenced in found)
        raise FullLoadError(
            f"{job.table.qualified} -> {schema}.{name}: the target table has or is referred to by foreign "
            f"keys ({listed}). A full load into MariaDB/MySQL swaps in a new copy of the table, which would "
            "lose its own foreign keys and break the ones referring to it; drop them on the target (a "
            "replica applies each table's changes on its own, so they can fail the sink too). The target "
            "table was left as it was."
        )


@contextlib.contextmanager
def mysql_shadow(dcur, job: CopyJob, reconnect: Callable):
    """Load a MySQL/MariaDB table into a shadow copy and swap it in with one atomic RENAME.

    TRUNCATE commits on MySQL, so loading into the table itself would leave it empty (or half
    full) when a re-load fails. The shadow is created LIKE the target; on success the two names
    are exchanged in one ``RENAME TABLE`` and the old rows dropped; on failure the shadow is dropped
    and the target keeps every row it had.
    """
    schema, name = job.target_schema, job.target_name
    refuse_foreign_keys(dcur, job)
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


def rows_to_pg(dst, job: CopyJob, specs_dir: Path, rows: Iterable, log) -> int:
    """Rows (Python values) into a PostgreSQL table with psycopg's C-level ``COPY ... write_row``,
    after a TRUNCATE in the same transaction: all rows or none."""
    t = job.table
    progress = Progress(t.qualified, log)
    count = 0
    target_q = qualified("postgresql", job.target_schema, job.target_name)
    with pg_connect(dst, specs_dir) as d:
        dcur = d.cursor()
        dcur.execute("SET LOCAL synchronous_commit = off")
        dcur.execute("SET LOCAL TIME ZONE 'UTC'")
        dcur.execute(truncate_sql("postgresql", job.target_schema, job.target_name))
        with (
            indexes_built_after(dcur, target_q, t.qualified, log),
            dcur.copy(f"COPY {target_q} ({column_list('postgresql', t)}) FROM STDIN") as into,
        ):
            for row in rows:
                into.write_row(row)
                count += 1
                if count % 10_000 == 0:
                    progress.tick(count)
        d.commit()
    return count


def rows_to_mysql(dst, job: CopyJob, specs_dir: Path, rows: Iterable, log, batch_size: int) -> int:
    """Rows into a shadow of the MySQL/MariaDB table in INSERT batches, swapped in on success."""
    t = job.table
    progress = Progress(t.qualified, log)
    placeholders = ", ".join(["%s"] * len(t.columns))
    insert = f"INSERT INTO {qualified('mysql', job.target_schema, job.target_name)} ({column_list('mysql', t)}) VALUES ({placeholders})"
    count = 0
    dconn = mysql_connect(dst, specs_dir, database=job.target_schema, autocommit=False)
    try:
        reconnect = lambda: mysql_connect(dst, specs_dir, database=job.target_schema, autocommit=True)  # noqa: E731
        with dconn.cursor() as dcur, mysql_shadow(dcur, job, reconnect) as shadow:
            shadow_q = qualified("mysql", job.target_schema, shadow)
            insert = insert.replace(qualified("mysql", job.target_schema, job.target_name), shadow_q, 1)
            # unique and foreign-key checks stay on, as in load_data_local (faster here, see there)
            dcur.execute("SET SESSION time_zone = '+00:00'")
            # strict: a value the target cannot hold fails the copy instead of changing silently
            dcur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")
            batch: list = []
            cut: list[str] = []
            try:
                with (
                    mysql_indexes_built_after(dcur, shadow_q, t.qualified, log),
                    session_watchdog(dconn, dst, specs_dir, cut),
                ):
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
