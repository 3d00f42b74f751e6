"""The shapes every layer shares: a source table as discovered, and one table's copy job.

Kept apart from discovery (which talks to databases) and from the full load (which moves rows) so
the DDL, the plan, the catalog and the asset translator can use them without importing either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdc_platform.schema.types import CanonicalType

#: the platform's own heartbeat tables (cdc_platform/pipeline/heartbeat.py) start with this; discovery
#: never offers them as a pipeline's tables
HEARTBEAT_PREFIX = "cdc_heartbeat_"


def is_heartbeat_table(name: str) -> bool:
    return name.startswith(HEARTBEAT_PREFIX)


#: PostgreSQL types whose large values are TOASTed and arrive as placeholders unless REPLICA IDENTITY FULL
TOASTABLE = {"text", "varchar", "char", "json", "jsonb", "binary", "numeric"}


@dataclass(frozen=True)
class Column:
    name: str
    type: CanonicalType
    nullable: bool
    native_type: str
    #: dropped on the source, kept on an S3 target: the files still carry it (NULL in newer rows), so
    #: the changes captured before the drop keep their values
    kept: bool = False


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    #: True when the key was declared in the spec rather than found in the source
    declared_key: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def has_toastable(self) -> bool:
        return any(c.type.name in TOASTABLE for c in self.columns)


@dataclass(frozen=True)
class CopyJob:
    """One table of a full load: which source table, into which target schema and name."""

    table: Table
    target_schema: str
    target_name: str
    #: S3 targets: the table topic's end offset when the copy began, summed over its partitions
    #: (see cdc_platform/s3/snapshot.py)
    since_offset: int = 0
    #: S3 targets: partition -> the table topic's end offset when the copy began
    since_offsets: dict[int, int] = field(default_factory=dict)
    #: ranges of the table copied at once where the path can split it (PostgreSQL -> MySQL/MariaDB)
    streams: int = 1


# -- stored forms (the catalog, the deployed schema): plain JSON, stable across versions --------
def column_to_json(c: Column) -> dict:
    t = c.type
    raw = {
        "name": c.name, "nullable": c.nullable, "native_type": c.native_type,
        "type": {"name": t.name, "length": t.length, "precision": t.precision, "scale": t.scale},
    }  # fmt: skip
    if c.kept:
        raw["kept"] = True
    return raw


def table_to_json(t: Table) -> dict:
    return {
        "schema": t.schema, "name": t.name, "primary_key": list(t.primary_key),
        "declared_key": t.declared_key, "columns": [column_to_json(c) for c in t.columns],
    }  # fmt: skip


def table_from_json(raw: dict) -> Table:
    columns = tuple(
        Column(
            c["name"], CanonicalType(**c["type"]), bool(c["nullable"]), c["native_type"], bool(c.get("kept"))
        )
        for c in raw["columns"]
    )
    return Table(raw["schema"], raw["name"], columns, tuple(raw["primary_key"]), bool(raw["declared_key"]))
