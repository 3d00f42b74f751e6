"""Checksum reconciliation: do the source table and its target hold the same rows, value for value?

The table is cut into chunks of about ``chunk_rows`` rows: ranges of the key when it is one integer
column, otherwise buckets of the key's hash (ranges of a text key would sort differently on the two
engines' collations). Each side computes, per chunk and in one scan, the row count and the sum of a
60-bit hash of each row's canonical text (``canonical.py``); only chunks whose figures differ are
looked at again. An integer-keyed chunk is bisected, with the same figures per half, down to
ranges of at most ``leaf_rows`` rows; a hash bucket is read as it is. The rows of those ranges are
then read from both sides and compared by key: a key only on the source is **missing**, only on
the target **extra**, on both with other values **changed** (with the columns that differ).

A table that changes while it is checked is read source first; then the check waits until the sink
has consumed every change the source had produced by then, and reads the target. Chunks that differ
are read again the same way after giving Debezium time to capture the last changes. The rows they
narrow down to are read from the source, then from the target once the sink has caught up, then
from the source again: a row that changed on the source meanwhile is in flight and not judged, one
that did not must be equal on the target. A row is reported only when it differs so in every round
(``attempts``), so replication in flight is not a divergence.

A table with a ``real`` or ``double`` column streams its rows' hashes and floats to Python instead
of aggregating in the database (see ``canonical.py`` for why); the result is the same, slower.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cdc_platform.db import engine_for, mysql_connect, pg_connect
from cdc_platform.pipeline.plan import PipelineNames, table_topic
from cdc_platform.quality import canonical as cn
from cdc_platform.quality.counts import CAPTURE_GRACE_SECONDS, topic_offsets
from cdc_platform.schema.ddl import qualified, quote
from cdc_platform.schema.discovery import column_names, describe_table
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.rules import family
from cdc_platform.specs.models import ConnectionSpec

#: how long a round waits for the sink to consume what the source had produced
CATCH_UP_SECONDS = 30.0


@dataclass(frozen=True)
class Side:
    conn: ConnectionSpec
    specs_dir: Path
    schema: str
    table: str

    @property
    def kind(self) -> str:
        return family(self.conn.kind.value)


@dataclass(frozen=True)
class RowDifference:
    key: str
    kind: str  # missing | extra | changed
    columns: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        out = {"key": self.key, "kind": self.kind}
        if self.columns:
            out["columns"] = list(self.columns)
        return out


@dataclass
class Reconciliation:
    chunks: int = 0
    chunks_differing: int = 0
    source_rows: int = 0
    target_rows: int = 0
    rounds: int = 0
    seconds: float = 0.0
    in_database: bool = True
    differences: list[RowDifference] = field(default_factory=list)
    #: more differing rows exist than were named
    truncated: bool = False
    columns_not_compared: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.differences and not self.truncated


class UncheckableTable(ValueError):
    """The table cannot be reconciled (no key, an engine without canonical SQL); the message says why."""


@dataclass(frozen=True)
class Layout:
    """What is compared and how: the columns both sides have, the key, and each side's SQL."""

    columns: tuple[Column, ...]
    key: tuple[Column, ...]
    source_kind: str
    target_kind: str

    @classmethod
    def of(cls, table: Table, target_columns: set[str], source_kind: str, target_kind: str) -> Layout:
        for kind in (source_kind, target_kind):
            if family(kind) not in ("postgresql", "mysql"):
                raise UncheckableTable(
                    f"checksums are not implemented for {kind} (PostgreSQL and MySQL/MariaDB only)"
                )
        if not table.primary_key:
            raise UncheckableTable(
                f"{table.qualified} has no primary key (declare one in the pipeline's overrides)"
            )
        by_name = {c.name: c for c in table.columns}
        missing_key = [k for k in table.primary_key if k not in target_columns]
        if missing_key:
            raise UncheckableTable(f"the target table lacks key column(s) {missing_key}")
        compared = tuple(c for c in table.columns if c.name in target_columns)
        return cls(compared, tuple(by_name[k] for k in table.primary_key), source_kind, target_kind)

    @property
    def python_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.type.name in cn.PYTHON_TYPES)

    @property
    def sql_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.type.name not in cn.PYTHON_TYPES)

    @property
    def in_database(self) -> bool:
        return not self.python_columns

    @property
    def integer_key(self) -> Column | None:
        return self.key[0] if len(self.key) == 1 and self.key[0].type.name in cn.INTEGER_TYPES else None

    def kind(self, role: str) -> str:
        return self.source_kind if role == "source" else self.target_kind

    def text(self, role: str, column: Column) -> str:
        col = quote(self.kind(role), column.name)
        if role == "source":
            return cn.source_text(self.source_kind, self.target_kind, column.type, col)
        return cn.target_text(self.target_kind, column.type, col)

    def key_text(self, role: str) -> str:
        return cn.row_text_sql(self.kind(role), [self.text(role, c) for c in self.key])

    def row_md5(self, role: str) -> str:
        kind = self.kind(role)
        return cn.md5_sql(kind, cn.row_text_sql(kind, [self.text(role, c) for c in self.sql_columns]))

    def floats(self, role: str) -> list[str]:
        return [self.text(role, c) for c in self.python_columns]

    def python_hash(self, role: str, row_md5: str, floats: tuple) -> int:
        """The row's hash in Python mode: its SQL columns' md5 with the floats' canonical texts."""
        ruled = role == "source" and self.source_kind == "postgresql" and family(self.target_kind) == "mysql"
        texts = [
            cn.wrap(cn.float_text(v, c.type, ruled)) for v, c in zip(floats, self.python_columns, strict=True)
        ]
        return int(hashlib.md5(cn.SEPARATOR.join([row_md5, *texts]).encode()).hexdigest()[:15], 16)


