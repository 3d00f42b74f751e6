"""SQL Server change data capture, switched on for the pipeline's database and tables.

Debezium's SQL Server connector reads the change tables SQL Server's own CDC fills; it cannot
switch CDC on itself. The plan therefore carries the statements (``cdc-platform plan`` prints them)
and the run executes them before the source connector is deployed. Each is idempotent: it does
nothing where CDC is already on. ``sys.sp_cdc_enable_db`` needs sysadmin, ``sp_cdc_enable_table``
db_owner, and SQL Server Agent must run for the capture jobs to fill the change tables.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cdc_platform.db import odbc_connect
from cdc_platform.schema.ddl import qualified


def _literal(text: str) -> str:
    return "N'" + text.replace("'", "''") + "'"


def enable_cdc_sql(tables: list[tuple[str, str]]) -> list[str]:
    """The statements that switch CDC on for the connected database and each ``(schema, table)``."""
    statements = [
        "IF NOT EXISTS (SELECT 1 FROM sys.databases WHERE name = DB_NAME() AND is_cdc_enabled = 1)\n"
        "    EXEC sys.sp_cdc_enable_db"
    ]
    for schema, table in tables:
        object_name = _literal(qualified("sqlserver", schema, table))
        statements.append(
            f"IF NOT EXISTS (SELECT 1 FROM cdc.change_tables WHERE source_object_id = OBJECT_ID({object_name}))\n"
            f"    EXEC sys.sp_cdc_enable_table @source_schema = {_literal(schema)}, "
            f"@source_name = {_literal(table)}, @role_name = NULL, @supports_net_changes = 0"
        )
    return statements


def ensure_capture(source, specs_dir: Path, statements: list[str], log: Callable[[str], None],
                   connect=None) -> None:  # fmt: skip
    """Run the statements, one batch each, naming the source and the missing right on failure."""

    conn = (connect or odbc_connect)(source, specs_dir, autocommit=True)
    try:
        cur = conn.cursor()
        for statement in statements:
            try:
                cur.execute(statement)
            except Exception as exc:
                raise RuntimeError(
                    f"could not switch on change data capture on SQL Server {source.name} "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                    "sys.sp_cdc_enable_db needs sysadmin and sp_cdc_enable_table db_owner, or a DBA runs "
                    "the statements `cdc-platform plan` prints"
                ) from exc
    finally:
        conn.close()
    log(f"change data capture on for {len(statements) - 1} table(s) of {source.name}")
