"""Copy paths from a PostgreSQL source: COPY relayed into COPY (PostgreSQL), COPY CSV into LOAD DATA (MySQL/MariaDB)."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from cdc_platform.db import pg_connect
from cdc_platform.pipeline.client_process import ClientUnavailable
from cdc_platform.pipeline.full_load.common import (
    COPY_WRITE_BYTES,
    Progress,
    column_list,
    load_data_local,
    load_local_file,
    refuse_other_count,
)
from cdc_platform.pipeline.full_load.pg_deferred_key import indexes_built_after
from cdc_platform.pipeline.load_errors import FullLoadError
from cdc_platform.pipeline.pg_client import PsqlCopyOut, psql_for
from cdc_platform.pipeline.pg_rows import begin_pg_snapshot
from cdc_platform.schema.ddl import qualified, quote, truncate_sql
from cdc_platform.schema.model import CopyJob, Table
from cdc_platform.schema.rules import (
    pg_null_predicate,
    pg_substituted_predicate,
)
from cdc_platform.specs.models import ConnectionSpec


def pg_to_pg(
    src: ConnectionSpec, dst: ConnectionSpec, job: CopyJob, specs_dir: Path, snapshot, log, batch_size
):
    """``COPY TO STDOUT`` relayed into ``COPY FROM STDIN`` after a TRUNCATE in the same target
    transaction (all rows or none).

    In PostgreSQL's binary format when both servers hold every column in the same built-in type
    (``same_binary_form``): neither side then prints or parses a value's text, about a third of
    a table's copy time (bench/README.md). Otherwise in text, whose input functions convert between
    types that differ (an ``inet`` into ``text``). Binary rows cannot be counted in the stream, so
    the source's count is read in the copy's snapshot instead.
    """
    t = job.table
    names = column_list("postgresql", t)
    source_q = qualified("postgresql", t.schema, t.name)
    progress = Progress(t.qualified, log)
    rows = nbytes = 0
    source_rows: list[int] = []
    with pg_connect(dst, specs_dir) as d:
        dcur = d.cursor()
        dcur.execute("SET LOCAL synchronous_commit = off")
        dcur.execute("SET LOCAL client_encoding = 'UTF8'")  # what the source is asked to send
        target_types = column_types(dcur, qualified("postgresql", job.target_schema, job.target_name), t)
        binary: list[bool] = []

        def decide(cur) -> None:
            same = same_binary_form(column_types(cur, source_q, t), target_types, t)
            binary.append(same)
            if same:
                source_rows.append(cur.execute(f"SELECT count(*) FROM {source_q}").fetchone()[0])

        def select(_cur) -> str:
            return f"COPY (SELECT {names} FROM {source_q}) TO STDOUT" + (
                " (FORMAT binary)" if binary[0] else ""
            )

        dcur.execute(truncate_sql("postgresql", job.target_schema, job.target_name))
        blocks = pg_copy_blocks(
            src, specs_dir, snapshot, select, t.qualified, log, in_snapshot=decide, unlined=lambda: binary[0]
        )
        first = next(blocks, None)  # the source's snapshot taken and the format chosen
        fmt = " (FORMAT binary)" if binary[0] else ""
        log(f"{t.qualified}: copying in PostgreSQL's {'binary' if binary[0] else 'text'} format")
        target_q = qualified("postgresql", job.target_schema, job.target_name)
        with indexes_built_after(dcur, target_q, t.qualified, log):
            with dcur.copy(f"COPY {target_q} ({names}) FROM STDIN{fmt}") as into:
                for block in itertools.chain([first] if first is not None else [], blocks):
                    into.write(block)
                    nbytes += len(block)
                    if binary[0]:
                        progress.tick_bytes(nbytes)
                    else:
                        rows += block.count(b"\n")
                        progress.tick(rows)
            if binary[0]:
                rows = source_rows[0]
            refuse_other_count(dcur.rowcount, rows, job)
        d.commit()
    return rows, nbytes, {}


def column_types(cur, table: str, columns: Table) -> tuple[int, dict[str, int | None]]:
    """(the server's major version, ``columns``' names -> their type's OID where that type is built
    into PostgreSQL, whose OID and binary form every server shares; None for a type of the
    database's own, a domain, an enum or an extension's, whose binary form the copy does not
    assume). Binary forms are compared within one major version only."""
    rows = cur.execute(
        "SELECT a.attname, CASE WHEN a.atttypid < 16384 THEN a.atttypid::int END, "
        "current_setting('server_version_num')::int / 10000 FROM pg_attribute a "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        (table,),
    ).fetchall()
    wanted = {c.name for c in columns.columns}
    return (rows[0][2] if rows else 0), {name: oid for name, oid, _ in rows if name in wanted}


def same_binary_form(source: tuple[int, dict], target: tuple[int, dict], columns: Table) -> bool:
    """True when every copied column has the same built-in type on both servers of one major version."""
    (src_major, src_types), (dst_major, dst_types) = source, target
    return (
        src_major == dst_major
        and src_types == dst_types
        and len(src_types) == len(columns.columns)
        and all(oid is not None for oid in src_types.values())
    )


def shared_snapshot(cur, snapshot: str | None) -> str:
    """``snapshot``, or the snapshot of ``cur``'s open transaction, exported for other sessions to import.

    The name comes from CREATE_REPLICATION_SLOT's or pg_export_snapshot()'s reply, never a spec."""
    return snapshot or cur.execute("SELECT pg_export_snapshot()").fetchone()[0]


def psql_in_snapshot(binary: str, src, specs_dir: Path, cur, snapshot: str | None, settings: tuple[str, ...],
                     select: str) -> PsqlCopyOut:  # fmt: skip
    """psql running ``select`` in ``snapshot``, or in the snapshot ``cur``'s open transaction exports;
    that transaction must stay open until psql has begun (it keeps the snapshot importable)."""
    shared = shared_snapshot(cur, snapshot)
    statements = ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", f"SET TRANSACTION SNAPSHOT '{shared}'",
                  *settings, select, "COMMIT"]  # fmt: skip
    return PsqlCopyOut(binary, src, specs_dir, statements)


def pg_copy_blocks(src, specs_dir: Path, snapshot: str | None, select: str | Callable[[object], str], label: str, log,
                    settings: tuple[str, ...] = (), in_snapshot: Callable | None = None,
                    unlined: Callable[[], bool] = lambda: False):  # fmt: skip
    """Blocks of a PostgreSQL ``COPY ... TO STDOUT`` read in ``snapshot`` (or in one snapshot of
    its own), UTF-8 encoded; ``in_snapshot(cursor)`` runs first in that same snapshot (the
    substitution counts, the choice of format), and ``select`` may be a function of that cursor,
    asked after it. ``unlined()``, asked then too, says the stream has no lines: it is passed on as it
    comes rather than in blocks of whole lines.

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
        if callable(select):
            select = select(cur)
        reader = None
        if binary:
            try:
                reader = psql_in_snapshot(binary, src, specs_dir, cur, snapshot, settings, select)
                reader.started()
            except ClientUnavailable as exc:
                log(f"{label}: {binary} could not read the table ({exc}); reading with psycopg")
                reader = None
        if reader:
            try:
                yield from (reader.chunks() if unlined() else reader.blocks())
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


