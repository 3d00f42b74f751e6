"""SQL Server's full-load SQL, its CDC switch and its ODBC connection, without a server.

The reads and writes run against the recording connection of tests/sqlserver_fake.py; the
connection test goes through the installed FreeTDS driver to a port where no server listens.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import yaml

from cdc_platform.pipeline.plan import build_plan
from cdc_platform.pipeline.sqlserver_capture import enable_cdc_sql, ensure_capture
from cdc_platform.pipeline.sqlserver_load import sqlserver_rows, sqlserver_select, write_sqlserver
from cdc_platform.schema.model import Column, CopyJob, Table
from cdc_platform.schema.rules import decimal_fits, describe_rules
from cdc_platform.schema.types import CanonicalType as T
from cdc_platform.specs.loader import load_specs
from cdc_platform.specs.models import ConnectionSpec
from tests.sqlserver_fake import RecordingOdbc

ORDERS = Table("dbo", "orders", (
    Column("id", T("integer"), False, "int"),
    Column("placed", T("timestamp"), True, "datetime2(7)"),
    Column("at", T("timestamptz"), True, "datetimeoffset(7)"),
    Column("note", T("text"), True, "nvarchar(max)"),
    Column("ref", T("uuid"), True, "uniqueidentifier"),
), ("id",))  # fmt: skip
SQLSERVER = ConnectionSpec(name="erp", kind="sqlserver", host="127.0.0.1", port=9, database="erp",
                           username="sa", password={"env": "ERP_PASSWORD"})  # fmt: skip


def test_the_select_rounds_the_100ns_digit_on_the_server_and_flags_it():
    select, rounded = sqlserver_select(ORDERS)
    assert select == (
        "SELECT [id], CAST([placed] AS datetime2(6)), "
        "CASE WHEN DATEPART(nanosecond, [placed]) % 1000 <> 0 THEN 1 ELSE 0 END, "
        "CAST(SWITCHOFFSET([at], '+00:00') AS datetime2(6)), "
        "CASE WHEN DATEPART(nanosecond, [at]) % 1000 <> 0 THEN 1 ELSE 0 END, [note], [ref] FROM [dbo].[orders]"
    )
    assert rounded == ["placed", "at"]
    assert "rounded to microseconds" in describe_rules("sqlserver", "postgresql", T("timestamp"))


def test_rows_read_for_postgresql_count_every_rule_they_apply():
    when = dt.datetime(2024, 5, 1, 12, 0, 0, 123457)
    fake = RecordingOdbc(rows=[
        (1, when, 1, when, 0, "a\x00b", "6F9619FF-8B86-D011-B42D-00C04FC964FF"),
        (2, None, 0, None, 0, None, None),
        (3, when, 0, when, 1, "plain", None),
    ])  # fmt: skip
    substituted: dict[str, int] = {}
    job = CopyJob(ORDERS, "replica", "orders")
    rows = list(sqlserver_rows(SQLSERVER, job, None, 2, "postgresql", substituted, connect=fake))
    assert rows[0] == [
        1,
        when,
        when.replace(tzinfo=dt.timezone.utc),
        "ab",
        "6f9619ff-8b86-d011-b42d-00c04fc964ff",
    ]
    assert rows[1] == [2, None, None, None, None]
    assert substituted == {"placed": 1, "at": 1, "note": 1}
    assert fake.committed and fake.closed and fake.autocommit is False


def test_a_sqlserver_target_is_truncated_and_loaded_in_one_transaction():
    fake = RecordingOdbc()
    job = CopyJob(ORDERS, "replica", "orders")
    ticks: list[int] = []
    count = write_sqlserver(SQLSERVER, job, None, ([i, None, None, f"n{i}", None] for i in range(5)), 2,
                            ticks.append, connect=fake)  # fmt: skip
    assert count == 5 and ticks == [2, 4]
    assert fake.statements == ["TRUNCATE TABLE [replica].[orders]"]
    assert fake.log[1] == ("executemany", "INSERT INTO [replica].[orders] ([id], [placed], [at], [note], [ref]) "
                           "VALUES (?, ?, ?, ?, ?)", 2)  # fmt: skip
    assert [len(b) for b in fake.batches] == [2, 2, 1] and fake.committed and not fake.rolled_back


def test_a_refused_batch_rolls_the_whole_load_back():
    fake = RecordingOdbc(fail_on_batch=1)
    job = CopyJob(ORDERS, "replica", "orders")
    with pytest.raises(RuntimeError, match="refused the batch"):
        write_sqlserver(SQLSERVER, job, None, ([i, None, None, None, None] for i in range(5)), 2,
                        lambda _: None, connect=fake)  # fmt: skip
    assert fake.rolled_back and not fake.committed and fake.closed


def test_cdc_is_switched_on_idempotently_before_capture(tmp_path, monkeypatch):
    statements = enable_cdc_sql([("dbo", "orders"), ("sales", "it's")])
    assert statements[0].startswith("IF NOT EXISTS (SELECT 1 FROM sys.databases WHERE name = DB_NAME() "
                                    "AND is_cdc_enabled = 1)")  # fmt: skip
    assert statements[0].endswith("EXEC sys.sp_cdc_enable_db")
    assert "OBJECT_ID(N'[sales].[it''s]')" in statements[2]
    assert "@source_schema = N'sales', @source_name = N'it''s', @role_name = NULL" in statements[2]
    fake = RecordingOdbc()
    ensure_capture(SQLSERVER, tmp_path, statements, lambda _: None, connect=fake)
    assert fake.statements == statements and fake.autocommit is True

    monkeypatch.setenv("PW", "x")
    conn = {"host": "h", "port": 1, "database": "erp", "username": "cdc", "password": {"env": "PW"}}
    (tmp_path / "connections.yaml").write_text(yaml.safe_dump({"connections": {
        "src": {**conn, "kind": "sqlserver"}, "tgt": {**conn, "kind": "postgresql"}}}))  # fmt: skip
    (tmp_path / "pipelines.yaml").write_text(yaml.safe_dump({"pipelines": [
        {"name": "p", "source": "src", "target": "tgt", "target_schema": "replica",
         "tables": {"names": ["dbo.orders"]}}]}))  # fmt: skip
    specs = load_specs(tmp_path)
    plan = build_plan(specs, specs.pipelines["p"].spec, [ORDERS], "k:9092")
    assert list(plan.source_setup) == enable_cdc_sql([("dbo", "orders")])
    assert plan.source_config["connector.class"] == "io.debezium.connector.sqlserver.SqlServerConnector"


def test_decimals_that_do_not_fit_are_found():
    assert decimal_fits(Decimal("12345678.123"), 38, 30)
    assert not decimal_fits(Decimal("123456789"), 38, 30)  # 9 integer digits, room for 8
    assert not decimal_fits(Decimal("1." + "1" * 31), 38, 30)
    assert decimal_fits(Decimal("1.5000000000000000000000000000000000"), 38, 30)  # trailing zeros
    assert not decimal_fits(Decimal("NaN"), 38, 10)


def test_freetds_is_installed_and_a_missing_server_is_a_clear_error(monkeypatch):
    """As far as a machine without SQL Server goes: the driver loads, connects, and reports."""
    import pyodbc

    from cdc_platform.db import odbc_connect, odbc_driver

    assert "FreeTDS" in pyodbc.drivers()
    assert odbc_driver(SQLSERVER) in (
        "FreeTDS",
        "ODBC Driver 18 for SQL Server",
        "ODBC Driver 17 for SQL Server",
    )
    monkeypatch.setenv("ERP_PASSWORD", "s3cret-never-shown")
    with pytest.raises(ConnectionError) as info:
        odbc_connect(SQLSERVER, None, timeout=3)
    message = str(info.value)
    assert message.startswith("SQL Server erp at 127.0.0.1:9 (") and "s3cret-never-shown" not in message


@pytest.mark.parametrize("text, fits", [("1E+8", False), ("1E+7", True), ("0", True), ("-0.000", True),
                                        ("99999999.9", True), ("-100000000", False), ("0.0000001", True)])  # fmt: skip
def test_decimal_bounds_at_the_edges(text, fits):
    assert decimal_fits(Decimal(text), 38, 30) is fits