@dataclass(frozen=True)
class Chunking:
    """Integer key: ``bucket = (key - low) / width`` (-1 below ``low``); else a hash of the key text."""

    buckets: int
    low: int | None = None
    width: int | None = None

    def bucket_sql(self, layout: Layout, role: str) -> str:
        kind = layout.kind(role)
        key = layout.integer_key
        if key is not None and self.low is not None:
            col = quote(kind, key.name)
            div = "/" if kind == "postgresql" else "DIV"
            cast = "::bigint" if kind == "postgresql" else ""
            return (
                f"CASE WHEN {col} < {self.low} THEN -1 ELSE ({col}{cast} - {self.low}) {div} {self.width} END"
            )
        return cn.bucket28_sql(kind, cn.md5_sql(kind, layout.key_text(role)), self.buckets)

    def predicate(self, layout: Layout, role: str, buckets: list[int]) -> str:
        """SQL true for the rows of ``buckets``: key ranges where the key is an integer (an index
        range scan), else the hash buckets (a scan)."""
        key = layout.integer_key
        if key is None or self.low is None:
            return _in_buckets(self.bucket_sql(layout, role), buckets)
        kind = layout.kind(role)
        return " OR ".join(f"({_range_predicate(kind, key.name, *self.range_of(b))})" for b in buckets)

    def range_of(self, bucket: int) -> tuple[int | None, int | None]:
        assert self.low is not None and self.width is not None
        if bucket < 0:
            return None, self.low
        return self.low + bucket * self.width, self.low + (bucket + 1) * self.width


