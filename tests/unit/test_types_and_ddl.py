"""Type mapping for every source -> target pair and the DDL built from it (SQL Server included: it has
no live server here, so these tests are its only check)."""

from __future__ import annotations

import pytest

from cdc_platform.schema.ddl import create_schema_sql, create_table_sql, quote
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.types import (
    CanonicalType,
    UnsupportedType,
    from_mysql,
    from_postgres,
    from_sqlserver,
    render,
)

C = CanonicalType
PG = {
    ("smallint", None, None, None): C("smallint"), ("integer", None, None, None): C("integer"),
    ("bigint", None, None, None): C("bigint"), ("numeric", None, 38, 10): C("numeric", precision=38, scale=10),
    ("real", None, None, None): C("real"), ("double precision", None, None, None): C("double"),
    ("boolean", None, None, None): C("boolean"), ("character varying", 50, None, None): C("varchar", length=50),
    ("text", None, None, None): C("text"), ("date", None, None, None): C("date"),
    ("time without time zone", None, None, None): C("time"),
    ("timestamp without time zone", None, None, None): C("timestamp"),
    ("timestamp with time zone", None, None, None): C("timestamptz"), ("json", None, None, None): C("json"),
    ("jsonb", None, None, None): C("jsonb"), ("uuid", None, None, None): C("uuid"), ("bytea", None, None, None): C("binary"),
}  # fmt: skip


@pytest.mark.parametrize(("native", "canonical"), PG.items())
def test_postgres_source_types(native, canonical):
    data_type, length, precision, scale = native
    assert from_postgres(data_type, length=length, precision=precision, scale=scale) == canonical


@pytest.mark.parametrize(
    ("data_type", "column_type", "canonical"),
    [
        ("tinyint", "tinyint(1)", C("smallint")), ("int", "int(11) unsigned", C("bigint")),
        ("bigint", "bigint(20) unsigned", C("numeric", precision=20, scale=0)), ("datetime", "datetime(6)", C("timestamp")),
        ("timestamp", "timestamp", C("timestamptz")), ("longtext", "longtext", C("text")), ("enum", "enum('a')", C("text")),
        ("varbinary", "varbinary(16)", C("binary")), ("json", "json", C("json")), ("double", "double", C("double")),
    ],
)  # fmt: skip
def test_mysql_source_types(data_type, column_type, canonical):
    assert (
        from_mysql(data_type, column_type, length=None, precision=canonical.precision, scale=canonical.scale)
        == canonical
    )


@pytest.mark.parametrize(
    ("data_type", "length", "canonical"),
    [("nvarchar", -1, C("text")), ("nvarchar", 40, C("varchar", length=40)), ("datetimeoffset", None, C("timestamptz")),
     ("uniqueidentifier", None, C("uuid")), ("bit", None, C("boolean")), ("money", None, C("numeric", precision=19, scale=4))],
)  # fmt: skip
def test_sqlserver_source_types(data_type, length, canonical):
    assert from_sqlserver(data_type, length=length, precision=None, scale=None) == canonical


@pytest.mark.parametrize(
    ("canonical", "postgresql", "mariadb", "sqlserver"),
    [
        (C("numeric", precision=38, scale=10), "numeric(38,10)", "DECIMAL(38,10)", "decimal(38,10)"),
        (C("numeric"), "numeric", "DECIMAL(65,30)", "decimal(38,10)"),
        (C("timestamptz"), "timestamptz(6)", "DATETIME(6)", "datetimeoffset(6)"),
        (C("varchar", length=20000), "varchar(20000)", "LONGTEXT", "nvarchar(max)"),
        (C("uuid"), "uuid", "CHAR(36)", "uniqueidentifier"),
        (C("binary"), "bytea", "LONGBLOB", "varbinary(max)"),
        (C("boolean"), "boolean", "BOOLEAN", "bit"),
        (C("jsonb"), "jsonb", "JSON", "nvarchar(max)"),
    ],
)
def test_target_rendering_for_every_engine(canonical, postgresql, mariadb, sqlserver):
    assert render("postgresql", canonical) == postgresql
    assert render("mariadb", canonical) == mariadb
    assert render("mysql", canonical) == mariadb
    assert render("sqlserver", canonical) == sqlserver


def test_unknown_types_are_refused_with_their_name():
    with pytest.raises(UnsupportedType, match="geometry"):
        from_postgres("geometry", length=None, precision=None, scale=None)


TABLE = Table("public", "orders", (Column("id", C("bigint"), False, "bigint"), Column("note", C("text"), True, "text"),
              Column('we"ird', C("integer"), True, "integer")), ("id",))  # fmt: skip


def test_ddl_quotes_every_identifier_per_dialect():
    pg = create_table_sql("postgresql", "shop", "orders", TABLE)
    assert (
        'CREATE TABLE IF NOT EXISTS "shop"."orders"' in pg
        and '"we""ird" integer' in pg
        and 'PRIMARY KEY ("id")' in pg
    )
    my = create_table_sql("mariadb", "shop", "orders", TABLE)
    assert "`shop`.`orders`" in my and "`note` LONGTEXT" in my and "utf8mb4" in my
    ms = create_table_sql("sqlserver", "dbo", "orders", TABLE)
    assert (
        "IF OBJECT_ID(N'dbo.orders', N'U') IS NULL" in ms
        and "[note] nvarchar(max)" in ms
        and "[id] bigint NOT NULL" in ms
    )
    assert (
        create_schema_sql("sqlserver", "sales")
        == "IF SCHEMA_ID(N'sales') IS NULL EXEC(N'CREATE SCHEMA [sales]')"
    )
    assert quote("sqlserver", "a]b") == "[a]]b]"