def pg_csv_expression(
    column, index: int, target_kind: str, *, may_substitute: bool = True
) -> tuple[str, str, str | None]:
    """(PostgreSQL select expression, LOAD DATA column or @var, SET clause) for one column.

    Values are rendered so MySQL parses them exactly: booleans as 0/1, timestamps as wall time
    (timestamptz in UTC), bytea as hex decoded by UNHEX on the server, real through float8 (its
    exact binary value: the shortest float4 text can round above FLT_MAX in MySQL), intervals in
    ISO 8601. Values the pair's rule covers become NULL, as the CDC converter makes them; with
    ``may_substitute`` False (the copy's snapshot holds none) the value is not tested at all.
    """
    name = quote("postgresql", column.name)
    target = quote("mysql", column.name)
    kind = column.type.name
    substituted = pg_null_predicate(target_kind, name, column.type) if may_substitute else None
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


def pg_row_and_substitution_counts(cur, table: Table, target_kind: str) -> tuple[int, dict[str, int]]:
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


#: the CSV both PostgreSQL -> MariaDB paths write and LOAD DATA reads (see pg_to_mysql)
PG_CSV_FOR_MYSQL = (
    "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
    "LINES TERMINATED BY '\\n'"
)


def pg_to_mysql(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    """PostgreSQL COPY (CSV) into MariaDB's LOAD DATA LOCAL INFILE.

    CSV with NULL written as a bare ``NULL`` is read by MySQL's ``OPTIONALLY ENCLOSED BY '"'
    ESCAPED BY ''`` without loss: PostgreSQL quotes a value holding a comma, a quote or a line break
    (embedded quotes doubled, line breaks kept) and a text equal to ``NULL``, and MySQL reads only an
    unquoted ``NULL`` as NULL. Quoting every value instead (``FORCE_QUOTE *``) cost MariaDB a sixth
    more time parsing. No row passes through Python objects.

    Where psql is installed and this is Linux, LOAD DATA reads psql's own stdout (``pg_to_mysql_direct``):
    no byte passes through this process's Python. Else the stream is relayed in blocks through a FIFO.
    """
    binary = psql_for()
    if binary and os.path.isdir("/proc/self/fd"):
        try:
            return pg_to_mysql_direct(binary, src, dst, job, specs_dir, snapshot, log)
        except ClientUnavailable as exc:
            log(f"{job.table.qualified}: {binary} could not read the table ({exc}); reading with psycopg")
    return pg_to_mysql_relayed(src, dst, job, specs_dir, snapshot, log)


#: a range of its own only for this many heap pages (32 MB of 8 KB pages) and more: below it, the extra
#: psql, sessions and LOAD DATA cost more than a second stream on the target buys
PAGES_PER_STREAM = 4096


def ctid_ranges(cur, table: Table, streams: int) -> list[str]:
    """``WHERE`` clauses that split ``table`` into up to ``streams`` ranges of its heap pages, asked in
    the copy's snapshot: every row is in exactly one range. ``[""]`` (the whole table) for one stream,
    for a table under two ranges' worth of pages, for anything but a plain table (a partitioned
    table's parent has no pages of its own), and before PostgreSQL 14, which would scan the whole
    table for each range instead of only its pages.

    The first and last ranges are open-ended, so rows on pages added after the size was read are
    still copied (the snapshot cannot see them anyway)."""
    if streams <= 1:
        return [""]
    kind, pages, version = cur.execute(
        "SELECT c.relkind, pg_relation_size(c.oid) / current_setting('block_size')::int, "
        "current_setting('server_version_num')::int FROM pg_class c WHERE c.oid = %s::regclass",
        (qualified("postgresql", table.schema, table.name),),
    ).fetchone()
    ranges = min(streams, pages // PAGES_PER_STREAM)
    if kind != "r" or version < 140000 or ranges < 2:
        return [""]
    bounds: list[int | None] = [None, *(pages * i // ranges for i in range(1, ranges)), None]
    clauses = []
    for low, high in itertools.pairwise(bounds):
        parts = [f"ctid >= '({low},0)'::tid"] if low is not None else []
        parts += [f"ctid < '({high},0)'::tid"] if high is not None else []
        clauses.append(" WHERE " + " AND ".join(parts))
    return clauses


def pg_to_mysql_direct(binary: str, src, dst, job: CopyJob, specs_dir: Path, snapshot, log):
    """psql's ``COPY ... TO STDOUT`` read by ``LOAD DATA LOCAL INFILE '/proc/self/fd/<psql's stdout>'``.

    The rows and substitutions are counted in the copy's snapshot by this process's connection while
    the copy runs (on a thread; psycopg waits for the server without the GIL), not before it: that
    scan used to delay the load's start by a quarter second a million rows, and the relay moved every
    byte through Python twice (pipe to FIFO, FIFO to the socket). Because the count is not known
    when the COPY starts, every column a rule may substitute is tested in it.

    A large table is read as ``job.streams`` ranges of its pages (:func:`ctid_ranges`), each by its own
    psql in the same snapshot into its own LOAD DATA session (``load_local_file``).

    Raises ClientUnavailable, before the target is touched, when psql ends without writing anything.
    """
    t = job.table
    exprs = [pg_csv_expression(c, i, dst.kind.value) for i, c in enumerate(t.columns)]
    settings = ("SET LOCAL intervalstyle = 'iso_8601'",)
    counted: list[tuple[int, dict[str, int]]] = []
    failure: list[BaseException] = []
    written: list[int | None] = []
    count_ready, done = threading.Event(), threading.Event()
    with pg_connect(src, specs_dir, autocommit=True) as s:
        cur = s.cursor()
        cur.execute("SET client_encoding = 'UTF8'")
        begin_pg_snapshot(cur, snapshot)
        ranges = ctid_ranges(cur, t, job.streams)
        shared = shared_snapshot(cur, snapshot)  # one export, imported by every range's psql
        readers: list[PsqlCopyOut] = []
        try:
            for where in ranges:
                select = (f"COPY (SELECT {', '.join(e[0] for e in exprs)} FROM "
                          f"{qualified('postgresql', t.schema, t.name)}{where}) TO STDOUT (FORMAT csv, NULL 'NULL')")  # fmt: skip
                readers.append(psql_in_snapshot(binary, src, specs_dir, cur, shared, settings, select))
            paths = [reader.stream_path() for reader in readers]
            if None in paths:
                raise ClientUnavailable("its output cannot be opened by path here")
            for reader in readers:
                reader.wait_for_output()  # ClientUnavailable: nothing was read, the caller falls back
        except BaseException:
            for reader in readers:
                reader.close()
            raise
        how = (f"{len(readers)} ranges of its pages at once, each read by its own psql into its own LOAD DATA"
               if len(readers) > 1 else "LOAD DATA reads psql's output directly")  # fmt: skip
        log(f"{t.qualified}: {how}; rows counted in the snapshot meanwhile")
        progress = Progress(t.qualified, log)

        def written_bytes() -> int | None:
            sizes = [reader.written_bytes() for reader in readers]
            return None if None in sizes else sum(sizes)  # type: ignore[arg-type]

        def beside() -> None:
            """The counts in the snapshot, then progress from psql's written bytes until the end."""
            try:
                counted.append(pg_row_and_substitution_counts(cur, t, dst.kind.value))
            except BaseException as exc:  # noqa: BLE001 - raised in the loading thread by sent_rows
                failure.append(exc)
                return
            finally:
                count_ready.set()
            while not done.wait(1.0):
                so_far = written_bytes()
                if so_far is not None:
                    progress.tick_bytes(so_far)

        helper = threading.Thread(target=beside, name=f"count {t.qualified}", daemon=True)

        def finish() -> None:
            # read while psql can still be asked (it has closed its output; not yet reaped)
            written.append(written_bytes())
            for reader in readers:
                try:
                    reader.finish()
                except RuntimeError as exc:
                    raise FullLoadError(f"{t.qualified}: reading the source failed: {exc}") from exc

        def abandon() -> None:
            for reader in readers:
                reader.kill()

        def sent_rows() -> int:
            count_ready.wait()
            if failure:
                raise FullLoadError(
                    f"{t.qualified}: counting the source's rows failed: {failure[0]}"
                ) from failure[0]
            return counted[0][0]

        loaded = None
        try:
            loaded = load_local_file(dst, job, specs_dir, paths, PG_CSV_FOR_MYSQL, [e[1] for e in exprs],  # type: ignore[arg-type]
                                     [e[2] for e in exprs if e[2]], start=helper.start, finish=finish,
                                     abandon=abandon, sent_rows=sent_rows, log=log)  # fmt: skip
        finally:
            done.set()
            for reader in readers:
                reader.close()
            if helper.is_alive() and loaded is None:
                s.cancel_safe(timeout=5)  # a failed load: the count still scanning the source is not needed
            if helper.ident is not None:
                helper.join(timeout=30)
        cur.execute("COMMIT")
    return loaded, (written or [None])[0], counted[0][1]


def pg_to_mysql_relayed(src, dst, job: CopyJob, specs_dir: Path, snapshot, log):
    """The stream relayed through this process (``load_data_local``): where LOAD DATA cannot read
    psql's output itself (no psql, not Linux), psycopg reads it."""
    t = job.table
    exprs = [pg_csv_expression(c, i, dst.kind.value) for i, c in enumerate(t.columns)]
    substituted: dict[str, int] = {}
    source_rows: list[int] = []

    def count(cur) -> None:
        rows, counts = pg_row_and_substitution_counts(cur, t, dst.kind.value)
        source_rows.append(rows)
        substituted.update(counts)

    def select(cur) -> str:
        # asked after count(), in the same snapshot: a column with nothing to substitute is copied
        # untested (its test cost a tenth of the copy's time on the source)
        values = [pg_csv_expression(c, i, dst.kind.value, may_substitute=c.name in substituted)[0]
                  for i, c in enumerate(t.columns)]  # fmt: skip
        return (
            f"COPY (SELECT {', '.join(values)} FROM {qualified('postgresql', t.schema, t.name)}) "
            "TO STDOUT (FORMAT csv, NULL 'NULL')"
        )

    def blocks() -> Iterable[tuple[bytes, int]]:
        for data in pg_copy_blocks(
            src, specs_dir, snapshot, select, t.qualified, log, settings=("SET LOCAL intervalstyle = 'iso_8601'",),
            in_snapshot=count,
        ):  # fmt: skip
            yield data, data.count(b"\n")  # lines: the progress figure only

    loaded, nbytes = load_data_local(dst, job, specs_dir, blocks, PG_CSV_FOR_MYSQL, [e[1] for e in exprs],
                                      [e[2] for e in exprs if e[2]], log, sent_rows=lambda: source_rows[0])  # fmt: skip
    return loaded, nbytes, substituted