class Reader:
    """One side's connection: figures per chunk and rows of a range, read in the canonical text."""

    def __init__(self, side: Side, layout: Layout, role: str):
        self.side, self.layout, self.role, self.kind = side, layout, role, side.kind
        self.table_sql = qualified(self.kind, side.schema, side.table)
        if self.kind == "postgresql":
            self.db = pg_connect(side.conn, side.specs_dir, autocommit=True)
            for statement in cn.PG_SESSION:
                self.db.execute(statement)
        else:
            self.db = mysql_connect(side.conn, side.specs_dir, database="", autocommit=True)
            with self.db.cursor() as cur:
                for statement in cn.MYSQL_SESSION:
                    cur.execute(statement)

    def close(self) -> None:
        self.db.close()

    def fetch(self, sql: str) -> list[tuple]:
        if self.kind == "postgresql":
            return self.db.execute(sql).fetchall()
        with self.db.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    def stream(self, sql: str) -> Iterator[tuple]:
        if self.kind == "postgresql":
            with self.db.cursor() as cur:
                yield from cur.stream(sql, size=5000)
            return
        # lazy: keeps pymysql off the code location's load path
        import pymysql.cursors

        with self.db.cursor(pymysql.cursors.SSCursor) as cur:
            cur.execute(sql)
            while batch := cur.fetchmany(5000):
                yield from batch

    def where(self, predicate: str | None) -> str:
        return f" WHERE {predicate}" if predicate else ""

    def figures(self, bucket_sql: str, predicate: str | None = None) -> dict[int, tuple[int, int]]:
        """Per chunk: (rows, sum of row hashes)."""
        layout, kind = self.layout, self.kind
        if layout.in_database:
            h = cn.hash60_sql(kind, layout.row_md5(self.role))
            sql = (f"SELECT {bucket_sql} AS b, count(*), sum({h}) FROM {self.table_sql}{self.where(predicate)} "
                   "GROUP BY 1")  # fmt: skip
            return {int(b): (int(n), int(s or 0)) for b, n, s in self.fetch(sql)}
        columns = ", ".join([bucket_sql, layout.row_md5(self.role), *layout.floats(self.role)])
        out: dict[int, list[int]] = {}
        for row in self.stream(f"SELECT {columns} FROM {self.table_sql}{self.where(predicate)}"):
            acc = out.setdefault(int(row[0]), [0, 0])
            acc[0] += 1
            acc[1] += layout.python_hash(self.role, row[1], tuple(row[2:]))
        return {b: (n, s) for b, (n, s) in out.items()}

    def rows(self, predicate: str) -> dict[str, tuple[int, dict[str, str]]]:
        """key text -> (row hash, column -> wrapped canonical text) for the rows of ``predicate``."""
        layout, kind = self.layout, self.kind
        sql_cols = layout.sql_columns
        parts = [cn.wrapped_sql(kind, layout.text(self.role, c)) for c in sql_cols]
        select = ", ".join([layout.key_text(self.role), *parts, *layout.floats(self.role)]) or "1"
        out = {}
        ruled = (
            self.role == "source"
            and layout.source_kind == "postgresql"
            and family(layout.target_kind) == "mysql"
        )
        for row in self.fetch(f"SELECT {select} FROM {self.table_sql} WHERE {predicate}"):
            key, texts, floats = row[0], list(row[1 : 1 + len(sql_cols)]), tuple(row[1 + len(sql_cols) :])
            md5 = hashlib.md5(cn.SEPARATOR.join(texts).encode()).hexdigest()
            h = int(md5[:15], 16) if layout.in_database else layout.python_hash(self.role, md5, floats)
            values = dict(zip([c.name for c in sql_cols], texts, strict=True))
            for value, column in zip(floats, layout.python_columns, strict=True):
                values[column.name] = cn.wrap(cn.float_text(value, column.type, ruled))
            out[key] = (h, values)
        return out


@contextmanager
def _readers(source: Side, target: Side, layout: Layout):
    readers: list[Reader] = []
    try:
        readers.append(Reader(source, layout, "source"))
        readers.append(Reader(target, layout, "target"))
        yield readers[0], readers[1]
    finally:
        for reader in readers:
            reader.close()


def _key_label(layout: Layout, key_text: str) -> str:
    values = key_text.split(cn.SEPARATOR)
    return ", ".join(
        f"{c.name}={v[1:] if v.startswith(':') else 'NULL'}" for c, v in zip(layout.key, values, strict=False)
    )


