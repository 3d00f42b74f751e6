"""The two Iceberg tables of a replicated table: their schema, creation, evolution and the change log's
appends with the Kafka offsets they hold.

Both tables carry the table's columns, the ``_cdc_*`` columns (cdc_platform/s3/values.py) and
``_cdc_partition``: the Kafka partition a change came from (NULL on a full load's rows). A table topic
may have several partitions; Debezium puts every change of one key on the same one, so a key's
changes are ordered by offset within it, and a full load is placed by each partition's end offset
when its copy began (cdc_platform/s3/current_state.py). The Arrow types are the Parquet layout's with
two changes for what Iceberg cannot hold:

* ``smallint``/``year`` (int16) become Iceberg ``int`` (Iceberg has no 16-bit integer; every value fits);
* a ``numeric`` of 39..76 digits becomes its exact decimal text (Iceberg decimals end at 38 digits).

Exactly once: every append to the change log records, in its snapshot's summary, the last Kafka offset
of each partition it holds (``cdc.offset.<partition>``). The writer commits the offsets to Kafka only
after the append; one that dies in between finds the recorded offset on its next flush and resumes
after it, as the Parquet layout does with its file names.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError

from cdc_platform.s3.iceberg_catalog import LakeNames
from cdc_platform.s3.values import arrow_schema
from cdc_platform.schema.model import Table

if TYPE_CHECKING:
    from pyiceberg.table import Table as IcebergTable

_CREATING = threading.Lock()
OFFSET_PROPERTY = "cdc.offset."
#: on a full load's commit: the ``_cdc_seq`` of its rows
FULL_LOAD_PROPERTY = "cdc.full-load-seq"
#: on a full load's commit, one per partition: the topic's end offset when the copy began
FULL_LOAD_SINCE_PROPERTY = "cdc.full-load-since."
#: the column the lake tables have beyond the Parquet layout's
PARTITION_COLUMN = pa.field("_cdc_partition", pa.int32())
#: how many snapshots back the writer looks for a partition's last recorded offset
OFFSET_SEARCH_DEPTH = 10_000
#: on a compaction's snapshot: how many files it rewrote (it changes no row; the merge skips its files)
COMPACTED_PROPERTY = "cdc.compacted-files"
#: commits of one append that may lose the race to another writer's before the append fails
COMMIT_ATTEMPTS = 20
#: the properties both lake tables carry:
#: * no retry by pyiceberg of a commit that lost to another's: it would rebuild the commit on the
#:   newest snapshot blindly, appending offsets the winner already wrote (``append_once`` retries,
#:   checking them first), or rewriting current-state files a concurrent merge replaced (that merge
#:   fails instead, and the next one redoes it);
#: * appends merge small manifests, so a change log of thousands of flushes does not make every
#:   reader open thousands of manifests to plan a scan.
LAKE_TABLE_PROPERTIES = {"commit.retry.num-retries": "0", "commit.manifest-merge.enabled": "true"}


def iceberg_arrow_type(t: pa.DataType) -> pa.DataType:
    if t == pa.int16():
        return pa.int32()
    if pa.types.is_decimal(t) and t.precision > 38:
        return pa.string()
    return t


def lake_arrow_schema(table: Table) -> pa.Schema:
    """The rows the writer and the full load produce for the lake tables (Parquet-layout types)."""
    return arrow_schema(table).append(PARTITION_COLUMN)


def iceberg_arrow_schema(table: Table) -> pa.Schema:
    return for_iceberg_schema(lake_arrow_schema(table))


def full_load_properties(seq: int, since: dict[int, int]) -> dict[str, str]:
    return {
        FULL_LOAD_PROPERTY: str(seq),
        **{f"{FULL_LOAD_SINCE_PROPERTY}{p}": str(o) for p, o in sorted(since.items())},
    }


def full_load_since(props: dict[str, str]) -> dict[int, int]:
    """partition -> end offset when the copy began, from a full load's commit; a load from before
    partitions were recorded (one partition) read it at ``seq / 2``."""
    since = {int(k[len(FULL_LOAD_SINCE_PROPERTY) :]): int(v) for k, v in props.items()
             if k.startswith(FULL_LOAD_SINCE_PROPERTY)}  # fmt: skip
    return since or {0: int(props[FULL_LOAD_PROPERTY]) // 2}


def for_iceberg_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, iceberg_arrow_type(f.type), nullable=f.nullable) for f in schema])


def for_iceberg(rows):
    """Rows (a table or a batch) of the Parquet layout's types in the Iceberg tables' types. A decimal
    wider than 38 digits becomes its fixed-point text with every digit of its scale (Python's
    ``format(value, "f")``: Arrow's own cast writes ``-1E-10``)."""
    schema = for_iceberg_schema(rows.schema)
    if rows.schema == schema:
        return rows
    columns = []
    for name, field in zip(rows.schema.names, rows.schema, strict=True):
        column = rows.column(name)
        if pa.types.is_decimal(field.type) and field.type.precision > 38:
            column = pa.array(
                [None if v is None else format(v, "f") for v in column.to_pylist()], pa.string()
            )
        columns.append(column)
    texts = pa.schema(
        [pa.field(f.name, c.type, nullable=f.nullable) for f, c in zip(rows.schema, columns, strict=True)]
    )
    return type(rows).from_arrays(columns, schema=texts).cast(schema)


def ensure_namespace(catalog: Catalog, namespace: str) -> None:
    """Created once: a full load's threads (one per table), the writer and a merge may all ask at the
    same moment; the one that loses the race finds it there."""
    with _CREATING:
        try:
            catalog.create_namespace_if_not_exists(namespace)
        except Exception:
            if not catalog.namespace_exists(namespace):
                raise


def ensure_table(catalog: Catalog, identifier: tuple[str, str], schema: pa.Schema) -> IcebergTable:
    """The table, created if missing, its schema evolved to ``schema`` where the source's grew: new
    columns added, integers and decimals widened, by Iceberg's own schema evolution (no data file is
    rewritten; older files read the new column as NULL)."""

    try:
        table = catalog.load_table(identifier)
    except NoSuchTableError:
        with _CREATING:
            try:
                return catalog.create_table_if_not_exists(identifier, schema=schema)
            except Exception:
                if not catalog.table_exists(identifier):  # another process created it meanwhile
                    raise
        table = catalog.load_table(identifier)
    missing = [n for n in schema.names if n not in {f.name for f in table.schema().fields}]
    if missing or _narrower(table, schema):
        try:
            with table.update_schema() as update:
                update.union_by_name(schema)
        except Exception as exc:  # noqa: BLE001 - named: the source's change Iceberg cannot follow
            raise RuntimeError(
                f"Iceberg table {'.'.join(identifier)} cannot take the source's new schema "
                f"({type(exc).__name__}: {exc}); its data is unchanged"
            ) from exc
        table = catalog.load_table(identifier)
    return table


def _narrower(table: IcebergTable, schema: pa.Schema) -> bool:
    """Whether a column of the Iceberg table has another type than the source's now (compared as
    Iceberg types: Arrow's string and large_string are one Iceberg string)."""

    wanted = Catalog._convert_schema_if_needed(schema)
    have = {f.name: f.field_type for f in table.schema().fields}
    return any(f.name in have and have[f.name] != f.field_type for f in wanted.fields)


def ensure_lake_tables(catalog: Catalog, names: LakeNames, table: Table) -> tuple[IcebergTable, IcebergTable]:
    """(change log, current state), created or evolved to the table's columns."""
    schema = iceberg_arrow_schema(table)
    ensure_namespace(catalog, names.namespace)
    tables = []
    for identifier in (names.change_log, names.current):
        table = ensure_table(catalog, identifier, schema)
        if any(table.properties.get(k) != v for k, v in LAKE_TABLE_PROPERTIES.items()):
            with table.transaction() as tx:
                tx.set_properties(LAKE_TABLE_PROPERTIES)
            table = catalog.load_table(identifier)
        tables.append(table)
    return tables[0], tables[1]


def recorded_offsets(table: IcebergTable, partitions: Iterable[int] | None = None) -> dict[int, int]:
    """partition -> the last offset an append to the change log recorded (newest snapshot first);
    with ``partitions``, the walk stops once each of them is found."""
    wanted = None if partitions is None else set(partitions)
    found: dict[int, int] = {}
    for depth, snapshot in enumerate(lineage(table)):
        if depth >= OFFSET_SEARCH_DEPTH or (wanted is not None and wanted <= found.keys()):
            break
        summary = snapshot.summary.additional_properties if snapshot.summary else {}
        for key, value in summary.items():
            if key.startswith(OFFSET_PROPERTY):
                found.setdefault(int(key[len(OFFSET_PROPERTY) :]), int(value))
    return found


def lineage(table: IcebergTable, start=None) -> Iterator:
    """The current snapshot (or ``start``) and its ancestors, newest first (snapshots looked up by id
    once: ``snapshot_by_id`` scans the list, which made a walk quadratic in the table's history)."""
    by_id = {s.snapshot_id: s for s in table.metadata.snapshots}
    snapshot = start if start is not None else table.current_snapshot()
    while snapshot is not None:
        yield snapshot
        snapshot = by_id.get(snapshot.parent_snapshot_id) if snapshot.parent_snapshot_id else None


def offset_properties(offsets: dict[int, int]) -> dict[str, str]:
    return {f"{OFFSET_PROPERTY}{p}": str(o) for p, o in sorted(offsets.items())}


def append_changes(table: IcebergTable, rows: pa.Table, offsets: dict[int, int]) -> None:
    """One commit: the rows, and the last offset of each partition they came from."""
    table.append(for_iceberg(rows), snapshot_properties=offset_properties(offsets))


def append_once(table: IcebergTable, rows: pa.Table, offsets: dict[int, int]) -> IcebergTable | None:
    """The writer's append: the rows (``_cdc_partition``, ``_cdc_seq = 2 x offset + 1``) whose offsets
    no append recorded yet, in one commit; the table as committed, or None when every row was there.

    Several writers may append to one change log (each its own partitions). The catalog commits one
    snapshot at a time and refuses a commit based on a snapshot that is no longer the newest, so the
    check and the append are retried on the newest snapshot until one commits: a writer that lost
    its partitions to another (a rebalance, a second copy started by mistake) cannot write an offset
    twice."""
    for attempt in range(COMMIT_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, 0.05 * attempt))  # writers that collided do not collide again
        recorded = recorded_offsets(table, offsets)
        fresh = _after(rows, recorded)
        if fresh.num_rows == 0 and all(recorded.get(p, -1) >= o for p, o in offsets.items()):
            return None
        try:
            append_changes(table, fresh, offsets)
            return table
        except CommitFailedException:
            table = table.refresh()
    raise RuntimeError(f"the change log {table.name()} changed under {COMMIT_ATTEMPTS} commits in a row")


def _after(rows: pa.Table, recorded: dict[int, int]) -> pa.Table:
    """The rows whose offset is beyond what their partition's appends recorded."""
    if not recorded or rows.num_rows == 0:
        return rows
    limit = per_partition(row_partitions(rows), {p: 2 * o + 1 for p, o in recorded.items()}, -1)
    return rows.filter(pc.greater(rows["_cdc_seq"], limit))


def row_partitions(rows: pa.Table) -> pa.Array:
    """Each row's partition; rows written before the column existed came from the one partition, 0."""
    if "_cdc_partition" not in rows.column_names:
        return pa.array([0] * rows.num_rows, pa.int32())
    return pc.fill_null(rows["_cdc_partition"], 0)


def per_partition(partitions: pa.Array, values: dict[int, int], default: int) -> pa.Array:
    """For each row's partition, its value in ``values`` (``default`` for a partition not in it),
    looked up by Arrow rather than row by row."""
    table = pa.array([values.get(p, default) for p in range(max(values, default=0) + 1)], pa.int64())
    known = pc.less(partitions, len(table))
    return pc.if_else(known, pc.take(table, pc.if_else(known, partitions, 0)), default)
