"""What the source holds: tables, columns, canonical types, nullability, primary keys.

Table lists and primary keys come from SQLAlchemy's inspector; column types come from
``information_schema`` because it keeps what the mapping needs (numeric precision, ``jsonb`` vs
``json``, MySQL's ``unsigned`` and ``tinyint(1)``) that generic SQLAlchemy types blur.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import sqlalchemy as sa

from cdc_platform.db import engine_for
from cdc_platform.schema.model import Column, Table, is_heartbeat_table
from cdc_platform.schema.types import (
    CanonicalType,
    UnsupportedType,
    from_mysql,
    from_postgres,
    from_sqlserver,
)
from cdc_platform.specs.models import ConnectionSpec, PipelineSpec


class DiscoveryError(ValueError):
    pass


def _columns_query(kind: str) -> sa.TextClause:
    if kind == "postgresql":
        return sa.text(
            """SELECT column_name, data_type, udt_name, is_nullable, character_maximum_length,
                      numeric_precision, numeric_scale
                 FROM information_schema.columns
                WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position"""
        )
    if kind in ("mysql", "mariadb"):
        return sa.text(
            """SELECT column_name, data_type, column_type, is_nullable, character_maximum_length,
                      numeric_precision, numeric_scale
                 FROM information_schema.columns
                WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position"""
        )
    return sa.text(
        """SELECT column_name, data_type, data_type, is_nullable, character_maximum_length,
                  numeric_precision, numeric_scale
             FROM information_schema.columns
            WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position"""
    )


def _canonical(kind: str, row) -> CanonicalType:
    name, data_type, extra, _nullable, length, precision, scale = row
    if kind == "postgresql":
        native = extra if data_type.lower() in ("user-defined", "array") else data_type
        if data_type.lower() == "array":
            raise UnsupportedType(f"PostgreSQL array type {extra!r} has no mapping")
        return from_postgres(native if native in ("json", "jsonb", "uuid") else data_type,
                             length=length, precision=precision, scale=scale)  # fmt: skip
    if kind in ("mysql", "mariadb"):
        return from_mysql(data_type, extra, length=length, precision=precision, scale=scale)
    return from_sqlserver(data_type, length=length, precision=precision, scale=scale)


def column_defaults(engine: sa.Engine, kind: str, schema: str, table: str) -> dict[str, str | None]:
    """Each column's default as the source writes it (``7``, ``'x'::text``, ``now()``; None: none).
    Read only when a column was added: whether the target can give its existing rows the same value."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT column_name, column_default FROM information_schema.columns "
                    "WHERE table_schema = :schema AND table_name = :table"),
            {"schema": schema, "table": table},
        ).fetchall()  # fmt: skip
    return {row[0]: row[1] for row in rows}


def list_tables(engine: sa.Engine, schema: str) -> list[str]:
    return sorted(sa.inspect(engine).get_table_names(schema=schema))


def target_nullability(engine: sa.Engine, kind: str, schema: str, table: str) -> dict[str, bool]:
    """A table's columns in order, each with whether it takes NULL, whatever their types (a target's
    types need no source mapping)."""
    with engine.connect() as conn:
        rows = conn.execute(_columns_query(kind), {"schema": schema, "table": table}).fetchall()
    if not rows:
        raise DiscoveryError(
            f"table {schema}.{table} does not exist (or has no columns visible to this user)"
        )
    return {row[0]: row[3] == "YES" for row in rows}


def column_names(engine: sa.Engine, kind: str, schema: str, table: str) -> list[str]:
    """A table's column names, whatever their types."""
    return list(target_nullability(engine, kind, schema, table))


def describe_table(engine: sa.Engine, kind: str, schema: str, table: str) -> Table:
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        rows = conn.execute(_columns_query(kind), {"schema": schema, "table": table}).fetchall()
    if not rows:
        raise DiscoveryError(
            f"table {schema}.{table} does not exist (or has no columns visible to this user)"
        )
    columns = []
    for row in rows:
        try:
            ctype = _canonical(kind, row)
        except UnsupportedType as exc:
            raise DiscoveryError(f"column {schema}.{table}.{row[0]}: {exc}") from exc
        columns.append(
            Column(row[0], ctype, row[3] == "YES", str(row[2] if kind != "postgresql" else row[1]))
        )
    pk = inspector.get_pk_constraint(table, schema=schema).get("constrained_columns") or []
    return Table(schema, table, tuple(columns), tuple(pk))


def discover_pipeline_tables(
    pipeline: PipelineSpec, source: ConnectionSpec, specs_dir: Path, engine: sa.Engine | None = None
) -> list[Table]:
    """The pipeline's tables as they are on the source now, with declared keys applied.

    A table without a primary key is refused unless the spec declares one under
    ``overrides.<schema.table>.primary_key``: upserts and deletes need a key, and silently
    appending would duplicate rows on every update.
    """
    own_engine = engine is None
    engine = engine or engine_for(source, specs_dir)
    try:
        names: list[tuple[str, str]] = [tuple(n.split(".")) for n in pipeline.tables.names]  # type: ignore[misc]
        sel = pipeline.tables
        if sel.schema_:
            for table in list_tables(engine, sel.schema_):
                included = any(fnmatch.fnmatchcase(table, pat) for pat in sel.include)
                excluded = any(fnmatch.fnmatchcase(table, pat) for pat in sel.exclude)
                # the platform's own heartbeat tables are never a pipeline's tables
                if (
                    included
                    and not excluded
                    and not is_heartbeat_table(table)
                    and (sel.schema_, table) not in names
                ):
                    names.append((sel.schema_, table))
        if not names:
            raise DiscoveryError(
                f"no table of schema {sel.schema_!r} matches include={sel.include} exclude={sel.exclude}"
            )
        tables = []
        for schema, name in names:
            table = describe_table(engine, source.kind.value, schema, name)
            override = pipeline.overrides.get(table.qualified)
            if override and override.primary_key:
                unknown = set(override.primary_key) - {c.name for c in table.columns}
                if unknown:
                    raise DiscoveryError(
                        f"declared primary_key of {table.qualified} names unknown columns {sorted(unknown)}"
                    )
                table = Table(
                    table.schema, table.name, table.columns, tuple(override.primary_key), declared_key=True
                )
            if not table.primary_key:
                raise DiscoveryError(
                    f"table {table.qualified} has no primary key; CDC needs one to apply updates and deletes. "
                    f"Add one on the source, or declare it in the spec: overrides: {{{table.qualified}: "
                    "{primary_key: [col, ...]}}"
                )
            tables.append(table)
        return tables
    finally:
        if own_engine:
            engine.dispose()
