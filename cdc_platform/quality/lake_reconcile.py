"""Row counts and checksums between a source table and its Iceberg current-state table.

The current state is pinned at one snapshot, which says how far into the change log it was merged;
the change log's commits say up to which Kafka offset of each partition that is. The source is read
next (the full load's own consistent read, with the same value rules), and then the topic's end
offsets, after giving Debezium a moment to capture the last changes. Every change the source
committed before its read is in the topic below those ends; everything the pinned snapshot holds
came from below the merged offsets. So a key whose rows differ and that has no event between the two
is a real divergence, and one that has an event there is in flight and not judged. The count check
uses the same bound: the number of events between the two can move the counts by at most that many.

Each side's rows are hashed in the same Arrow types (the Iceberg tables' types), so a value differs
only when it would read differently; the first differing keys are then read again from both sides to
name the columns that differ.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from confluent_kafka import Consumer, TopicPartition
from pyiceberg.expressions import And, EqualTo

from cdc_platform.kafka_log import kafka_client_config
from cdc_platform.quality.counts import CAPTURE_GRACE_SECONDS, count_rows
from cdc_platform.s3.changes import UnwritableValue, _row
from cdc_platform.s3.current_state import merge_floor, merged_through
from cdc_platform.s3.events import ChangeEvent, parse_event
from cdc_platform.s3.iceberg_catalog import LakeNames, lake_catalog
from cdc_platform.s3.iceberg_tables import PARTITION_COLUMN, for_iceberg, iceberg_arrow_schema, lineage
from cdc_platform.s3.snapshot import source_rows
from cdc_platform.s3.values import CDC_COLUMNS, arrow_schema
from cdc_platform.schema.model import CopyJob, Table
from cdc_platform.specs.models import ConnectionSpec, PipelineSpec

CDC_NAMES = {f.name for f in CDC_COLUMNS} | {PARTITION_COLUMN.name}
SOURCE_BATCH_ROWS = 20_000


@dataclass(frozen=True)
class LakeDifference:
    kind: str  # missing (on the source only), extra (on the target only), changed
    key: str
    columns: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {"kind": self.kind, "key": self.key, "columns": list(self.columns)}


@dataclass
class LakeReconciliation:
    source_rows: int = 0
    target_rows: int = 0
    #: change events between the current state's merged offsets and the topic's end
    in_flight: int = 0
    #: differing keys with an event in flight: not judged
    not_judged: int = 0
    differences: list[LakeDifference] = field(default_factory=list)
    truncated: bool = False
    seconds: float = 0.0
    snapshot_id: int | None = None

    @property
    def agrees(self) -> bool:
        return not self.differences

    @property
    def counts_agree(self) -> bool:
        return abs(self.source_rows - self.target_rows) <= self.in_flight


@dataclass(frozen=True)
class LakeSide:
    """What one check of one table needs: the source, the lake, the topic."""

    source: ConnectionSpec
    target: ConnectionSpec
    specs_dir: Path
    table: Table
    names: LakeNames
    topic: str | None
    bootstrap: str
    source_kind: str

    @classmethod
    def of(cls, specs, spec: PipelineSpec, table: Table, target_name: str, topic: str | None, bootstrap: str):
        source = specs.connection(spec.source)
        return cls(source, specs.connection(spec.target), specs.directory, table,
                   LakeNames(spec.target_schema, target_name), topic, bootstrap, source.kind.value)  # fmt: skip


def _merged_positions(side: LakeSide, current) -> dict[int, int]:
    """partition -> the first offset the pinned current state has not merged."""
    change_log = lake_catalog(side.target, side.specs_dir).load_table(side.names.change_log)
    through = merged_through(current)
    positions: dict[int, int] = {}
    if through is None:
        return positions
    start = change_log.snapshot_by_id(through)
    for snapshot in lineage(change_log, start):
        props = snapshot.summary.additional_properties if snapshot.summary else {}
        for key, value in props.items():
            if key.startswith("cdc.offset."):
                positions.setdefault(int(key.rsplit(".", 1)[1]), int(value) + 1)
    floor = merge_floor(current)
    for partition, offset in (floor.since if floor is not None else {}).items():
        # no change of this partition merged after the full load: it read the source at this offset
        if positions.get(partition, -1) < offset:
            positions[partition] = offset
    return positions


def _events_in_flight(side: LakeSide, positions: dict[int, int]) -> tuple[int, set[tuple]]:
    """(how many events, their keys) between the merged positions and the topic's end now."""
    if side.topic is None:
        return 0, set()
    consumer = Consumer(kafka_client_config(side.bootstrap, **{"group.id": "cdc-lake-reconcile",
                                                               "enable.auto.commit": False}))  # fmt: skip
    try:
        metadata = consumer.list_topics(side.topic, timeout=10).topics.get(side.topic)
        if metadata is None or metadata.error is not None:
            return 0, set()
        plan = {}
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(side.topic, partition), timeout=10)
            start = max(positions.get(partition, low), low)
            if start < high:
                plan[partition] = (start, high)
        count = sum(high - start for start, high in plan.values())
        keys: set[tuple] = set()
        if not plan:
            return 0, keys
        consumer.assign([TopicPartition(side.topic, p, start) for p, (start, _) in plan.items()])
        remaining = dict(plan)
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=5_000, timeout=1.0):
                if message.error() or message.partition() not in remaining:
                    continue
                if message.offset() >= remaining[message.partition()][1] - 1:
                    remaining.pop(message.partition())
                if message.value() is None:
                    continue
                key = _event_key(side, parse_event(message.value()), message.offset())
                if key is not None:
                    keys.add(key)
        if remaining:
            raise RuntimeError(f"could not read the {count:,} changes in flight of {side.topic} within 60 s")
        return count, keys
    finally:
        consumer.close()


