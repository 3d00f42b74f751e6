"""Copying tables source -> target by the fastest native path each pair has.

* PostgreSQL -> PostgreSQL: ``COPY (SELECT ...) TO STDOUT`` read by psql in a second process (or
  psycopg) and relayed in megabyte blocks into ``COPY ... FROM STDIN``; rows are never parsed. In
  the binary format when every column has the same built-in type on both servers, else in text.
* PostgreSQL -> MySQL/MariaDB: ``COPY ... (FORMAT csv)`` into ``LOAD DATA LOCAL INFILE``, which reads
  psql's stdout itself where it can (``/proc/self/fd``), else a FIFO this process relays into; no row
  becomes a Python object.
* MySQL/MariaDB -> PostgreSQL: each row rendered as a ``COPY`` text line by the source server
  (``mysql_copy_text``) inside ``START TRANSACTION WITH CONSISTENT SNAPSHOT``, read by the
  ``mariadb`` client in a second process (``mysql_client``) or pymysql, relayed into
  ``COPY ... FROM STDIN`` unparsed.
* MySQL/MariaDB -> MySQL/MariaDB: the same lines, in MySQL's value text, into ``LOAD DATA LOCAL INFILE``.

A PostgreSQL source copy can join an exported snapshot (``snapshot`` argument), which is what makes
the handoff to Debezium gap-free: every table is read at the slot's consistent point.

The package: ``common`` (figures, progress, the loaders every path shares), one module per source
engine (``from_postgresql``, ``from_mysql``) and per special target (``sqlserver_paths``, ``s3_path``),
and here the registry that routes each (source, target) pair to its path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from cdc_platform.pipeline.full_load.common import CopyStats
from cdc_platform.pipeline.full_load.from_mysql import mysql_to_mysql, mysql_to_pg
from cdc_platform.pipeline.full_load.from_postgresql import pg_to_mysql, pg_to_pg
from cdc_platform.pipeline.full_load.s3_path import to_s3
from cdc_platform.pipeline.full_load.sqlserver_paths import sqlserver_to_mysql, sqlserver_to_pg, to_sqlserver
from cdc_platform.pipeline.load_errors import FullLoadError
from cdc_platform.schema.model import CopyJob
from cdc_platform.schema.rules import describe_rules
from cdc_platform.specs.models import ConnectionSpec


def _family(kind: str) -> str:
    return "mysql" if kind in ("mysql", "mariadb") else kind


#: (source family, target family) -> the copy path; a new pair or target kind is one entry here
PATHS: dict[tuple[str, str], Callable] = {
    ("postgresql", "postgresql"): pg_to_pg,
    ("postgresql", "mysql"): pg_to_mysql,
    ("mysql", "postgresql"): mysql_to_pg,
    ("mysql", "mysql"): mysql_to_mysql,
    ("postgresql", "s3"): to_s3,
    ("mysql", "s3"): to_s3,
    ("postgresql", "sqlserver"): to_sqlserver,
    ("mysql", "sqlserver"): to_sqlserver,
    ("sqlserver", "sqlserver"): to_sqlserver,
    ("sqlserver", "postgresql"): sqlserver_to_pg,
    ("sqlserver", "mysql"): sqlserver_to_mysql,
}


def _route(src_kind: str, dst_kind: str) -> Callable:
    path = PATHS.get((_family(src_kind), _family(dst_kind)))
    if path is None:
        raise ValueError(
            f"no full-load path for {src_kind} -> {dst_kind} (specs are checked for this at load)"
        )
    return path


def copy_table(src: ConnectionSpec, dst: ConnectionSpec, job: CopyJob, specs_dir: Path, *,
               snapshot: str | None = None, log: Callable[[str], None] = print, batch_size: int = 10_000) -> CopyStats:  # fmt: skip
    copy = _route(src.kind.value, dst.kind.value)
    started = time.monotonic()
    rows, nbytes, substituted = copy(src, dst, job, specs_dir, snapshot, log, batch_size)
    stats = CopyStats(job.table.qualified, rows, nbytes, time.monotonic() - started, substituted)
    for column, count in sorted(substituted.items()):
        ctype = next(c.type for c in job.table.columns if c.name == column)
        log(f"{job.table.qualified}.{column}: {count:,} value(s) changed by rule: "
            f"{describe_rules(src.kind.value, dst.kind.value, ctype)}")  # fmt: skip
    log(f"{job.table.qualified} -> {job.target_schema}.{job.target_name}: {rows:,} rows in "
        f"{stats.seconds:.1f} s ({stats.rows_per_second:,.0f} rows/s)")  # fmt: skip
    return stats


def copy_tables(src: ConnectionSpec, dst: ConnectionSpec, jobs: list[CopyJob], specs_dir: Path, *,
                parallelism: int, snapshot: str | None = None, log: Callable[[str], None] = print,
                batch_size: int = 10_000) -> dict[str, CopyStats]:  # fmt: skip
    """Copy every job, ``parallelism`` tables at a time; the first failure is raised after the rest stop."""
    results: dict[str, CopyStats] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(jobs)))) as pool:
        futures = {
            pool.submit(
                copy_table, src, dst, job, specs_dir, snapshot=snapshot, log=log, batch_size=batch_size
            ): job
            for job in jobs
        }
        for future in as_completed(futures):
            job = futures[future]
            results[job.table.qualified] = future.result()
    return results


__all__ = ["PATHS", "CopyStats", "FullLoadError", "copy_table", "copy_tables"]