def reconcile(
    source: Side, target: Side, table: Table, target_columns: set[str], *, catch_up=None, chunk_rows: int = 1000,
    leaf_rows: int = 64, max_differences: int = 20, attempts: int = 2,
) -> Reconciliation:  # fmt: skip
    """``catch_up``: a callable that waits until the sink has consumed what the source produced so
    far (None: the pipeline does not stream, so one round is exact)."""
    started = time.monotonic()
    layout = Layout.of(table, target_columns, source.kind, target.kind)
    result = Reconciliation(in_database=layout.in_database)
    result.columns_not_compared = sorted({c.name for c in table.columns} - {c.name for c in layout.columns})
    with _readers(source, target, layout) as (src, tgt):
        chunking = _chunking(src, layout, chunk_rows)
        src_buckets, tgt_buckets = (
            chunking.bucket_sql(layout, "source"),
            chunking.bucket_sql(layout, "target"),
        )

        def both(predicate: str | None, tgt_predicate: str | None, grace: bool):
            a = src.figures(src_buckets, predicate)
            if catch_up:
                catch_up(grace)
            return a, tgt.figures(tgt_buckets, tgt_predicate)

        # the first pass only finds candidate chunks, so both sides are scanned at once; a chunk that
        # differs because a change was in flight is read again below, in order
        with ThreadPoolExecutor(max_workers=2) as pool:
            scan_a, scan_b = pool.submit(src.figures, src_buckets), pool.submit(tgt.figures, tgt_buckets)
            a, b = scan_a.result(), scan_b.result()
        result.source_rows = sum(n for n, _ in a.values())
        result.target_rows = sum(n for n, _ in b.values())
        result.chunks = len(set(a) | set(b))
        differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        result.rounds = 1
        if differing and catch_up:  # replication in flight: read those chunks again, giving capture time
            result.rounds += 1
            a, b = both(chunking.predicate(layout, "source", differing), chunking.predicate(layout, "target", differing),
                        grace=True)  # fmt: skip
            differing = [k for k in differing if a.get(k) != b.get(k)]
        result.chunks_differing = len(differing)

        # narrow the differing chunks down to ranges of rows, then compare those rows by key (one read
        # per side for a batch of chunks, so a busy table costs one wait for the sink per batch); the
        # next batch is looked at only while fewer differences than asked for are found
        found: dict[str, RowDifference] = {}
        batch = max_differences + 1
        for first in range(0, len(differing), batch):
            leaves = [p for bucket in differing[first : first + batch]
                      for p in _narrow(src, tgt, layout, chunking, bucket, leaf_rows)]  # fmt: skip
            if not leaves:
                continue
            result.rounds += 1
            candidates = {d.key: d for d in _compare_rows(src, tgt, layout, leaves, catch_up)}
            # rows that changed during the check: read again, keep those that differ in every round
            for _ in range(attempts - 1 if catch_up else 0):
                if not candidates:
                    break
                result.rounds += 1
                again = _compare_rows(src, tgt, layout, leaves, catch_up)
                candidates = {d.key: d for d in again if d.key in candidates}
            found.update(candidates)
            if len(found) > max_differences:
                break
    result.truncated = len(found) > max_differences
    result.differences = sorted(found.values(), key=lambda d: d.key)[:max_differences]
    result.seconds = time.monotonic() - started
    return result


def _in_buckets(bucket_sql: str, buckets: list[int]) -> str:
    return f"({bucket_sql}) IN ({', '.join(str(b) for b in buckets)})"


def _chunking(src: Reader, layout: Layout, chunk_rows: int) -> Chunking:
    key = layout.integer_key
    if key is None:
        (rows,) = src.fetch(f"SELECT count(*) FROM {src.table_sql}")[0]
        return Chunking(max(1, math.ceil(int(rows) / chunk_rows)))
    col = quote(src.kind, key.name)
    rows, low, high = src.fetch(f"SELECT count(*), min({col}), max({col}) FROM {src.table_sql}")[0]
    if not rows:
        return Chunking(1, 0, 1)
    buckets = max(1, math.ceil(int(rows) / chunk_rows))
    return Chunking(buckets, int(low), max(1, math.ceil((int(high) - int(low) + 1) / buckets)))


def _range_predicate(kind: str, column: str, low: int | None, high: int | None) -> str:
    col = quote(kind, column)
    parts = ([f"{col} >= {low}"] if low is not None else []) + (
        [f"{col} < {high}"] if high is not None else []
    )
    return " AND ".join(parts)