def _event_key(side: LakeSide, event: ChangeEvent, offset: int) -> tuple | None:
    """The key of a change event, in the current state's types (decoded as the writer decodes it)."""
    try:
        row = _row(side.table, event, offset, side.source_kind, {})
    except UnwritableValue:
        return None
    if row is None:
        return None
    rows = for_iceberg(pa.Table.from_pylist([row], schema=arrow_schema(side.table)))
    return tuple(rows.column(k)[0].as_py() for k in side.table.primary_key)


def _digest(values: tuple) -> bytes:
    return hashlib.blake2b(repr(values).encode(), digest_size=12).digest()


def _plain_schema(table: Table) -> pa.Schema:
    schema = iceberg_arrow_schema(table)
    return pa.schema([f for f in schema if f.name not in CDC_NAMES])


def _hashed(batch: pa.Table | pa.RecordBatch, key: list[str], names: list[str]) -> dict[tuple, bytes]:
    columns = [batch.column(n).to_pylist() for n in names]
    index = [names.index(k) for k in key]
    hashed = {}
    for values in zip(*columns, strict=True):
        hashed[tuple(values[i] for i in index)] = _digest(values)
    return hashed


def count_lake_table(side: LakeSide) -> LakeReconciliation:
    """Row counts: the source's ``count(*)``, the pinned current state's records, the events between."""
    started = time.monotonic()
    current = lake_catalog(side.target, side.specs_dir).load_table(side.names.current)
    result = LakeReconciliation()
    snapshot = current.current_snapshot()
    result.snapshot_id = snapshot.snapshot_id if snapshot else None
    summary = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
    result.target_rows = int(summary.get("total-records", 0))
    positions = _merged_positions(side, current)
    result.source_rows = count_rows(side.source, side.specs_dir, side.table.schema, side.table.name)
    time.sleep(CAPTURE_GRACE_SECONDS if side.topic else 0)
    result.in_flight, _ = _events_in_flight(side, positions)
    result.seconds = time.monotonic() - started
    return result


