"""The current-state Iceberg table: the change log's rows merged by key, deletes applied.

A merge reads only the data files the change log gained since the snapshot the last merge went
through (recorded in the current state's snapshot summary, ``cdc.merged-through``, in the same commit
as the merge). It takes the newest change of each key, compares it with the key's row in the current
state, which keeps its ``_cdc_*`` columns, so an older change arriving late never overwrites a newer
row, and rewrites the affected keys in one transaction: a copy-on-write delete of the rows whose first
key column matches, then an append of the winners that are not deletes (and of the untouched rows
that shared a first key value, for a composite key).

Which row of a key is newest, with a topic of several partitions: every change of one key is on one
partition (Debezium's producer partitions by the key), so a key's changes compare by offset
(``_cdc_seq``). The newest full load sets a floor: each partition's end offset when its copy began.
A change below its partition's floor happened before the copy read the source, so the copy holds it
(stale); a change at or above it happened after, so it wins over the copied row. Rows of an older
full load are stale too. So: stale rows lose, then changes beat copied rows, then the larger
``_cdc_seq`` wins. With one partition this is the Parquet layout's rule, largest ``_cdc_seq``.

Each merge is one Iceberg snapshot of the current state: time travel by snapshot id or timestamp.
A change log too large for one pass (the first merge after a full load) is merged in chunks of data
files; a merge interrupted between chunks is taken up again from the recorded snapshot, and applying
a chunk twice changes nothing (the newest ``_cdc_seq`` wins either way).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.conversions import from_bytes
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files, schema_to_pyarrow
from pyiceberg.table import FileScanTask

from cdc_platform.s3.iceberg_tables import (
    COMPACTED_PROPERTY,
    FULL_LOAD_PROPERTY,
    full_load_since,
    lineage,
    per_partition,
    row_partitions,
)

if TYPE_CHECKING:
    from pyiceberg.table import Table as IcebergTable

MERGED_PROPERTY = "cdc.merged-through"
#: the largest full-load ``_cdc_seq`` merged: rows of older loads are stale
FLOOR_PROPERTY = "cdc.floor-seq"
#: one per partition: the newest merged full load's end offset, under which changes are stale
FLOOR_SINCE_PROPERTY = "cdc.floor-since."
#: rows of change-log files one merge pass holds in memory at most (a single larger file is one pass)
CHUNK_ROWS = 2_000_000


@dataclass(frozen=True)
class Floor:
    """The newest full load merged: its rows' ``_cdc_seq`` and, per partition, the topic's end offset
    when its copy began."""

    load_seq: int
    since: dict[int, int]

    @classmethod
    def of(cls, props: dict[str, str]) -> Floor:
        return cls(int(props[FULL_LOAD_PROPERTY]), full_load_since(props))

    def properties(self) -> dict[str, str]:
        return {FLOOR_PROPERTY: str(self.load_seq),
                **{f"{FLOOR_SINCE_PROPERTY}{p}": str(o) for p, o in sorted(self.since.items())}}  # fmt: skip

    def stale(self, rows: pa.Table) -> pa.BooleanArray:
        """Per row: a copied row of an older load, or a change the newest load's copy already holds."""
        seq = rows["_cdc_seq"]
        change_limit = per_partition(row_partitions(rows), {p: 2 * o for p, o in self.since.items()}, 0)
        return pc.if_else(_copied(rows), pc.less(seq, self.load_seq), pc.less(seq, change_limit))

    @property
    def highest(self) -> int:
        """No row with a ``_cdc_seq`` at or above this is stale (a file's lower bound prunes by it)."""
        return max(self.load_seq, 2 * max(self.since.values(), default=0))


def _copied(rows: pa.Table) -> pa.BooleanArray:
    """A full load's row (even ``_cdc_seq``), not a change (odd)."""
    return pc.equal(pc.bit_wise_and(rows["_cdc_seq"], 1), 0)


@dataclass
class MergeResult:
    changes_read: int = 0
    keys_changed: int = 0
    rows_written: int = 0
    rows_deleted: int = 0
    #: the change log's snapshot the current state now reflects (None: the change log is empty)
    through_snapshot: int | None = None
    #: the current state's snapshot this merge committed (None: nothing new to merge)
    snapshot_id: int | None = None
    #: rows in the current state after the merge
    total_rows: int = 0


def _recorded(current: IcebergTable, prop: str) -> dict[str, str] | None:
    """The summary of the newest snapshot that recorded ``prop``."""
    for snapshot in lineage(current):
        props = snapshot.summary.additional_properties if snapshot.summary else {}
        if prop in props:
            return props
    return None


def merged_through(current: IcebergTable) -> int | None:
    props = _recorded(current, MERGED_PROPERTY)
    return None if props is None else int(props[MERGED_PROPERTY])


