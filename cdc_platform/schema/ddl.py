"""DDL for the target: schema and tables, with identifiers quoted per dialect.

Identifiers reaching here were validated by the spec models or read from the source catalog; they
are still quoted (and quote characters doubled) so no name is ever pasted into SQL raw.
"""

from __future__ import annotations

import zlib

from cdc_platform.schema.model import Table
from cdc_platform.schema.types import render


def quote(kind: str, name: str) -> str:
    if kind == "postgresql":
        return '"' + name.replace('"', '""') + '"'
    if kind in ("mysql", "mariadb"):
        return "`" + name.replace("`", "``") + "`"
    if kind == "sqlserver":
        return "[" + name.replace("]", "]]") + "]"
    raise ValueError(f"no SQL dialect for {kind!r}")


def qualified(kind: str, schema: str, table: str) -> str:
    return f"{quote(kind, schema)}.{quote(kind, table)}"


def create_schema_sql(kind: str, schema: str) -> str:
    if kind == "postgresql":
        return f"CREATE SCHEMA IF NOT EXISTS {quote(kind, schema)}"
    if kind in ("mysql", "mariadb"):
        return (
            f"CREATE DATABASE IF NOT EXISTS {quote(kind, schema)} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )
    if kind == "sqlserver":
        literal = schema.replace("'", "''")
        return f"IF SCHEMA_ID(N'{literal}') IS NULL EXEC(N'CREATE SCHEMA {quote(kind, schema).replace(chr(39), chr(39) * 2)}')"
    raise ValueError(kind)


def create_table_sql(
    kind: str, schema: str, target_name: str, table: Table, *, source_kind: str | None = None
) -> str:
    """Key columns are NOT NULL; every other column is created NULL-able, whatever the source says.

    The source enforces its own NOT NULL; the target's copy only has to hold what arrives. A target
    NOT NULL would turn routine source changes into a stopped sink (a dropped NOT NULL column: every
    later insert lacks it) and a value rule's NULL into a refused row, so the platform leaves it out,
    as managed CDC services do. ``source_kind`` is kept for callers; it no longer changes the DDL."""
    lines = []
    for column in table.columns:
        null = " NOT NULL" if column.name in table.primary_key else ""
        lines.append(f"  {quote(kind, column.name)} {render(kind, column.type)}{null}")
    lines.append(f"  PRIMARY KEY ({', '.join(quote(kind, c) for c in table.primary_key)})")
    body = ",\n".join(lines)
    target = qualified(kind, schema, target_name)
    if kind == "sqlserver":
        literal = f"{schema}.{target_name}".replace("'", "''")
        return f"IF OBJECT_ID(N'{literal}', N'U') IS NULL\nCREATE TABLE {target} (\n{body}\n)"
    suffix = (
        " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin" if kind in ("mysql", "mariadb") else ""
    )
    return f"CREATE TABLE IF NOT EXISTS {target} (\n{body}\n){suffix}"


def truncate_sql(kind: str, schema: str, target_name: str) -> str:
    return f"TRUNCATE TABLE {qualified(kind, schema, target_name)}"


def shadow_name(name: str, role: str) -> str:
    """A sibling table name for a re-load (``role``: load, old), within MySQL's 64-character limit."""

    candidate = f"{name}__cdc_{role}"
    if len(candidate) <= 64:
        return candidate
    return f"{name[:40]}_{zlib.crc32(name.encode()):08x}__cdc_{role}"
