"""The full-load paths to and from SQL Server, with the real PostgreSQL and MariaDB on the other side
and the recording connection of tests/sqlserver_fake.py standing in for SQL Server (no SQL Server
runs on this machine). What is checked: the rows and values bound for SQL Server, the rules applied
and counted, and the rows a SQL Server source's values become in PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

import cdc_platform.pipeline.sqlserver_load as sqlserver_load
from cdc_platform.pipeline.full_load import copy_table
from cdc_platform.schema.ddl import create_schema_sql, create_table_sql
from cdc_platform.schema.discovery import discover_pipeline_tables
from cdc_platform.schema.model import Column, CopyJob, Table
from cdc_platform.schema.types import CanonicalType as T
from tests.pipeline_support import connection, write_specs
from tests.sqlserver_fake import RecordingOdbc
from tests.support import mariadb_connect, mariadb_database, mariadb_rows, pg_connect, pg_database, unique

pytestmark = pytest.mark.integration

SQLSERVER = {"kind": "sqlserver", "host": "127.0.0.1", "port": 9, "database": "erp", "username": "sa",
             "password": {"env": "ERP_PASSWORD"}}  # fmt: skip


def _specs(stack, tmp_path, source: dict, target: dict):
    return write_specs(tmp_path, {"src": source, "tgt": target},
                       [{"name": unique("mssql"), "source": "src", "target": "tgt", "target_schema": "replica",
                         "mode": "full_load_only", "tables": {"names": ["public.t"]}}])  # fmt: skip


def test_postgres_to_sqlserver_binds_exact_values_and_counts_each_rule(stack, tmp_path, monkeypatch):
    monkeypatch.setenv("ERP_PASSWORD", "x")
    fake = RecordingOdbc()
    monkeypatch.setattr(sqlserver_load, "odbc_connect", fake)
    with pg_database(stack, "src") as src:
        with pg_connect(stack, src) as conn:
            conn.execute("""CREATE TABLE t (id int PRIMARY KEY, n numeric, f float8, d date, ts timestamptz,
                            ok boolean, b bytea, j jsonb, u uuid, i interval)""")
            conn.execute("""INSERT INTO t VALUES
                (1, 12.5, 1.5, '2024-02-29', '2024-05-01 12:00:00.123456+02', true, '\\x00ff', '{"a": 1}',
                 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day 2 hours'),
                (2, 'NaN', 'Infinity', 'infinity', '-infinity', false, NULL, NULL, NULL, NULL),
                (3, 1e30, '-0', '0044-03-15 BC', NULL, NULL, NULL, NULL, NULL, NULL)""")
        specs = _specs(stack, tmp_path, connection(stack, "postgresql", src), SQLSERVER)
        spec = next(iter(specs.pipelines.values())).spec
        (table,) = discover_pipeline_tables(spec, specs.connection("src"), specs.directory)
        stats = copy_table(specs.connection("src"), specs.connection("tgt"), CopyJob(table, "replica", "t"),
                           specs.directory, log=lambda _: None)  # fmt: skip
    assert stats.rows == 3 and fake.committed and fake.statements == ["TRUNCATE TABLE [replica].[t]"]
    first, second, third = sorted(fake.written)
    assert first == [1, Decimal("12.5"), 1.5, dt.date(2024, 2, 29), dt.datetime(2024, 5, 1, 10, 0, 0, 123456),
                     True, b"\x00\xff", '{"a": 1}', "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "P1DT2H"]  # fmt: skip
    assert second[:5] == [2, None, None, None, None] and second[5] is False
    assert third[1] is None and third[3] is None  # 1e30 beyond decimal(38,10); a BC date
    assert str(third[2]) == "-0.0"
    assert stats.substituted == {"n": 2, "f": 1, "d": 2, "ts": 1}


def test_sqlserver_rows_land_in_postgres_and_mariadb_as_the_rules_say(stack, tmp_path, monkeypatch):
    monkeypatch.setenv("ERP_PASSWORD", "x")
    table = Table("dbo", "t", (
        Column("id", T("integer"), False, "int"),
        Column("placed", T("timestamp"), True, "datetime2(7)"),
        Column("at", T("timestamptz"), True, "datetimeoffset(7)"),
        Column("note", T("text"), True, "nvarchar(max)"),
        Column("ref", T("uuid"), True, "uniqueidentifier"),
        Column("amount", T("numeric", precision=19, scale=4), True, "money"),
    ), ("id",))  # fmt: skip
    when = dt.datetime(2024, 5, 1, 12, 0, 0, 123457)
    served = [
        (1, when, 1, when, 1, "a\x00b", "6F9619FF-8B86-D011-B42D-00C04FC964FF", Decimal("12.3400")),
        (2, None, 0, None, 0, None, None, None),
    ]
    with pg_database(stack, "tgt") as pg_tgt, mariadb_database(stack, "tgt") as my_tgt:
        with pg_connect(stack, pg_tgt) as conn:
            conn.execute(create_schema_sql("postgresql", "replica"))
            conn.execute(create_table_sql("postgresql", "replica", "t", table, source_kind="sqlserver"))
        with mariadb_connect(stack, my_tgt) as conn, conn.cursor() as cur:
            cur.execute(create_table_sql("mariadb", my_tgt, "t", table, source_kind="sqlserver"))
        for kind, database, schema in (("postgresql", pg_tgt, "replica"), ("mariadb", my_tgt, my_tgt)):
            monkeypatch.setattr(sqlserver_load, "odbc_connect", RecordingOdbc(rows=served))
            specs = _specs(stack, tmp_path / kind, SQLSERVER, connection(stack, kind, database))
            stats = copy_table(specs.connection("src"), specs.connection("tgt"), CopyJob(table, schema, "t"),
                               specs.directory, log=lambda _: None)  # fmt: skip
            assert stats.rows == 2
            if kind == "postgresql":
                assert stats.substituted == {"placed": 1, "at": 1, "note": 1}
                with pg_connect(stack, pg_tgt) as conn:
                    conn.execute("SET TIME ZONE 'UTC'")
                    rows = conn.execute("SELECT * FROM replica.t ORDER BY id").fetchall()
                assert rows[0] == (1, when, when.replace(tzinfo=dt.timezone.utc), "ab",
                                   uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff"), Decimal("12.3400"))  # fmt: skip
            else:
                assert stats.substituted == {"placed": 1, "at": 1}
                rows = mariadb_rows(stack, my_tgt, "SELECT * FROM t ORDER BY id")
                assert rows[0] == (1, when, when, "a\x00b", "6f9619ff-8b86-d011-b42d-00c04fc964ff",
                                   Decimal("12.3400"))  # fmt: skip
            assert rows[1][1:] == (None,) * 5


def test_mariadb_to_sqlserver_turns_zero_dates_and_wide_decimals_into_counted_nulls(
    stack, tmp_path, monkeypatch
):
    monkeypatch.setenv("ERP_PASSWORD", "x")
    fake = RecordingOdbc()
    monkeypatch.setattr(sqlserver_load, "odbc_connect", fake)
    with mariadb_database(stack, "src") as src:
        with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            cur.execute("CREATE TABLE t (id int PRIMARY KEY, d date, amount decimal(65,30), on_time time(6))")
            cur.execute(f"INSERT INTO t VALUES (1, '0000-00-00', {'9' * 35}, '-01:02:03.5'), "
                        "(2, '2024-01-31', 12345678.5, NULL)")  # fmt: skip
            conn.commit()
        specs = write_specs(tmp_path, {"src": connection(stack, "mariadb", src), "tgt": SQLSERVER},
                            [{"name": unique("mssql"), "source": "src", "target": "tgt", "target_schema": "replica",
                              "mode": "full_load_only", "tables": {"names": [f"{src}.t"]}}])  # fmt: skip
        spec = next(iter(specs.pipelines.values())).spec
        (table,) = discover_pipeline_tables(spec, specs.connection("src"), specs.directory)
        stats = copy_table(specs.connection("src"), specs.connection("tgt"), CopyJob(table, "replica", "t"),
                           specs.directory, log=lambda _: None)  # fmt: skip
    first, second = sorted(fake.written)
    assert first == [1, None, None, "-01:02:03.500000"]
    assert second == [2, dt.date(2024, 1, 31), Decimal("12345678.5" + "0" * 29), None]
    assert stats.substituted == {"d": 1, "amount": 1}
