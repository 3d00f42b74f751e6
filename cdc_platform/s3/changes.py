"""The S3 target's sink: change events from Kafka into Parquet change files, exactly once.

A flush assigns itself every partition of the pipeline's table topics (no group rebalancing: one
writer per pipeline), reads from where it left off up to the end offsets it saw when it started,
and writes one file per table partition named by the first and last offsets it holds. Offsets are
committed to the consumer group ``cdc-<pipeline>-s3`` only after the file is written. If the writer
dies between the two, the next flush finds the file, whose name says how far it got, and resumes
after it: no offset is written twice and none is skipped.

Each change becomes one row: the row after the change (the row before it for a delete), plus
``_cdc_op`` (c, u, d), ``_cdc_source_ts_ms``, ``_cdc_position`` (PostgreSQL LSN, or binlog
``file:position``) and ``_cdc_seq`` (2 x offset + 1; see cdc_platform/s3/snapshot.py).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaException, TopicPartition

from cdc_platform.s3.storage import TableLocation, last_written_offset, put_bytes, s3_client, s3_filesystem
from cdc_platform.s3.values import Substituted, arrow_schema, change_value
from cdc_platform.schema.model import Table
from cdc_platform.specs.models import ConnectionSpec

#: how many events one flush takes from one partition at most (a file's size in events)
MAX_EVENTS_PER_FILE = 200_000


def consumer_group(pipeline: str) -> str:
    return f"cdc-{pipeline}-s3"


@dataclass(frozen=True)
class S3Table:
    """One replicated table of an S3 pipeline: where its changes come from and where they go."""

    qualified: str
    topic: str
    table: Table
    location: TableLocation


@dataclass
class TableFlush:
    files: list[str] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    #: partition -> the next offset to read (what is committed)
    committed: dict[int, int] = field(default_factory=dict)
    #: partition -> events still in the topic beyond what is committed
    lag: dict[int, int] = field(default_factory=dict)
    substituted: dict[str, int] = field(default_factory=dict)
    #: partition -> the offset a recovered (written but uncommitted) file ended at
    recovered: dict[int, int] = field(default_factory=dict)


def _commit(consumer: Consumer, offsets: list[TopicPartition]) -> None:
    """Synchronous: the flush reports offsets as committed only when Kafka says they are."""
    consumer.commit(offsets=offsets, asynchronous=False)


def _row(
    table: Table, event: dict, offset: int, source_kind: str, substituted: dict[str, int]
) -> dict | None:
    payload = event.get("payload") if isinstance(event, dict) and "payload" in event else event
    if not payload or payload.get("op") not in ("c", "u", "d", "r"):
        return None
    op = payload["op"]
    side = "before" if op == "d" else "after"
    values = payload.get(side) or {}
    fields = {}
    for part in (event.get("schema") or {}).get("fields", []) if isinstance(event, dict) else []:
        if part.get("field") == side:
            fields = {f["field"]: f for f in part.get("fields", [])}
    row: dict = {}
    for column in table.columns:
        try:
            row[column.name] = change_value(column.type, values.get(column.name), fields.get(column.name, {}),
                                            source_kind)  # fmt: skip
        except Substituted:
            substituted[column.name] = substituted.get(column.name, 0) + 1
            row[column.name] = None
    source = payload.get("source") or {}
    position = source.get("lsn")
    if position is None and source.get("file") is not None:
        position = f"{source['file']}:{source.get('pos')}"
    row.update(_cdc_op=op, _cdc_source_ts_ms=source.get("ts_ms"),
               _cdc_position=None if position is None else str(position), _cdc_seq=2 * offset + 1)  # fmt: skip
    return row


def flush_tables(target: ConnectionSpec, specs_dir: Path | None, bootstrap: str, pipeline: str, source_kind: str,
                 tables: list[S3Table], log: Callable[[str], None] = print,
                 budget_seconds: float = 30.0) -> dict[str, TableFlush]:  # fmt: skip
    """One flush of every table: what it wrote and committed, per table."""
    fs = s3_filesystem(target, specs_dir)
    client = s3_client(target, specs_dir)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": consumer_group(pipeline),
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": False, "logger": _Quiet()})  # fmt: skip
    results = {t.qualified: TableFlush() for t in tables}
    try:
        plan: dict[tuple[str, int], tuple[S3Table, int, int]] = {}
        metadata = consumer.list_topics(timeout=10).topics
        for t in tables:
            if t.topic not in metadata or metadata[t.topic].error is not None:
                continue  # no change captured yet
            for partition in metadata[t.topic].partitions:
                tp = TopicPartition(t.topic, partition)
                (committed,) = consumer.committed([tp], timeout=10)
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                start = committed.offset if committed.offset >= 0 else low
                written = last_written_offset(fs, t.location, partition)
                if written is not None and written + 1 > start:
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
        for key, batch in events.items():
            if not batch:
                continue
            t, _, _ = plan[key]
            _write_batch(client, consumer, t, key[1], batch, source_kind, results[t.qualified])
    finally:
        consumer.close()
    return results


def _write_batch(client, consumer: Consumer, t: S3Table, partition: int, batch: list, source_kind: str,
                 result: TableFlush) -> None:  # fmt: skip
    first, last = batch[0][0], batch[-1][0]
    rows = []
    for offset, value in batch:
        if value is None:
            continue  # the tombstone after a delete: the delete row is already written
        row = _row(t.table, json.loads(value), offset, source_kind, result.substituted)
        if row is not None:
            rows.append(row)
    if rows:
        schema = arrow_schema(t.table)
        path = t.location.change_file(partition, first, last)
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer, compression="zstd")
        put_bytes(client, path, buffer.getvalue())
        result.files.append(path)
        result.rows += len(rows)
        result.bytes += buffer.tell()
    _commit(consumer, [TopicPartition(t.topic, partition, last + 1)])
    advanced = last + 1 - result.committed.get(partition, first)
    result.committed[partition] = last + 1
    result.lag[partition] = max(result.lag.get(partition, 0) - advanced, 0)


class _Quiet:
    """librdkafka's own log lines (connection attempts) belong in the broker's log, not in runs."""

    def log(self, *args, **kwargs) -> None:
        return None
