"""The Iceberg catalog of an S3 connection with ``table_format: iceberg``, and its tables' names.

By default a SQL catalog on the platform's own database (SQLite beside ``DAGSTER_HOME``, or the
production profile's PostgreSQL): nothing else to run, and every engine that speaks Iceberg's SQL
catalog (Spark, Trino's JDBC catalog, DuckDB through pyiceberg) finds the tables there. A connection's
``catalog`` properties (``type: rest``, ``uri``, ``credential`` ...) choose another, as pyiceberg's
``load_catalog`` takes them. Data and metadata files live under ``s3://<bucket>/<prefix>/``.

Files go through fsspec's s3fs: Arrow's S3 output stream completes every file as a multipart upload,
which S3-compatible servers such as moto refuse for small objects.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cdc_platform.platform_db import metrics_url
from cdc_platform.secrets import resolve_secret
from cdc_platform.specs.models import ConnectionSpec

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

#: attempts at opening a SQL catalog whose tables another process may be creating at that moment
_OPEN_ATTEMPTS = 4
#: the change log's table name is the replicated table's name with this suffix
CHANGE_LOG_SUFFIX = "_changes"


@dataclass(frozen=True)
class LakeNames:
    """Where one replicated table lives in the catalog: its change log and its current state."""

    namespace: str
    table: str

    @property
    def change_log(self) -> tuple[str, str]:
        return (self.namespace, self.table + CHANGE_LOG_SUFFIX)

    @property
    def current(self) -> tuple[str, str]:
        return (self.namespace, self.table)


def catalog_name(conn: ConnectionSpec) -> str:
    """One catalog per warehouse (bucket and prefix), whatever the connection is called: two
    deployments sharing a platform database, or two connections to one bucket, see the same tables
    where they write the same files, and never another bucket's table of the same name."""
    return "cdc_" + re.sub(r"[^A-Za-z0-9]+", "_", warehouse(conn).removeprefix("s3://")).strip("_")


def warehouse(conn: ConnectionSpec) -> str:
    return "s3://" + "/".join(p for p in (str(conn.bucket), conn.prefix.strip("/")) if p)


def file_io_properties(conn: ConnectionSpec, specs_dir: Path | None) -> dict[str, str]:
    """pyiceberg's S3 properties; keys resolved from their references here, never stored or logged."""
    props = {"py-io-impl": "pyiceberg.io.fsspec.FsspecFileIO", "s3.region": conn.region}
    if conn.endpoint_url:
        props["s3.endpoint"] = conn.endpoint_url
    if conn.access_key_id is not None and conn.secret_access_key is not None:
        props["s3.access-key-id"] = resolve_secret(conn.access_key_id, specs_dir)
        props["s3.secret-access-key"] = resolve_secret(conn.secret_access_key, specs_dir)
    return props


def lake_catalog(conn: ConnectionSpec, specs_dir: Path | None, platform_url: str | None = None) -> Catalog:
    """The connection's catalog (the SQL catalog on the platform database unless configured)."""
    configured = {
        k: v if isinstance(v, str) else resolve_secret(v, specs_dir) for k, v in conn.catalog.items()
    }
    props = {**file_io_properties(conn, specs_dir), "warehouse": warehouse(conn), **configured}
    if "type" not in configured and "uri" not in configured:
        props.update(type="sql", uri=platform_url or metrics_url())
    return _open_catalog(catalog_name(conn), props)


def _open_catalog(name: str, props: dict[str, str]) -> Catalog:
    """pyiceberg's SQL catalog creates its tables on first use by check-then-create, so two
    processes opening a fresh platform database at once (a Dagster run and the S3 writer, or two
    runs) race: the loser's CREATE TABLE fails with "already exists" (SQLite) or a duplicate type
    (PostgreSQL). The winner has created them by then, so opening again succeeds; a real fault (a
    wrong URI, a database that is down) fails the same way every time and is raised. Only the SQL
    catalog raises SQLAlchemy's errors, so the others are opened once."""
    # lazy: pyiceberg and SQLAlchemy only when a lake table is written or read
    from pyiceberg.catalog import load_catalog
    from sqlalchemy.exc import DBAPIError

    for attempt in range(1, _OPEN_ATTEMPTS):
        try:
            return load_catalog(name, **props)
        except DBAPIError:
            time.sleep(0.05 * attempt)
    return load_catalog(name, **props)
