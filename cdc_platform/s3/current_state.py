"""The current-state Iceberg table: the change log's rows merged by key, deletes applied.

A merge reads only the data files the change log gained since the snapshot the last merge went
through (recorded in the current state's snapshot summary, ``cdc.merged-through``, in the same commit
as the merge). It takes the newest change of each key (largest ``_cdc_seq``, as the Parquet layout's
readers do), compares it with the key's row in the current state, which keeps its ``_cdc_seq``, so
an older change arriving late never overwrites a newer row (a re-load's snapshot rows, say), and
rewrites the affected keys in one transaction: a copy-on-write delete of the rows whose first key
column matches, then an append of the winners that are not deletes (and of the untouched rows that
shared a first key value, for a composite key).

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

from cdc_platform.s3.iceberg_tables import FULL_LOAD_PROPERTY, lineage

if TYPE_CHECKING:
    from pyiceberg.table import Table as IcebergTable

MERGED_PROPERTY = "cdc.merged-through"
#: the largest full-load ``_cdc_seq`` merged: rows and changes below it are stale
FLOOR_PROPERTY = "cdc.floor-seq"
#: rows of change-log files one merge pass holds in memory at most (a single larger file is one pass)
CHUNK_ROWS = 2_000_000


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


def _recorded(current: IcebergTable, prop: str) -> int | None:
    for snapshot in lineage(current):
        props = snapshot.summary.additional_properties if snapshot.summary else {}
        if prop in props:
            return int(props[prop])
    return None


def merged_through(current: IcebergTable) -> int | None:
    return _recorded(current, MERGED_PROPERTY)


def merge_floor(current: IcebergTable) -> int | None:
    """The largest full-load ``_cdc_seq`` the current state has merged (None: none yet)."""
    return _recorded(current, FLOOR_PROPERTY)


def new_data_files(change_log: IcebergTable, since: int | None) -> tuple[list, int | None]:
    """The data files the change log's snapshots after ``since`` added, oldest first, and the largest
    full-load ``_cdc_seq`` among those snapshots. When ``since`` is no longer in its history
    (expired), every live file: merging them again changes nothing."""
    added: list[int] = []
    loads: list[int] = []
    for snapshot in lineage(change_log):
        if snapshot.snapshot_id == since:
            break
        added.append(snapshot.snapshot_id)
        props = snapshot.summary.additional_properties if snapshot.summary else {}
        if FULL_LOAD_PROPERTY in props:
            loads.append(int(props[FULL_LOAD_PROPERTY]))
    else:
        if since is not None:
            return _live_files(change_log), max(loads, default=None)
    files = []
    for snapshot_id in reversed(added):
        snapshot = change_log.snapshot_by_id(snapshot_id)
        for manifest in snapshot.manifests(change_log.io):
            if manifest.added_snapshot_id != snapshot_id:
                continue
            files += [e.data_file for e in manifest.fetch_manifest_entry(change_log.io, discard_deleted=True)
                      if e.snapshot_id == snapshot_id]  # fmt: skip
    return files, max(loads, default=None)


def _live_files(change_log: IcebergTable) -> list:
    return [task.file for task in change_log.scan().plan_files()]


def _read(change_log: IcebergTable, files: list) -> pa.Table:
    """The files' rows in the change log's current schema (older files: new columns NULL, narrower
    types widened), through pyiceberg's own reader."""

    scan = ArrowScan(change_log.metadata, change_log.io, change_log.schema(), AlwaysTrue())
    return scan.to_table([FileScanTask(f) for f in files])


def newest_per_key(rows: pa.Table, key: list[str]) -> pa.Table:
    """The row with the largest ``_cdc_seq`` of each key, deletes kept (they decide)."""
    if rows.num_rows == 0:
        return rows
    ordered = rows.take(pc.sort_indices(rows, sort_keys=[("_cdc_seq", "descending")]))
    numbered = ordered.append_column("_row", pa.array(range(ordered.num_rows), pa.int64()))
    firsts = numbered.group_by(key, use_threads=False).aggregate([("_row", "first")])
    return ordered.take(firsts["_row_first"])


def merge_current(change_log: IcebergTable, current: IcebergTable, key: list[str], label: str,
                  log: Callable[[str], None] = print) -> MergeResult:  # fmt: skip
    """Merge what the change log gained since the last merge into the current state.

    A full load among the new snapshots sets a floor: every key the source held at its snapshot has a
    row of that ``_cdc_seq`` or a later change, so rows and changes below it are stale (a key deleted
    while no change was captured, before a re-load) and the last pass drops them."""
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
    if loaded is not None and (floor is None or loaded > floor):
        floor = loaded
    chunks = _chunks(files) or [[]]
    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        marker = {MERGED_PROPERTY: str(head.snapshot_id)} if last else {}
        if floor is not None:
            marker[FLOOR_PROPERTY] = str(floor)
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
                 marker: dict[str, str], result: MergeResult, floor: int | None, drop_below: bool) -> None:  # fmt: skip
    """One commit: the changed keys' files rewritten (and, ``drop_below``, the rows under the floor
    dropped). Copy-on-write by our own file selection: pyiceberg's ``delete(In(...))`` binds one
    literal object per changed key, which took 15 s of a 100,000-key merge."""

    schema = _current_schema(current)
    changes = _read(change_log, files) if files else schema.empty_table()
    result.changes_read += changes.num_rows
    if floor is not None:
        changes = changes.filter(pc.greater_equal(changes["_cdc_seq"], floor))
    latest = newest_per_key(changes.select(schema.names).cast(schema), key)
    result.keys_changed += latest.num_rows
    replaced, kept, existing = [], [], []
    for task in current.scan().plan_files() if current.current_snapshot() else []:
        stale = drop_below and _may_hold_below(task.file, current, floor)
        if not stale and not (latest.num_rows and _may_hold(task.file, current, key[0], latest[key[0]])):
            continue
        rows = _read(current, [task.file]).select(schema.names).cast(schema)
        hit = _holds(rows, latest, key)
        drop = pc.or_(hit, pc.less(rows["_cdc_seq"], floor)) if stale else hit
        if not pc.any(drop).as_py():
            continue
        replaced.append(task.file)
        kept.append(rows.filter(pc.invert(drop)))
        existing.append(rows.filter(hit))
        if stale:
            result.rows_deleted += (
                pc.sum(pc.and_(pc.invert(hit), pc.less(rows["_cdc_seq"], floor))).as_py() or 0
            )
    before = pa.concat_tables(existing) if existing else schema.empty_table()
    winners = newest_per_key(pa.concat_tables([before, latest]), key)
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


def _may_hold_below(data_file, current: IcebergTable, floor: int | None) -> bool:
    """Whether the file may hold a row under the floor (by its ``_cdc_seq`` lower bound)."""

    if floor is None:
        return False
    field = current.schema().find_field("_cdc_seq")
    low = (data_file.lower_bounds or {}).get(field.field_id)
    return low is None or from_bytes(field.field_type, low) < floor


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
