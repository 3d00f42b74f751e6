"""The copy path into S3: the Parquet snapshot (cdc_platform/s3/snapshot.py), or the Iceberg change
log's first rows (cdc_platform/s3/lake_snapshot.py)."""

from __future__ import annotations

from pathlib import Path

from cdc_platform.pipeline.full_load.common import Progress
from cdc_platform.s3.snapshot import write_snapshot
from cdc_platform.schema.model import CopyJob


def to_s3(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):

    progress = Progress(job.table.qualified, log)
    if dst.table_format == "iceberg":
        # lazy: pyiceberg only for a lake target
        from cdc_platform.s3.lake_snapshot import write_lake_snapshot

        return write_lake_snapshot(
            src, dst, job, specs_dir, snapshot=snapshot, batch_size=batch_size, tick=progress.tick
        )
    return write_snapshot(
        src, dst, job, specs_dir, snapshot=snapshot, batch_size=batch_size, tick=progress.tick
    )
