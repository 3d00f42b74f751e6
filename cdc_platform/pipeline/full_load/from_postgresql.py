"""Copy paths from a PostgreSQL source: COPY relayed into COPY (PostgreSQL), COPY CSV into LOAD DATA (MySQL/MariaDB)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from cdc_platform.db import pg_connect
from cdc_platform.pipeline.client_process import ClientUnavailable
from cdc_platform.pipeline.full_load.common import (
    COPY_WRITE_BYTES,
    Progress,
    column_list,
    load_data_local,
    refuse_other_count,
)
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
    transaction (all rows or none)."""
    t = job.table
    select = f"COPY (SELECT {column_list('postgresql', t)} FROM {qualified('postgresql', t.schema, t.name)}) TO STDOUT"
    insert = f"COPY {qualified('postgresql', job.target_schema, job.target_name)} ({column_list('postgresql', t)}) FROM STDIN"
    progress = Progress(t.qualified, log)
    rows = nbytes = 0
    with pg_connect(dst, specs_dir) as d:
        dcur = d.cursor()
        dcur.execute("SET LOCAL synchronous_commit = off")
        dcur.execute("SET LOCAL client_encoding = 'UTF8'")  # what the source is asked to send
        dcur.execute(truncate_sql("postgresql", job.target_schema, job.target_name))
        with dcur.copy(insert) as into:
            for block in pg_copy_blocks(src, specs_dir, snapshot, select, t.qualified, log):
                into.write(block)
                nbytes += len(block)
                rows += block.count(b"\n")
                progress.tick(rows)
        refuse_other_count(dcur.rowcount, rows, job)
        d.commit()
    return rows, nbytes, {}


def pg_copy_blocks(src, specs_dir: Path, snapshot: str | None, select: str, label: str, log,
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


def pg_csv_expression(column, index: int, target_kind: str) -> tuple[str, str, str | None]:
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


def pg_to_mysql(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    """PostgreSQL COPY (CSV) into MariaDB's LOAD DATA LOCAL INFILE (``load_data_local``).

    CSV with every non-NULL value quoted and NULL written as a bare ``NULL`` is read by MySQL's
    ``OPTIONALLY ENCLOSED BY '"' ESCAPED BY ''`` without loss (embedded quotes doubled, newlines kept);
    no row passes through Python objects.
    """
    t = job.table
    exprs = [pg_csv_expression(c, i, dst.kind.value) for i, c in enumerate(t.columns)]
    select = (
        f"COPY (SELECT {', '.join(e[0] for e in exprs)} FROM {qualified('postgresql', t.schema, t.name)}) "
        "TO STDOUT (FORMAT csv, NULL 'NULL', FORCE_QUOTE *)"
    )
    substituted: dict[str, int] = {}
    source_rows: list[int] = []

    def count(cur) -> None:
        rows, counts = pg_row_and_substitution_counts(cur, t, dst.kind.value)
        source_rows.append(rows)
        substituted.update(counts)

    def blocks() -> Iterable[tuple[bytes, int]]:
        for data in pg_copy_blocks(
            src, specs_dir, snapshot, select, t.qualified, log, settings=("SET LOCAL intervalstyle = 'iso_8601'",),
            in_snapshot=count,
        ):  # fmt: skip
            yield data, data.count(b"\n")  # lines: the progress figure only

    csv = (
        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' "
        "LINES TERMINATED BY '\\n'"
    )
    loaded, nbytes = load_data_local(dst, job, specs_dir, blocks, csv, [e[1] for e in exprs],
                                      [e[2] for e in exprs if e[2]], log, sent_rows=lambda: source_rows[0])  # fmt: skip
    return loaded, nbytes, substituted
