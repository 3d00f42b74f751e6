"""What the platform can do per engine and per source/target pair, in one place.

Spec validation, connector builders, the full load and the asset translator all ask here, so adding
an engine or a pair is one edit.
"""

from __future__ import annotations

#: source -> target pairs with a full-load path (streamed COPY / LOAD DATA; pyodbc batches for SQL
#: Server, cdc_platform/pipeline/sqlserver_load.py)
DATABASE_KINDS = ("postgresql", "mysql", "mariadb", "sqlserver")
COPY_PAIRS = frozenset((src, dst) for src in DATABASE_KINDS for dst in DATABASE_KINDS)
#: sources an S3 (Parquet) target takes: those whose changes the platform's converter carries exactly
S3_SOURCES = ("postgresql", "mysql", "mariadb")
#: connection kind -> the kind tag Dagster shows as an engine icon
ENGINE_KINDS = {
    "postgresql": "postgres", "mysql": "mysql", "mariadb": "mariadb", "sqlserver": "sqlserver", "s3": "s3",
}  # fmt: skip
