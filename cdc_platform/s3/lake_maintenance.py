"""Keeping an Iceberg target's tables small: old snapshots expired with the files only they held, and
the current state's small files compacted.

Every writer flush is a snapshot of the change log and every merge one of the current state; a
table flushed every 30 s gains 2,880 a day, and each commit rewrites the metadata file that lists
them all. So, at most once per ``MAINTENANCE_INTERVAL_SECONDS`` and after a merge (the only writer
of the current state, so nothing races it there), the snapshots older than the connection's
``snapshot_retention_hours`` are expired, except those the platform still reads:

* change log: every snapshot newer than the one the current state merged through (not merged
  yet), and the newest snapshot recording each partition's offset, which a writer that died
  between its append and its Kafka commit reads back, however long it was down;
* current state: the newest snapshot recording ``cdc.merged-through`` and the newest recording the
  full-load floor.

Snapshots go oldest first, up to the oldest one kept (the history stays one unbroken line), and
with them what only they referenced: their manifest lists, the manifests no kept snapshot lists,
and the data files deleted at or before the oldest kept snapshot (the current state's
copy-on-write leaves one per rewritten file, a compaction one per compacted file).

Compaction: the current state gains files with every merge (the rewritten keys, the new ones), the
change log one per flush and table. When ``COMPACT_MIN_FILES`` or more of a table's files are smaller
than ``SMALL_FILE_BYTES``, they are rewritten into as few files as their rows fill, in commits that
change no row (time travel to before them still reads the old files until they expire). In the
change log only files the current state has merged are compacted, and the merge does not read a
compaction's files as new (cdc_platform/s3/current_state.py), so it stays incremental.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.io.pyarrow import _dataframe_to_data_files
from pyiceberg.manifest import ManifestEntryStatus

from cdc_platform.s3.current_state import FLOOR_PROPERTY, MERGED_PROPERTY, read_files
from cdc_platform.s3.iceberg_tables import COMMIT_ATTEMPTS, COMPACTED_PROPERTY, OFFSET_PROPERTY, lineage

if TYPE_CHECKING:
    from pyiceberg.table import Table as IcebergTable

#: seconds between two maintenances of one table
MAINTENANCE_INTERVAL_SECONDS = 3600.0
#: the current state's table property: when its last maintenance ran (epoch seconds)
MAINTAINED_PROPERTY = "cdc.maintained-at"
#: a data file smaller than this is worth compacting
SMALL_FILE_BYTES = 32 * 1024 * 1024
#: compact once this many small files have gathered
COMPACT_MIN_FILES = 16
#: the data one compaction commit rewrites at most (it is held in memory)
COMPACT_GROUP_BYTES = 256 * 1024 * 1024


@dataclass
class Maintenance:
    snapshots_expired: int = 0
    files_deleted: int = 0
    files_compacted: int = 0
    #: what a person reads in the run's log
    notes: list[str] = field(default_factory=list)


def due(current: IcebergTable, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return now - float(current.properties.get(MAINTAINED_PROPERTY, 0)) >= MAINTENANCE_INTERVAL_SECONDS


def maintain(change_log: IcebergTable, current: IcebergTable, merged_through: int | None, retention_hours: int,
             now: float | None = None) -> Maintenance:  # fmt: skip
    """Expire both tables' old snapshots and compact the current state's small files."""
    now = time.time() if now is None else now
    before_ms = int((now - retention_hours * 3600) * 1000)
    done = Maintenance()
    keep = set(_newest_per_partition(change_log))
    if merged_through is not None:
        keep.add(merged_through)
    _expire(change_log, keep, before_ms, done, "change log", newer_than=merged_through)
    keep = {s for s in (_newest_with(current, MERGED_PROPERTY), _newest_with(current, FLOOR_PROPERTY)) if s}
    _expire(current, keep, before_ms, done, "current state")
    _compact(current.refresh(), done, "current state")
    if merged_through is not None:
        # only files the current state has merged: the merge skips a compaction's files as not new
        merged = {t.file.file_path for t in change_log.scan(snapshot_id=merged_through).plan_files()}
        _compact(change_log.refresh(), done, "change log", merged)
    with current.refresh().transaction() as tx:
        tx.set_properties({MAINTAINED_PROPERTY: f"{now:.0f}"})
    return done


def _newest_per_partition(change_log: IcebergTable) -> list[int]:
    seen: dict[str, int] = {}
    for snapshot in lineage(change_log):
        props = snapshot.summary.additional_properties if snapshot.summary else {}
        for key in props:
            if key.startswith(OFFSET_PROPERTY):
                seen.setdefault(key, snapshot.snapshot_id)
    return list(seen.values())


def _newest_with(table: IcebergTable, prop: str) -> int | None:
    for snapshot in lineage(table):
        if snapshot.summary and prop in snapshot.summary.additional_properties:
            return snapshot.snapshot_id
    return None


def _expire(table: IcebergTable, keep: set[int], before_ms: int, done: Maintenance, label: str,
            newer_than: int | None = None) -> None:  # fmt: skip
    """Expire the lineage's snapshots older than the oldest one kept (those at or after ``before_ms``,
    ``keep``, the head, and every snapshot after ``newer_than``), and what only they referenced."""
    history = list(lineage(table))[::-1]  # oldest first
    if len(history) < 2:
        return
    ids = [s.snapshot_id for s in history]
    oldest_kept = len(history) - 1
    for index, snapshot in enumerate(history):
        if snapshot.timestamp_ms >= before_ms or snapshot.snapshot_id in keep:
            oldest_kept = index
            break
    if newer_than in ids:
        oldest_kept = min(oldest_kept, ids.index(newer_than))
    doomed, boundary = history[:oldest_kept], history[oldest_kept]
    if not doomed:
        return
    io = table.io
    boundary_manifests = {m.manifest_path for m in boundary.manifests(io)}
    manifests, files = set(), set()
    for snapshot in [*doomed, boundary]:
        for manifest in snapshot.manifests(io):
            if snapshot is not boundary:
                manifests.add(manifest.manifest_path)
            if manifest.added_snapshot_id != snapshot.snapshot_id:
                continue
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=False):
                if entry.status == ManifestEntryStatus.DELETED and entry.snapshot_id == snapshot.snapshot_id:
                    files.add(entry.data_file.file_path)
    table.maintenance.expire_snapshots().by_ids([s.snapshot_id for s in doomed]).commit()
    garbage = sorted(files) + sorted(manifests - boundary_manifests) + [s.manifest_list for s in doomed]
    for path in garbage:
        with contextlib.suppress(FileNotFoundError):  # a maintenance interrupted after its commit
            io.delete(path)
    done.snapshots_expired += len(doomed)
    done.files_deleted += len(files)
    done.notes.append(f"{label}: {len(doomed)} snapshot(s) expired, {len(files)} data file(s) and "
                      f"{len(garbage) - len(files)} metadata file(s) only they held deleted")  # fmt: skip


def _compact(table: IcebergTable, done: Maintenance, label: str, eligible: set[str] | None = None) -> None:
    """Rewrite the table's small files (among ``eligible`` paths, when given) into as few as their rows
    fill: groups of up to ``COMPACT_GROUP_BYTES`` (memory holds one group), one commit each that
    changes no row. A commit that loses to a writer's append is made again on the newest snapshot
    (an append adds files, it never removes the ones compacted)."""
    if table.current_snapshot() is None:
        return
    small = [t.file for t in table.scan().plan_files() if t.file.file_size_in_bytes < SMALL_FILE_BYTES
             and (eligible is None or t.file.file_path in eligible)]  # fmt: skip
    if len(small) < COMPACT_MIN_FILES:
        return
    groups: list[list] = [[]]
    size = 0
    for data_file in small:
        if groups[-1] and size + data_file.file_size_in_bytes > COMPACT_GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(data_file)
        size += data_file.file_size_in_bytes
    compacted = rows_total = 0
    for group in [g for g in groups if len(g) > 1]:
        rows = read_files(table, group)
        written = _dataframe_to_data_files(table.metadata, rows, table.io, uuid.uuid4())
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                with table.transaction() as tx, tx.update_snapshot(
                    snapshot_properties={COMPACTED_PROPERTY: str(len(group))}
                ).overwrite() as overwrite:  # fmt: skip
                    for data_file in group:
                        overwrite.delete_data_file(data_file)
                    for data_file in written:
                        overwrite.append_data_file(data_file)
                break
            except CommitFailedException:
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
                table = table.refresh()
        table = table.refresh()
        compacted += len(group)
        rows_total += rows.num_rows
    if compacted:
        done.files_compacted += compacted
        done.notes.append(f"{label}: {compacted} small file(s) compacted ({rows_total:,} rows)")
