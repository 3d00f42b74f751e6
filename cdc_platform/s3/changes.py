"""The S3 target's sink: change events from Kafka into Parquet change files, exactly once.

A flush assigns itself every partition of the pipeline's table topics (no group rebalancing: one
writer per pipeline), reads from where it left off up to the end offsets it saw when it started,
and writes one file per table partition named by the first and last offsets it holds. Offsets are
committed to the consumer group ``cdc-<pipeline>-s3`` only after the file is written. If the writer
dies between the two, the next flush finds the file, whose name says how far it got, and resumes
after it: no offset is written twice and none is skipped.

Each change becomes one row: the row after the change (the row before it for a delete), plus
``_cdc_op`` (c, u, d), ``_cdc_source_ts_ms``, ``_cdc_position`` (PostgreSQL LSN, or binlog
``file:position``) and ``_cdc_seq`` (2 x offset + 1; see cdc_platform/s3/snapshot.py); in the Iceberg
layout also ``_cdc_partition``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaException, TopicPartition

from cdc_platform.kafka_log import kafka_client_config
from cdc_platform.pipeline.plan import PipelineNames
from cdc_platform.s3.events import ChangeEvent, parse_event
from cdc_platform.s3.iceberg_catalog import LakeNames, lake_catalog
from cdc_platform.s3.iceberg_tables import (
    append_once,
    ensure_lake_tables,
    lake_arrow_schema,
    recorded_offsets,
)
from cdc_platform.s3.storage import TableLocation, last_written_offset, put_bytes, s3_client, s3_filesystem
from cdc_platform.s3.values import Substituted, arrow_schema, change_value
from cdc_platform.schema.model import Table
from cdc_platform.specs.models import ConnectionSpec

#: how many events one flush takes from one partition at most (a file's size in events)
MAX_EVENTS_PER_FILE = 200_000


def consumer_group(pipeline: str) -> str:
    return PipelineNames(pipeline).s3_writer_group


@dataclass(frozen=True)
class WriterShare:
    """One of ``of`` writers of a pipeline: it writes the partitions ``p`` with ``p % of == index``.

    A fixed split rather than a Kafka consumer group: each writer assigns its partitions itself, as
    the single writer does, so their Kafka commits need no group membership, a writer that stops
    leaves its partitions waiting (uncommitted, not lost) until it runs again, and no rebalance moves
    a partition between two appends. A second copy of one share is harmless: the change log's
    appends are fenced by the offsets they record (cdc_platform/s3/iceberg_tables.py)."""

    index: int
    of: int

    def owns(self, partition: int) -> bool:
        return partition % self.of == self.index

    def __str__(self) -> str:
        return f"{self.index + 1} of {self.of}"


@dataclass(frozen=True)
class S3Table:
    """One replicated table of an S3 pipeline: where its changes come from and where they go."""

    qualified: str
    topic: str
    table: Table
    location: TableLocation
    #: the Iceberg tables (table_format iceberg), else None: Parquet change files under ``location``
    lake: LakeNames | None = None


@dataclass
class TableFlush:
    files: list[str] = field(default_factory=list)
    #: the change log's snapshots this flush committed (table_format iceberg)
    snapshots: list[int] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    #: partition -> the next offset to read (what is committed)
    committed: dict[int, int] = field(default_factory=dict)
    #: partition -> events still in the topic beyond what is committed
    lag: dict[int, int] = field(default_factory=dict)
    substituted: dict[str, int] = field(default_factory=dict)
    #: partition -> the offset a recovered (written but uncommitted) file ended at
    recovered: dict[int, int] = field(default_factory=dict)
    #: why this table's changes stopped (a value the writer cannot write, an upload that failed);
    #: what came before is written and committed, nothing after it is written or skipped
    error: str | None = None


class UnwritableValue(Exception):
    """A change holds a value the Parquet column cannot take: named by column, offset and its form."""

    def __init__(self, column: str, offset: int, form: str, reason: str):
        super().__init__(f"column {column!r} holds {form}; {reason}")
        self.column, self.offset = column, offset
        #: the topic partition it is on (set by the batch that met it)
        self.partition = 0


def value_form(value, field: dict | None = None) -> str:
    """What a value looks like, never what it is (a value may be personal data): its type, size and
    how Kafka Connect encoded it."""
    if isinstance(value, Decimal):
        sign, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int):
            return f"a decimal {value}"  # NaN or infinity: no data in it
        fraction = max(0, -exponent)
        integer = max(0, len(digits) + exponent)
        shape = f"a decimal of {integer} integer and {fraction} fractional digits"
    elif isinstance(value, str):
        shape = f"a text of {len(value)} characters"
    elif isinstance(value, bytes):
        shape = f"{len(value)} bytes"
    elif isinstance(value, bool):
        shape = "a boolean"
    elif isinstance(value, int):
        shape = f"an integer of {value.bit_length()} bits"
    else:
        shape = f"a {type(value).__name__}"
        year = getattr(value, "year", None)
        if year is not None:
            shape += f" in year {year}"
    if field:
        encoded = field.get("type", "?") + (f" {field['name']}" if field.get("name") else "")
        parameters = field.get("parameters") or {}
        if "scale" in parameters:
            encoded += f" scale {parameters['scale']}"
        shape += f" (sent as {encoded})"
    return shape


def waiting_changes(bootstrap: str, pipeline: str, topics: list[str]) -> dict[str, int]:
    """topic -> changes captured but not yet written (end offsets minus the writer's committed ones)."""
    consumer = Consumer(kafka_client_config(bootstrap, **{"group.id": consumer_group(pipeline),
                                                          "enable.auto.commit": False}))  # fmt: skip
    try:
        metadata = consumer.list_topics(timeout=10).topics
        waiting: dict[str, int] = {}
        for topic in topics:
            if topic not in metadata or metadata[topic].error is not None:
                waiting[topic] = 0  # nothing captured yet
                continue
            total = 0
            for partition in metadata[topic].partitions:
                tp = TopicPartition(topic, partition)
                (committed,) = consumer.committed([tp], timeout=10)
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                total += max(high - (committed.offset if committed.offset >= 0 else low), 0)
            waiting[topic] = total
        return waiting
    finally:
        consumer.close()


def _commit(consumer: Consumer, offsets: list[TopicPartition]) -> None:
    """Synchronous: the flush reports offsets as committed only when Kafka says they are."""
    consumer.commit(offsets=offsets, asynchronous=False)


def _row(
    table: Table,
    event: ChangeEvent,
    offset: int,
    source_kind: str,
    substituted: dict[str, int],
    partition: int = 0,
) -> dict | None:
    payload = event.payload
    if not payload or payload.get("op") not in ("c", "u", "d", "r"):
        return None
    op = payload["op"]
    side = "before" if op == "d" else "after"
    values = payload.get(side) or {}
    fields = event.fields.get(side, {})
    known = {c.name for c in table.columns}
    unknown = [name for name in values if name not in known]
    if unknown:
        # a column added on the source after the deploy: writing the row without it would lose its
        # values silently; the table waits here until the schema_changes sensor records the new shape
        raise UnwritableValue(unknown[0], offset, value_form(values[unknown[0]], fields.get(unknown[0])),
                              "the source added this column after the deploy; the writer goes on once the "
                              "cdc_schema_changes sensor has recorded the table's new columns")  # fmt: skip
    row: dict = {}
    for column in table.columns:
        raw, field = values.get(column.name), fields.get(column.name, {})
        try:
            row[column.name] = change_value(column.type, raw, field, source_kind)
        except Substituted:
            substituted[column.name] = substituted.get(column.name, 0) + 1
            row[column.name] = None
        except Exception as exc:  # noqa: BLE001 - named below; this table stops, the others go on
            raise UnwritableValue(column.name, offset, value_form(raw, field),
                                  f"it cannot be decoded as {column.type.name} ({type(exc).__name__}: {exc})") from exc  # fmt: skip
    source = payload.get("source") or {}
    position = source.get("lsn")
    if position is None and source.get("file") is not None:
        position = f"{source['file']}:{source.get('pos')}"
    row.update(_cdc_op=op, _cdc_source_ts_ms=source.get("ts_ms"),
               _cdc_position=None if position is None else str(position), _cdc_seq=2 * offset + 1,
               _cdc_partition=partition)  # fmt: skip
    return row


def flush_tables(target: ConnectionSpec, specs_dir: Path | None, bootstrap: str, pipeline: str, source_kind: str,
                 tables: list[S3Table], log: Callable[[str], None] = print,
                 budget_seconds: float = 30.0, dry_run: bool = False,
                 share: WriterShare | None = None) -> dict[str, TableFlush]:  # fmt: skip
    """One flush of every table: what it wrote and committed, per table.

    A table whose change cannot be written (a value, an upload) reports it in its ``error`` after
    writing what came before it; the other tables are flushed all the same. ``dry_run``: decode the
    pending changes as a flush would, writing and committing nothing (the on-demand check).
    ``share``: only the partitions of one of several writers (None: every partition)."""
    fs = s3_filesystem(target, specs_dir)
    client = s3_client(target, specs_dir)
    lake = LakeWriter(target, specs_dir) if any(t.lake for t in tables) else None
    consumer = Consumer(kafka_client_config(bootstrap, **{"group.id": consumer_group(pipeline),
                                                          "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                                          "enable.partition.eof": False}))  # fmt: skip
    results = {t.qualified: TableFlush() for t in tables}
    try:
        plan: dict[tuple[str, int], tuple[S3Table, int, int]] = {}
        metadata = consumer.list_topics(timeout=10).topics
        for t in tables:
            if t.topic not in metadata or metadata[t.topic].error is not None:
                continue  # no change captured yet
            for partition in metadata[t.topic].partitions:
                if share is not None and not share.owns(partition):
                    continue
                tp = TopicPartition(t.topic, partition)
                (committed,) = consumer.committed([tp], timeout=10)
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                start = committed.offset if committed.offset >= 0 else low
                if t.lake is None:
                    written = last_written_offset(fs, t.location, partition)
                else:
                    written = lake.recorded(t, [partition]).get(partition) if lake and start < high else None
                if written is not None and written + 1 > start and not dry_run:
                    # the last flush wrote this file and died before its commit: do it now
                    start = written + 1
                    _commit(consumer, [TopicPartition(t.topic, partition, start)])
                    results[t.qualified].recovered[partition] = written
                    log(
                        f"{t.qualified}: offsets up to {written} were written but not committed; committed now"
                    )
                results[t.qualified].committed[partition] = start
                results[t.qualified].lag[partition] = max(high - start, 0)
                if start < high:
                    plan[(t.topic, partition)] = (t, start, min(high, start + MAX_EVENTS_PER_FILE))
        if not plan:
            return results
        plan_tables = {k: v[0] for k, v in plan.items()}
        consumer.assign([TopicPartition(topic, p, start) for (topic, p), (_, start, _) in plan.items()])
        events: dict[tuple[str, int], list] = {k: [] for k in plan}
        remaining = set(plan)
        deadline = time.monotonic() + budget_seconds
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=5_000, timeout=1.0):
                if message.error():
                    raise KafkaException(message.error())
                key = (message.topic(), message.partition())
                if key not in remaining:
                    continue
                _, _, stop = plan[key]
                if message.offset() < stop:
                    events[key].append((message.offset(), message.value()))
                if message.offset() >= stop - 1:
                    remaining.discard(key)
        by_table: dict[str, list[tuple[int, list]]] = {}
        for (topic, partition), batch in events.items():
            if batch:
                by_table.setdefault(plan_tables[(topic, partition)].qualified, []).append((partition, batch))
        for t in tables:
            result = results[t.qualified]
            batches = by_table.get(t.qualified, [])
            try:
                if lake and t.lake and batches:
                    _write_lake_batches(lake, consumer, t, batches, source_kind, result, dry_run)
                for partition, batch in batches if not t.lake else []:
                    _write_batch(
                        _file_store(client, t), consumer, t, partition, batch, source_kind, result, dry_run
                    )
            except UnwritableValue as exc:
                result.error = (f"{t.qualified}: the change at offset {exc.offset} of {t.topic} partition {exc.partition} "
                                f"cannot be written: {exc}. This table's changes stop there: everything before it "
                                "is written, nothing after it is written or skipped")  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - this table's flush failed; the others go on
                result.error = f"{t.qualified}: writing its changes failed: {type(exc).__name__}: {exc}"
            if result.error:
                log(f"S3 writer, pipeline {pipeline}: {result.error}")
    finally:
        consumer.close()
    return results


def _decoded(
    t: S3Table, batch: list, source_kind: str, substituted: dict[str, int], partition: int = 0
) -> tuple[list, UnwritableValue | None]:
    """The batch's rows in offset order, up to the first change the writer cannot write (and that)."""
    rows: list[dict] = []
    for offset, value in batch:
        if value is None:
            continue  # the tombstone after a delete: the delete row is already written
        try:
            row = _row(t.table, parse_event(value), offset, source_kind, substituted, partition)
        except UnwritableValue as exc:
            return rows, exc
        if row is not None:
            rows.append(row)
    return rows, None


def _arrow_rows(rows: list[dict], schema: pa.Schema) -> tuple[pa.Table, UnwritableValue | None]:
    """The rows as one Arrow table; a value the column's type refuses ends it there, and is named."""
    try:
        return pa.Table.from_pylist(rows, schema=schema), None
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        pass
    for index, row in enumerate(rows):  # the slow path, only after a refusal: find the value
        for name in schema.names:
            try:
                pa.array([row.get(name)], type=schema.field(name).type)
            except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
                bad = UnwritableValue(name, (row["_cdc_seq"] - 1) // 2, value_form(row.get(name)),
                                      f"a Parquet {schema.field(name).type} cannot hold it ({exc})")  # fmt: skip
                return pa.Table.from_pylist(rows[:index], schema=schema), bad
    raise AssertionError("Arrow refused the rows but accepts each value")  # pragma: no cover


class LakeWriter:
    """The Iceberg side of one flush: each table's change log loaded (and its schema evolved to the
    deployed columns) once, the offsets its appends recorded."""

    def __init__(self, target: ConnectionSpec, specs_dir: Path | None):
        self.catalog = lake_catalog(target, specs_dir)
        self.tables: dict[str, object] = {}

    def change_log(self, t: S3Table):
        if t.qualified not in self.tables:
            assert t.lake is not None
            self.tables[t.qualified] = ensure_lake_tables(self.catalog, t.lake, t.table)[0]
        return self.tables[t.qualified]

    def recorded(self, t: S3Table, partitions: list[int]) -> dict[int, int]:
        return recorded_offsets(self.change_log(t), partitions)

    def append(self, t: S3Table, rows: pa.Table, offsets: dict[int, int], result: TableFlush) -> None:
        committed = append_once(self.change_log(t), rows, offsets)
        if committed is None:
            return  # another writer appended these offsets already
        self.tables[t.qualified] = committed
        snapshot = committed.current_snapshot()
        result.snapshots.append(snapshot.snapshot_id)
        result.rows += int(snapshot.summary.additional_properties.get("added-records", 0))
        result.bytes += int(snapshot.summary.additional_properties.get("added-files-size", 0))


def _file_store(client, t: S3Table) -> Callable:
    """One Parquet change file per batch, named by the offsets it holds."""

    def put(table: pa.Table, partition: int, first: int, last: int, result: TableFlush) -> None:
        path = t.location.change_file(partition, first, last)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        put_bytes(client, path, buffer.getvalue())
        result.files.append(path)
        result.rows += table.num_rows
        result.bytes += buffer.tell()

    return put


@dataclass
class PreparedBatch:
    """One partition's batch decoded: the rows to write (those before a change that cannot be), the
    offsets they span, and that change (None: every one)."""

    partition: int
    rows: pa.Table
    first: int
    last: int
    bad: UnwritableValue | None
    substituted: dict[str, int]


def _prepare_batch(t: S3Table, partition: int, batch: list, source_kind: str) -> PreparedBatch | None:
    """The batch decoded; None when nothing before a refused change is left to write."""
    substituted: dict[str, int] = {}
    schema = lake_arrow_schema(t.table) if t.lake else arrow_schema(t.table)
    rows, bad = _decoded(t, batch, source_kind, substituted, partition)
    table, refused = _arrow_rows(rows, schema)  # ``table``: the rows before a refused value
    if refused is not None:  # before ``bad``: only rows before it were decoded
        bad, substituted = refused, {}
        _decoded(
            t, [(o, v) for o, v in batch if o < refused.offset], source_kind, substituted, partition
        )  # recounted
    if bad is not None:
        bad.partition = partition
        batch = [(offset, value) for offset, value in batch if offset < bad.offset]
    if not batch:
        return PreparedBatch(partition, table, -1, -1, bad, substituted)
    return PreparedBatch(partition, table, batch[0][0], batch[-1][0], bad, substituted)


def _committed(consumer: Consumer, t: S3Table, done: list[PreparedBatch], result: TableFlush) -> None:
    """Kafka learns the offsets only now that their rows are written."""
    _commit(consumer, [TopicPartition(t.topic, b.partition, b.last + 1) for b in done])
    for b in done:
        for column, count in b.substituted.items():
            result.substituted[column] = result.substituted.get(column, 0) + count
        advanced = b.last + 1 - result.committed.get(b.partition, b.first)
        result.committed[b.partition] = b.last + 1
        result.lag[b.partition] = max(result.lag.get(b.partition, 0) - advanced, 0)


def _write_batch(store: Callable, consumer: Consumer, t: S3Table, partition: int, batch: list, source_kind: str,
                 result: TableFlush, dry_run: bool = False) -> None:  # fmt: skip
    """Write and commit the batch, or the part of it before a change that cannot be written (then
    raise :class:`UnwritableValue` for that change)."""
    prepared = _prepare_batch(t, partition, batch, source_kind)
    if dry_run or prepared.last < 0:
        if prepared.bad is not None:
            raise prepared.bad
        return
    if prepared.rows.num_rows:
        store(prepared.rows, partition, prepared.first, prepared.last, result)
    _committed(consumer, t, [prepared], result)
    if prepared.bad is not None:
        raise prepared.bad


def _write_lake_batches(lake: LakeWriter, consumer: Consumer, t: S3Table, batches: list[tuple[int, list]],
                        source_kind: str, result: TableFlush, dry_run: bool = False) -> None:  # fmt: skip
    """Every partition's batch of one table in one Iceberg commit, then their Kafka commits; a change
    that cannot be written stops its partition there (raised after the rest is written)."""
    prepared = [_prepare_batch(t, partition, batch, source_kind) for partition, batch in batches]
    bad = next((p.bad for p in prepared if p.bad is not None), None)
    done = [p for p in prepared if p.last >= 0]
    if not dry_run and done:
        rows = pa.concat_tables([p.rows for p in done])
        lake.append(t, rows, {p.partition: p.last for p in done}, result)
        _committed(consumer, t, done, result)
    if bad is not None:
        raise bad
