"""The current state of an S3 target's table: its snapshot and change files merged by key.

Every file holds whole rows with ``_cdc_seq``; for each key the row with the largest ``_cdc_seq``
is the latest, and a key whose latest row is a delete (``_cdc_op = 'd'``) is gone. The same in
DuckDB (README, "S3 target")::

    SELECT * EXCLUDE (_cdc_op, _cdc_source_ts_ms, _cdc_position, _cdc_seq) FROM (
      SELECT *, row_number() OVER (PARTITION BY id ORDER BY _cdc_seq DESC) AS _n
      FROM read_parquet('s3://bucket/prefix/schema/table/**/*.parquet')
    ) WHERE _n = 1 AND _cdc_op <> 'd'
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from cdc_platform.s3.storage import TableLocation
from cdc_platform.s3.values import CDC_COLUMNS

CDC_NAMES = [f.name for f in CDC_COLUMNS]


def all_rows(fs: pafs.FileSystem, location: TableLocation) -> pa.Table:
    """Every snapshot and change row of the table (empty when nothing was written yet).

    Files written before and after a source schema change differ: a new column is absent from the
    older ones (read as NULL there), a widened decimal or integer is narrower in them. The files'
    schemas are unified with Arrow's permissive promotion, so every value reads exactly in the
    widest type (DuckDB: ``read_parquet(..., union_by_name = true)``)."""
    dataset = ds.dataset(location.root, filesystem=fs, format="parquet")
    schemas = {f.physical_schema for f in dataset.get_fragments()}
    if len(schemas) > 1:
        unified = pa.unify_schemas(list(schemas), promote_options="permissive")
        dataset = ds.dataset(location.root, filesystem=fs, format="parquet", schema=unified)
    return dataset.to_table()


def latest(rows: pa.Table, key: list[str]) -> pa.Table:
    """The newest row of each key, deletes removed, without the ``_cdc_*`` columns.

    Pure Arrow (no pandas): a float NaN stays a value distinct from NULL, and timestamps of any
    year in 1..9999 stay exact."""
    if rows.num_rows == 0:
        return rows.drop_columns(CDC_NAMES)
    newest_first = rows.take(pc.sort_indices(rows, sort_keys=[("_cdc_seq", "descending")]))
    numbered = newest_first.append_column("_row", pa.array(range(newest_first.num_rows), pa.int64()))
    firsts = numbered.group_by(key, use_threads=False).aggregate([("_row", "first")])
    picked = newest_first.take(firsts["_row_first"])
    alive = picked.filter(pc.not_equal(picked["_cdc_op"], "d"))
    return alive.drop_columns(CDC_NAMES)


def read_latest(fs: pafs.FileSystem, location: TableLocation, key: list[str]) -> pa.Table:
    return latest(all_rows(fs, location), key)
