"""The full load into S3: the table's rows as Parquet under ``snapshot/``, streamed in row groups.

Rows come from the source's streaming read (PostgreSQL: a named cursor in the handoff's exported
snapshot; MySQL/MariaDB: an unbuffered cursor in a consistent snapshot) and go out in row groups of
``ROW_GROUP_ROWS``, so memory stays flat whatever the table's size. Every row carries
``_cdc_op = 'r'`` and ``_cdc_seq = 2 * since_offset``: the table topic's end offset when the copy
began (summed over its partitions; the Parquet layout has one). A change at offset ``o`` has
``_cdc_seq = 2 * o + 1``, so a merge by largest ``_cdc_seq`` lets every change captured after the
copy's snapshot win over the snapshot row, and the snapshot row win over every older change (a
re-load). Copied rows have even, changes odd ``_cdc_seq``: that tells them apart. The Iceberg
layout, whose topics may have several partitions, orders them per partition instead
(cdc_platform/s3/current_state.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cdc_platform.pipeline.mysql_rows import fixed_rows, mysql_rows, mysql_value_fixers
from cdc_platform.pipeline.pg_rows import pg_rule_rows
from cdc_platform.s3.storage import (
    TableLocation,
    check_bucket,
    list_files,
    put_file,
    s3_client,
    s3_filesystem,
)
from cdc_platform.s3.values import arrow_schema, decimal_column, snapshot_fixers
from cdc_platform.schema.model import CopyJob
from cdc_platform.schema.types import CanonicalType
from cdc_platform.specs.models import ConnectionSpec

ROW_GROUP_ROWS = 100_000


def pg_text_for_s3(ctype: CanonicalType) -> bool:
    """Columns read as PostgreSQL text: what the converter (target s3) sends for them in CDC."""
    if ctype.name == "numeric":
        return not decimal_column(ctype)
    return ctype.name in ("json", "jsonb", "uuid", "interval", "char", "time")


def source_rows(src: ConnectionSpec, job: CopyJob, specs_dir: Path, snapshot: str | None, batch_size: int,
                substituted: dict[str, int]) -> Iterable[list]:  # fmt: skip
    """The source table's rows as the S3 rules want them (the same values the CDC side decodes)."""
    if src.kind.value == "postgresql":
        rows: Iterable = pg_rule_rows(
            src, job, specs_dir, snapshot, batch_size, "s3", substituted, pg_text_for_s3
        )
    else:
        rows = fixed_rows(
            mysql_rows(src, job, specs_dir, batch_size), mysql_value_fixers(job.table, "s3", substituted)
        )
    fixers = snapshot_fixers(job.table, src.kind.value)
    for row in rows:
        yield [fixers[i](v) if i in fixers and v is not None else v for i, v in enumerate(row)]


def write_snapshot(src: ConnectionSpec, dst: ConnectionSpec, job: CopyJob, specs_dir: Path, *,
                   snapshot: str | None, batch_size: int, tick: Callable[[int], None]) -> tuple[int, int, dict[str, int]]:  # fmt: skip
    """(rows, bytes written, substitutions per column). The previous snapshot is replaced only once
    the new one is uploaded."""
    fs = s3_filesystem(dst, specs_dir)
    check_bucket(fs, dst)
    client = s3_client(dst, specs_dir)
    location = TableLocation.of(dst, job.target_schema, job.target_name)
    schema = arrow_schema(job.table)
    names = [c.name for c in job.table.columns]
    substituted: dict[str, int] = {}
    seq = 2 * job.since_offset
    part_path = location.snapshot_file(0)
    with tempfile.TemporaryDirectory(prefix="cdc-snapshot-") as scratch:
        local = Path(scratch) / "part.parquet"
        rows = _write_local(
            local,
            schema,
            names,
            seq,
            source_rows(src, job, specs_dir, snapshot, batch_size, substituted),
            tick,
        )
        # one PUT replaces the previous snapshot's object whole: a re-load that fails before it
        # leaves the old snapshot readable; files of an older layout are removed only afterwards
        put_file(client, part_path, local)
        written = local.stat().st_size
    for stale in list_files(fs, location.snapshot_dir):
        if stale.path != part_path:
            fs.delete_file(stale.path)
    return rows, written, substituted


def _write_local(local: Path, schema: pa.Schema, names: list[str], seq: int, source: Iterable[list],
                 tick: Callable[[int], None]) -> int:  # fmt: skip
    """Row groups into a local file first: the upload is one managed transfer, memory stays flat."""
    counted = RowCount()
    with pq.ParquetWriter(local, schema, compression="zstd") as writer:
        for batch in snapshot_batches(schema, names, seq, source, tick, counted):
            writer.write_batch(batch)
    return counted.rows


class RowCount:
    rows = 0


def snapshot_batches(schema: pa.Schema, names: list[str], seq: int, source: Iterable[list],
                     tick: Callable[[int], None], counted: RowCount) -> Iterator[pa.RecordBatch]:  # fmt: skip
    """The source's rows as record batches of ``ROW_GROUP_ROWS`` with the snapshot's ``_cdc_*``
    values (an empty table still yields one empty batch, so the file has the schema)."""
    buffer: list[list] = []

    def batch() -> pa.RecordBatch:
        columns = list(zip(*buffer, strict=True)) if buffer else [[] for _ in names]
        arrays = [
            pa.array(list(values), type=schema.field(n).type)
            for n, values in zip(names, columns, strict=True)
        ]
        count = len(buffer)
        arrays += [pa.array(["r"] * count, pa.string()), pa.nulls(count, pa.int64()),
                   pa.nulls(count, pa.string()), pa.array([seq] * count, pa.int64())]  # fmt: skip
        # columns only the lake tables have (``_cdc_partition``): a copied row came from no partition
        arrays += [pa.nulls(count, f.type) for f in list(schema)[len(arrays) :]]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    for row in source:
        buffer.append(row)
        counted.rows += 1
        if len(buffer) >= ROW_GROUP_ROWS:
            yield batch()
            buffer = []
            tick(counted.rows)
    if buffer or counted.rows == 0:
        yield batch()
