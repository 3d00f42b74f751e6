"""The full load into an Iceberg change log: the source's rows appended in one commit, streamed.

The rows are the Parquet layout's snapshot rows (``_cdc_op = 'r'``, ``_cdc_seq = 2 x`` the topic's
end offset when the copy began; cdc_platform/s3/snapshot.py), in the Iceberg tables' types, fed to
pyiceberg as a record-batch stream: memory stays at one batch whatever the table's size, and the
commit happens once every row is written, so a copy that fails leaves the change log as it was.

The commit records ``cdc.full-load-seq`` and each partition's end offset when the copy began
(``cdc.full-load-since.<partition>``): the merge into the current state treats a full load as
authoritative, so after a re-load the keys the new copy does not hold are gone from the current state
(cdc_platform/s3/current_state.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from cdc_platform.s3.iceberg_catalog import LakeNames, lake_catalog
from cdc_platform.s3.iceberg_tables import (
    ensure_lake_tables,
    for_iceberg,
    for_iceberg_schema,
    full_load_properties,
    lake_arrow_schema,
)
from cdc_platform.s3.snapshot import RowCount, snapshot_batches, source_rows
from cdc_platform.schema.model import CopyJob
from cdc_platform.specs.models import ConnectionSpec


def write_lake_snapshot(src: ConnectionSpec, dst: ConnectionSpec, job: CopyJob, specs_dir: Path, *,
                        snapshot: str | None, batch_size: int,
                        tick: Callable[[int], None]) -> tuple[int, int, dict[str, int]]:  # fmt: skip
    """(rows, bytes of data files written, substitutions per column)."""
    catalog = lake_catalog(dst, specs_dir)
    change_log, _ = ensure_lake_tables(catalog, LakeNames(job.target_schema, job.target_name), job.table)
    schema = lake_arrow_schema(job.table)
    substituted: dict[str, int] = {}
    counted = RowCount()
    seq = 2 * job.since_offset
    rows = source_rows(src, job, specs_dir, snapshot, batch_size, substituted)
    batches = (for_iceberg(b) for b in snapshot_batches(schema, [c.name for c in job.table.columns], seq, rows,
                                                        tick, counted))  # fmt: skip
    change_log.append(pa.RecordBatchReader.from_batches(for_iceberg_schema(schema), batches),
                      snapshot_properties=full_load_properties(seq, job.since_offsets or {0: job.since_offset}))  # fmt: skip
    summary = change_log.refresh().current_snapshot().summary
    written = int(summary.additional_properties.get("added-files-size", 0)) if summary else 0
    return counted.rows, written, substituted
