"""Shared shapes for connector configs: endpoints, table references, topic names."""

from __future__ import annotations

import re
from dataclasses import dataclass

SOURCE_KINDS = ("postgresql", "mysql", "mariadb", "sqlserver")
SINK_KINDS = ("postgresql", "mysql", "mariadb", "sqlserver")


@dataclass(frozen=True)
class DatabaseEndpoint:
    """A database as a connector sees it. ``password_ref`` is a config-provider reference, never a password."""

    kind: str
    host: str
    port: int
    database: str
    username: str
    password_ref: str
    options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.password_ref.startswith("${") or not self.password_ref.endswith("}"):
            raise ValueError(
                "password_ref must be a Kafka Connect config-provider reference such as ${env:VAR} "
                "or ${file:/path:key}; a plaintext password never goes into a connector config"
            )


@dataclass(frozen=True)
class TableRef:
    """``schema`` is the PostgreSQL/SQL Server schema, or the database name for MySQL/MariaDB."""

    schema: str
    table: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


def topic_name(kind: str, prefix: str, database: str, table: TableRef) -> str:
    """The topic Debezium writes a table's changes to."""
    if kind == "sqlserver":
        return f"{prefix}.{database}.{table.schema}.{table.table}"
    return f"{prefix}.{table.schema}.{table.table}"


def include_pattern(table: TableRef) -> str:
    """Debezium include lists are anchored regexes: escape names so ``a.b`` cannot match ``axb``."""
    return f"{re.escape(table.schema)}\\.{re.escape(table.table)}"