def reconcile_lake_table(side: LakeSide, max_differences: int = 20) -> LakeReconciliation:
    """Every row of the source against the pinned current state, down to the differing keys."""
    started = time.monotonic()
    current = lake_catalog(side.target, side.specs_dir).load_table(side.names.current)
    result = LakeReconciliation()
    snapshot = current.current_snapshot()
    result.snapshot_id = snapshot.snapshot_id if snapshot else None
    positions = _merged_positions(side, current)
    schema = _plain_schema(side.table)
    names, key = schema.names, list(side.table.primary_key)
    target: dict[tuple, bytes] = {}
    if snapshot is not None:
        for batch in current.scan(
            snapshot_id=snapshot.snapshot_id, selected_fields=tuple(names)
        ).to_arrow_batch_reader():
            target.update(_hashed(pa.Table.from_batches([batch]).select(names).cast(schema), key, names))
    result.target_rows = len(target)
    source_schema = pa.schema([f for f in arrow_schema(side.table) if f.name not in CDC_NAMES])
    differing: dict[tuple, str] = {}
    #: the source's rows of the first changed keys, to name their differing columns
    kept: dict[tuple, dict] = {}
    seen: set[tuple] = set()
    buffer: list[list] = []

    def compare(rows: list[list]) -> None:
        batch = for_iceberg(pa.Table.from_arrays([pa.array(c, t) for c, t in zip(
            zip(*rows, strict=True), source_schema.types, strict=True)], schema=source_schema))  # fmt: skip
        for k, digest in _hashed(batch, key, names).items():
            seen.add(k)
            if k not in target:
                differing[k] = "missing"
            elif target[k] != digest:
                differing[k] = "changed"
                if len(kept) < 10 * max_differences:
                    kept[k] = batch.slice(_position(batch, key, k), 1).to_pylist()[0]

    for row in source_rows(side.source, CopyJob(side.table, side.names.namespace, side.names.table), side.specs_dir,
                           None, SOURCE_BATCH_ROWS, {}):  # fmt: skip
        buffer.append(row)
        result.source_rows += 1
        if len(buffer) >= SOURCE_BATCH_ROWS:
            compare(buffer)
            buffer = []
    if buffer:
        compare(buffer)
    for k in target:
        if k not in seen:
            differing[k] = "extra"
    if differing:
        time.sleep(CAPTURE_GRACE_SECONDS if side.topic else 0)
        result.in_flight, moving = _events_in_flight(side, positions)
        judged = {k: kind for k, kind in differing.items() if k not in moving}
        result.not_judged = len(differing) - len(judged)
        ordered = sorted(judged.items(), key=lambda item: repr(item[0]))
        result.truncated = len(ordered) > max_differences
        for k, kind in ordered[:max_differences]:
            columns = (
                _differing_columns(current, snapshot, schema, key, k, kept.get(k))
                if kind == "changed"
                else ()
            )
            result.differences.append(LakeDifference(kind, _key_text(key, k), columns))
    result.seconds = time.monotonic() - started
    return result


def _position(batch: pa.Table, key: list[str], values: tuple) -> int:
    columns = [batch.column(k).to_pylist() for k in key]
    return next(i for i, row in enumerate(zip(*columns, strict=True)) if row == values)


def _key_text(key: list[str], values: tuple) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in zip(key, values, strict=True))


def _differing_columns(current, snapshot, schema: pa.Schema, key: list[str], values: tuple,
                       source_row: dict | None) -> tuple[str, ...]:  # fmt: skip
    """The columns in which one key's rows differ (the target's row read again by key)."""
    if source_row is None:
        return ()
    condition = EqualTo(key[0], values[0])
    for k, v in zip(key[1:], values[1:], strict=True):
        condition = And(condition, EqualTo(k, v))
    target = current.scan(row_filter=condition, snapshot_id=snapshot.snapshot_id).to_arrow()
    target_row = target.select(schema.names).cast(schema).to_pylist()[0] if target.num_rows else {}
    return tuple(n for n in schema.names if repr(source_row.get(n)) != repr(target_row.get(n)))
