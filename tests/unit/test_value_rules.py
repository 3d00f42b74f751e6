"""The value rules and the type mapping they sit on: one list, read by DDL, full load and plan."""

from __future__ import annotations

import datetime as dt

import pytest

from cdc_platform.pipeline.mysql_rows import mysql_time_text
from cdc_platform.schema.ddl import create_table_sql
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.rules import describe_rules, pg_null_predicate, pg_substituted_predicate, rule_for
from cdc_platform.schema.types import CanonicalType, from_mysql, from_postgres, render


def test_mysql_time_is_a_duration_that_postgres_holds_as_interval():
    t = from_mysql("time", "time(6)", length=None, precision=None, scale=6)
    assert (
        t.name == "duration" and render("postgresql", t) == "interval" and render("mariadb", t) == "TIME(6)"
    )


@pytest.mark.parametrize(
    ("column_type", "pg", "mariadb"),
    [("bit(1)", "boolean", "BOOLEAN"), ("bit(8)", "bit(8)", "BIT(8)"), ("bit(64)", "bit(64)", "BIT(64)")],
)
def test_bit_keeps_its_length(column_type, pg, mariadb):
    t = from_mysql("bit", column_type, length=None, precision=None, scale=None)
    assert render("postgresql", t) == pg and render("mariadb", t) == mariadb


def test_year_interval_and_unsigned_bigint_have_exact_homes():
    year = from_mysql("year", "year(4)", length=None, precision=None, scale=None)
    assert render("postgresql", year) == "smallint" and render("mariadb", year) == "YEAR"
    interval = from_postgres("interval", length=None, precision=None, scale=None)
    assert render("postgresql", interval) == "interval" and render("mariadb", interval) == "VARCHAR(100)"
    unsigned = from_mysql("bigint", "bigint(20) unsigned", length=None, precision=20, scale=0)
    assert render("postgresql", unsigned) == "numeric(20,0)"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.timedelta(hours=838, minutes=59, seconds=59), "838:59:59.000000"),
        (-dt.timedelta(hours=838, minutes=59, seconds=59), "-838:59:59.000000"),
        (dt.timedelta(microseconds=-1), "-00:00:00.000001"),
        (dt.timedelta(hours=24), "24:00:00.000000"),
        (dt.timedelta(hours=12, minutes=34, seconds=56, microseconds=500000), "12:34:56.500000"),
    ],
)
def test_mysql_time_text_matches_the_converter(value, text):
    # the same text as ExactValueConverter.Dates.duration, so both paths write the same value
    assert mysql_time_text(value) == text


def test_rules_exist_only_where_the_target_cannot_hold_the_value():
    double = CanonicalType("double")
    assert rule_for("postgresql", "postgresql", double) is None
    assert rule_for("postgresql", "mariadb", double) is not None
    assert "-0 (negative zero) -> 0" in describe_rules("postgresql", "mysql", double)
    assert rule_for("mariadb", "postgresql", CanonicalType("date")) is not None
    assert rule_for("mariadb", "mariadb", CanonicalType("duration")) is None
    assert pg_null_predicate("mariadb", '"d"', CanonicalType("date")) == (
        "NOT (\"d\" BETWEEN '0001-01-01' AND '9999-12-31')"
    )
    counted = pg_substituted_predicate("mariadb", '"x"', double)
    assert "'NaN'" in counted and "\"x\"::text = '-0'" in counted


def test_only_key_columns_are_created_not_null_so_a_rule_s_null_is_always_accepted():
    table = Table("public", "m", (Column("id", CanonicalType("integer"), False, "integer"),
                                  Column("d", CanonicalType("date"), False, "date")), ("id",))  # fmt: skip
    assert '"d" date,\n' in create_table_sql("postgresql", "r", "m", table, source_kind="postgresql")
    assert "`d` DATE,\n" in create_table_sql("mariadb", "r", "m", table, source_kind="postgresql")
    assert '"id" integer NOT NULL' in create_table_sql("postgresql", "r", "m", table)