def _narrow(src: Reader, tgt: Reader, layout: Layout, chunking: Chunking, bucket: int, leaf_rows: int):
    """Predicates (source, target) of row ranges that differ within a differing chunk."""
    key = layout.integer_key
    if key is None or chunking.low is None:
        yield chunking.predicate(layout, "source", [bucket]), chunking.predicate(layout, "target", [bucket])
        return
    pending = [chunking.range_of(bucket)]
    while pending:
        low, high = pending.pop()
        s_pred = _range_predicate(src.kind, key.name, low, high)
        t_pred = _range_predicate(tgt.kind, key.name, low, high)
        if low is None or high is None or high - low <= 1:
            yield s_pred, t_pred
            continue
        a = src.figures("0", s_pred).get(0, (0, 0))
        b = tgt.figures("0", t_pred).get(0, (0, 0))
        if a == b:
            continue
        if max(a[0], b[0]) <= leaf_rows:
            yield s_pred, t_pred
            continue
        middle = low + (high - low) // 2
        pending += [(middle, high), (low, middle)]


def _compare_rows(
    src: Reader, tgt: Reader, layout: Layout, leaves: list[tuple[str, str]], catch_up=None
) -> list[RowDifference]:
    """Rows of ``leaves`` that differ. With replication running, the source is read before and after
    the target (after the sink caught up with the first read): a row that changed on the source in
    between is in flight and not judged; one that stayed the same must be the same on the target."""
    s_where, t_where = " OR ".join(f"({s})" for s, _ in leaves), " OR ".join(f"({t})" for _, t in leaves)
    a = src.rows(s_where)
    if catch_up:
        catch_up(True)
    b = tgt.rows(t_where)
    settled = a
    if catch_up:
        again = src.rows(s_where)
        settled = {k: v for k, v in a.items() if again.get(k, (None,))[0] == v[0]}
        unsettled = (a.keys() ^ again.keys()) | (a.keys() - settled.keys())
    else:
        unsettled = set()
    diffs = []
    for key in (a.keys() | b.keys()) - unsettled:
        label = _key_label(layout, key)
        if key not in b:
            diffs.append(RowDifference(label, "missing"))
        elif key not in a:
            diffs.append(RowDifference(label, "extra"))
        elif settled[key][0] != b[key][0]:
            columns = tuple(c.name for c in layout.columns if a[key][1].get(c.name) != b[key][1].get(c.name))
            diffs.append(RowDifference(label, "changed", columns))
    return diffs


def stream_catch_up(bootstrap: str, topic: str, group: str, timeout: float = CATCH_UP_SECONDS):
    """A ``catch_up`` for :func:`reconcile`: waits until the sink group's committed offset reaches the
    topic's end offset, so the changes the source had made are on the target. With ``grace``, the end
    offset is read only after ``CAPTURE_GRACE_SECONDS``: a change committed just before the source
    was read may not be in the topic yet (Debezium reads the log with a short delay)."""

    def wait(grace: bool = False) -> None:
        if grace:
            time.sleep(CAPTURE_GRACE_SECONDS)
        end = topic_offsets(bootstrap, topic, group)[0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and topic_offsets(bootstrap, topic, group)[1] < end:
            time.sleep(0.3)

    return wait


def reconcile_pipeline_table(
    specs, spec, qualified_name: str, target_table: str, *, bootstrap: str | None = None, **options
) -> Reconciliation:
    """Reconcile one table of a pipeline as its specs describe it: the source table as it is now
    (with a key declared in the overrides), against the target columns that exist."""

    source, target = specs.connection(spec.source), specs.connection(spec.target)
    schema, name = qualified_name.split(".", 1)
    source_engine, target_engine = engine_for(source, specs.directory), engine_for(target, specs.directory)
    try:
        table = describe_table(source_engine, source.kind.value, schema, name)
        target_columns = set(column_names(target_engine, target.kind.value, spec.target_schema, target_table))
    finally:
        source_engine.dispose()
        target_engine.dispose()
    override = spec.overrides.get(qualified_name)
    if not table.primary_key and override and override.primary_key:
        table = Table(table.schema, table.name, table.columns, tuple(override.primary_key), declared_key=True)
    catch_up = None
    if spec.streams and bootstrap:
        names = PipelineNames(spec.name)
        catch_up = stream_catch_up(
            bootstrap, table_topic(source, names, qualified_name), f"connect-{names.sink_connector}"
        )
    return reconcile(
        Side(source, specs.directory, schema, name), Side(target, specs.directory, spec.target_schema, target_table),
        table, target_columns, catch_up=catch_up, **options,
    )  # fmt: skip