def merge_floor(current: IcebergTable) -> Floor | None:
    """The newest full load the current state has merged (None: none yet)."""
    props = _recorded(current, FLOOR_PROPERTY)
    if props is None:
        return None
    since = {int(k[len(FLOOR_SINCE_PROPERTY) :]): int(v) for k, v in props.items()
             if k.startswith(FLOOR_SINCE_PROPERTY)}  # fmt: skip
    load_seq = int(props[FLOOR_PROPERTY])
    return Floor(load_seq, since or {0: load_seq // 2})


def new_data_files(change_log: IcebergTable, since: int | None) -> tuple[list, Floor | None]:
    """The data files the change log's snapshots after ``since`` added, oldest first, and the newest
    full load among those snapshots. When ``since`` is no longer in its history (expired), every
    live file: merging them again changes nothing."""
    added: list[int] = []
    loads: list[Floor] = []
    reached = since is None
    for snapshot in lineage(change_log):
        if snapshot.snapshot_id == since:
            reached = True
            break
        props = snapshot.summary.additional_properties if snapshot.summary else {}
        if COMPACTED_PROPERTY not in props:  # a compaction rewrote merged rows: nothing new in it
            added.append(snapshot.snapshot_id)
        if FULL_LOAD_PROPERTY in props:
            loads.append(Floor.of(props))
    newest = max(loads, key=lambda f: f.load_seq, default=None)
    if not reached:
        return _live_files(change_log), newest
    files = []
    for snapshot_id in reversed(added):
        snapshot = change_log.snapshot_by_id(snapshot_id)
        for manifest in snapshot.manifests(change_log.io):
            if manifest.added_snapshot_id != snapshot_id:
                continue
            files += [e.data_file for e in manifest.fetch_manifest_entry(change_log.io, discard_deleted=True)
                      if e.snapshot_id == snapshot_id]  # fmt: skip
    return files, newest


def _live_files(change_log: IcebergTable) -> list:
    return [task.file for task in change_log.scan().plan_files()]


def read_files(change_log: IcebergTable, files: list) -> pa.Table:
    """The files' rows in the change log's current schema (older files: new columns NULL, narrower
    types widened), through pyiceberg's own reader."""

    scan = ArrowScan(change_log.metadata, change_log.io, change_log.schema(), AlwaysTrue())
    return scan.to_table([FileScanTask(f) for f in files])


def newest_per_key(rows: pa.Table, key: list[str], floor: Floor | None = None) -> pa.Table:
    """The newest row of each key, deletes kept (they decide): rows the floor makes stale lose, then
    changes beat copied rows, then the larger ``_cdc_seq`` wins (the module's docstring says why)."""
    if rows.num_rows == 0:
        return rows
    fresh = pc.invert(floor.stale(rows)) if floor is not None else pa.array([True] * rows.num_rows)
    order = pa.table({"fresh": fresh, "change": pc.invert(_copied(rows)), "seq": rows["_cdc_seq"]})
    ordered = rows.take(pc.sort_indices(order, sort_keys=[("fresh", "descending"), ("change", "descending"),
                                                          ("seq", "descending")]))  # fmt: skip
    numbered = ordered.append_column("_row", pa.array(range(ordered.num_rows), pa.int64()))
    firsts = numbered.group_by(key, use_threads=False).aggregate([("_row", "first")])
    return ordered.take(firsts["_row_first"])


def merge_current(change_log: IcebergTable, current: IcebergTable, key: list[str], label: str,
                  log: Callable[[str], None] = print) -> MergeResult:  # fmt: skip
    """Merge what the change log gained since the last merge into the current state.

    A full load among the new snapshots sets a new floor: every key the source held at its snapshot
    has a copied row or a later change, so rows the floor makes stale (a key deleted while no change
    was captured, before a re-load) are dropped by the last pass."""
    result = MergeResult()
    since = merged_through(current)
    head = change_log.current_snapshot()
    result.through_snapshot = head.snapshot_id if head else None
    if head is None or head.snapshot_id == since:
        result.through_snapshot = since
        result.total_rows = _total_rows(current)
        return result
    files, loaded = new_data_files(change_log, since)
    floor = merge_floor(current)
    if loaded is not None and (floor is None or loaded.load_seq > floor.load_seq):
        floor = loaded
    chunks = _chunks(files) or [[]]
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        marker = {MERGED_PROPERTY: str(head.snapshot_id)} if last else {}
        if floor is not None:
            marker.update(floor.properties())
        _merge_chunk(
            change_log, current, key, chunk, marker, result, floor, drop_below=last and loaded is not None
        )
        current = current.refresh()
        if len(chunks) > 1:
            log(f"{label}: merged {index + 1} of {len(chunks)} parts of the change log")
    snapshot = current.current_snapshot()
    result.snapshot_id = snapshot.snapshot_id if snapshot else None
    result.total_rows = _total_rows(current)
    return result


def _chunks(files: list) -> list[list]:
    chunks: list[list] = []
    rows = 0
    for f in files:
        if not chunks or rows + f.record_count > CHUNK_ROWS:
            chunks.append([])
            rows = 0
        chunks[-1].append(f)
        rows += f.record_count
    return chunks


def _merge_chunk(change_log: IcebergTable, current: IcebergTable, key: list[str], files: list,
                 marker: dict[str, str], result: MergeResult, floor: Floor | None, drop_below: bool) -> None:  # fmt: skip
    """One commit: the changed keys' files rewritten (and, ``drop_below``, the rows under the floor
    dropped). Copy-on-write by our own file selection: pyiceberg's ``delete(In(...))`` binds one
    literal object per changed key, which took 15 s of a 100,000-key merge."""

    schema = _current_schema(current)
    changes = read_files(change_log, files) if files else schema.empty_table()
    result.changes_read += changes.num_rows
    if floor is not None and changes.num_rows:
        changes = changes.filter(pc.invert(floor.stale(changes)))
    latest = newest_per_key(changes.select(schema.names).cast(schema), key)
    result.keys_changed += latest.num_rows
    replaced, kept, existing = [], [], []
    for task in current.scan().plan_files() if current.current_snapshot() else []:
        stale = drop_below and _may_hold_below(task.file, current, floor)
        if not stale and not (latest.num_rows and _may_hold(task.file, current, key[0], latest[key[0]])):
            continue
        rows = read_files(current, [task.file]).select(schema.names).cast(schema)
        hit = _holds(rows, latest, key)
        below = floor.stale(rows) if stale and floor is not None else None
        drop = pc.or_(hit, below) if below is not None else hit
        if not pc.any(drop).as_py():
            continue
        replaced.append(task.file)
        kept.append(rows.filter(pc.invert(drop)))
        existing.append(rows.filter(hit))
        if below is not None:
            result.rows_deleted += pc.sum(pc.and_(pc.invert(hit), below)).as_py() or 0
    before = pa.concat_tables(existing) if existing else schema.empty_table()
    winners = newest_per_key(pa.concat_tables([before, latest]), key, floor)
    alive = winners.filter(pc.not_equal(winners["_cdc_op"], "d"))
    result.rows_deleted += before.num_rows - (pc.sum(_holds(before, alive, key)).as_py() or 0)
    result.rows_written += alive.num_rows
    rewritten = pa.concat_tables([*kept, alive])
    if not replaced and not rewritten.num_rows and not marker:
        return
    with current.transaction() as tx, tx.update_snapshot(snapshot_properties=marker).overwrite() as overwrite:
        for data_file in replaced:
            overwrite.delete_data_file(data_file)
        new_files = _dataframe_to_data_files(tx.table_metadata, rewritten, current.io, uuid.uuid4())
        for data_file in new_files if rewritten.num_rows else []:
            overwrite.append_data_file(data_file)


def _may_hold_below(data_file, current: IcebergTable, floor: Floor | None) -> bool:
    """Whether the file may hold a row the floor makes stale (by its ``_cdc_seq`` lower bound)."""

    if floor is None:
        return False
    field = current.schema().find_field("_cdc_seq")
    low = (data_file.lower_bounds or {}).get(field.field_id)
    return low is None or from_bytes(field.field_type, low) < floor.highest


def _holds(rows: pa.Table, keys: pa.Table, key: list[str]) -> pa.BooleanArray:
    """For each row, whether its key is among ``keys``' (a composite key by a semi join: no encoding
    of several values into one that two keys could share)."""
    if rows.num_rows == 0 or keys.num_rows == 0:
        return pa.array([False] * rows.num_rows, pa.bool_())
    if len(key) == 1:
        return pc.is_in(rows[key[0]], value_set=keys[key[0]].combine_chunks())
    index = pa.array(range(rows.num_rows), pa.int64())
    found = (
        rows.select(key).append_column("_i", index).join(keys.select(key), keys=key, join_type="left semi")
    )
    return pc.is_in(index, value_set=found["_i"].combine_chunks())


def _may_hold(data_file, current: IcebergTable, column: str, values) -> bool:
    """Whether the file's bounds of the first key column could hold any changed key (a cheap skip
    for appended key ranges; files without bounds are read)."""

    field = current.schema().find_field(column)
    low, high = (
        (data_file.lower_bounds or {}).get(field.field_id),
        (data_file.upper_bounds or {}).get(field.field_id),
    )
    if low is None or high is None or not pa.types.is_integer(values.type):
        return True
    low, high = from_bytes(field.field_type, low), from_bytes(field.field_type, high)
    return pc.any(pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high))).as_py()


def _current_schema(current: IcebergTable) -> pa.Schema:

    return schema_to_pyarrow(current.schema(), include_field_ids=False)


def _total_rows(current: IcebergTable) -> int:
    snapshot = current.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.additional_properties.get("total-records", 0))
