"""Copy paths into and out of SQL Server (pyodbc batches; not run against a live server here)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cdc_platform.pipeline.full_load.common import Progress, rows_to_mysql, rows_to_pg
from cdc_platform.pipeline.mysql_rows import (
    fixed_rows,
    mysql_rows,
    mysql_value_fixers,
)
from cdc_platform.pipeline.sqlserver_load import (
    mysql_decimal_fixer,
    pg_rows_for_sqlserver,
    sqlserver_rows,
    write_sqlserver,
)
from cdc_platform.schema.model import CopyJob


def sqlserver_to_pg(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    substituted: dict[str, int] = {}
    rows = sqlserver_rows(src, job, specs_dir, batch_size, "postgresql", substituted)
    return rows_to_pg(dst, job, specs_dir, rows, log), None, substituted


def sqlserver_to_mysql(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    substituted: dict[str, int] = {}
    rows = sqlserver_rows(src, job, specs_dir, batch_size, dst.kind.value, substituted)
    return rows_to_mysql(dst, job, specs_dir, rows, log, batch_size), None, substituted


def to_sqlserver(src, dst, job: CopyJob, specs_dir: Path, snapshot, log, batch_size):
    substituted: dict[str, int] = {}
    kind = src.kind.value
    if kind == "postgresql":
        rows: Iterable = pg_rows_for_sqlserver(src, job, specs_dir, snapshot, batch_size, substituted)
    elif kind == "sqlserver":
        rows = sqlserver_rows(src, job, specs_dir, batch_size, "sqlserver", substituted)
    else:
        fixers = mysql_value_fixers(job.table, "sqlserver", substituted)
        fixers += sorted(mysql_decimal_fixer(job.table, substituted).items())
        rows = fixed_rows(mysql_rows(src, job, specs_dir, batch_size), fixers)
    progress = Progress(job.table.qualified, log)
    return write_sqlserver(dst, job, specs_dir, rows, batch_size, progress.tick), None, substituted
