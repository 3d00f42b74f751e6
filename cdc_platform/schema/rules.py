"""What happens to a value on its way from a source to a target: exact, or one documented rule.

Every value a target can hold arrives exactly, through the full load and through CDC alike (the
CDC side is the Debezium converter in ``connect-plugins/cdc-platform-converters``). Where a target
cannot hold a source value, the rule below applies in both paths: the value becomes NULL, the
target column is created NULL-able for it, and the number of rows it applied to is counted per
column and shown on the table's asset. This module is the single list of those rules; the full
load, the DDL, ``cdc-platform plan`` and the README's fidelity matrix all read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cdc_platform.engines.kinds import target_traits
from cdc_platform.schema.types import CanonicalType, mysql_decimal_bounds, sqlserver_decimal_bounds


def _beyond_mysql_decimal(ctype: CanonicalType) -> bool:
    """True when the source numeric can hold values the target DECIMAL(P,S) cannot."""
    return not ctype.precision or ctype.precision > 65 or (ctype.scale or 0) > 30


def _beyond_sqlserver_decimal(ctype: CanonicalType) -> bool:
    """True when the source numeric can hold values SQL Server's decimal (38 digits at most) cannot."""
    return not ctype.precision or ctype.precision > 38


def decimal_bounds(target_kind: str, ctype: CanonicalType) -> tuple[int, int]:
    """The (precision, scale) of the exact decimal a numeric becomes on the target."""
    if target_kind == "sqlserver":
        return sqlserver_decimal_bounds(ctype)
    return mysql_decimal_bounds(ctype)


def decimal_fits(value, precision: int, scale: int) -> bool:
    """A ``Decimal`` holds no more integer digits than ``precision - scale`` and no more fractional
    digits than ``scale`` (trailing zeros do not count): the target's decimal keeps it exactly."""
    if not value.is_finite():
        return False
    _, digits, exponent = value.as_tuple()
    exponent = int(exponent)
    # trailing zeros of the fraction do not count (never ``normalize``: it rounds to 28 digits)
    while exponent < 0 and len(digits) > 1 and digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    fraction = max(0, -exponent)
    integer = len(digits) + exponent if digits != (0,) else 0
    return fraction <= scale and integer <= precision - scale


def family(kind: str) -> str:
    """MySQL and MariaDB share every rule."""
    return "mysql" if kind in ("mysql", "mariadb") else kind


@dataclass(frozen=True)
class ValueRule:
    source: str  # engine family
    target: str  # engine family
    types: tuple[str, ...]  # canonical type names the rule covers
    values: str  # which source values, as a user reads it
    why: str
    becomes: str = "NULL"
    #: narrows the rule to columns whose declared type can hold such values
    when: Callable[[CanonicalType], bool] | None = None

    def describe(self) -> str:
        return f"{self.values} -> {self.becomes} ({self.why})"


RULES: tuple[ValueRule, ...] = (
    ValueRule("postgresql", "mysql", ("real", "double", "numeric"), "NaN, Infinity, -Infinity",
              "MySQL/MariaDB numbers have no special values"),
    ValueRule("postgresql", "mysql", ("numeric",),
              "values with more fractional or integer digits than the target DECIMAL holds "
              "(DECIMAL(65,30) for an unbounded numeric)",
              "MySQL/MariaDB would round or refuse them", when=_beyond_mysql_decimal),
    ValueRule("postgresql", "mysql", ("real", "double"), "-0 (negative zero)",
              "MySQL/MariaDB store no negative zero", becomes="0"),
    ValueRule("postgresql", "mysql", ("date", "timestamp", "timestamptz"),
              "infinity, -infinity and dates outside 0001-01-01..9999-12-31 (BC, year > 9999)",
              "outside the MySQL/MariaDB DATE/DATETIME range"),
    ValueRule("mysql", "postgresql", ("date", "timestamp", "timestamptz"),
              "zero-in-date values ('0000-00-00', a zero year, month or day)",
              "no such date exists in PostgreSQL; Debezium reads them from the binlog as NULL"),
    ValueRule("mysql", "postgresql", ("varchar", "char", "text"), "NUL characters (U+0000) inside text",
              "PostgreSQL text cannot contain them", becomes="the text without its NUL characters"),
    ValueRule("mysql", "mysql", ("date", "timestamp", "timestamptz"),
              "zero-in-date values ('0000-00-00', a zero year, month or day)",
              "Debezium reads them from the binlog as NULL, so the full load does the same"),
    # SQL Server as a target: the full load applies these; CDC into SQL Server has not run live
    ValueRule("postgresql", "sqlserver", ("real", "double", "numeric"), "NaN, Infinity, -Infinity",
              "SQL Server numbers have no special values"),
    ValueRule("postgresql", "sqlserver", ("numeric",),
              "values with more fractional or integer digits than the target decimal holds "
              "(decimal(38,10) for an unbounded numeric)",
              "SQL Server would round or refuse them", when=_beyond_sqlserver_decimal),
    ValueRule("postgresql", "sqlserver", ("date", "timestamp", "timestamptz"),
              "infinity, -infinity and dates outside 0001-01-01..9999-12-31 (BC, year > 9999)",
              "outside the SQL Server date/datetime2 range"),
    ValueRule("mysql", "sqlserver", ("date", "timestamp", "timestamptz"),
              "zero-in-date values ('0000-00-00', a zero year, month or day)",
              "no such date exists in SQL Server; Debezium reads them from the binlog as NULL"),
    ValueRule("mysql", "sqlserver", ("numeric",),
              "values with more fractional or integer digits than the target decimal (38 digits) holds",
              "SQL Server would round or refuse them", when=_beyond_sqlserver_decimal),
    # S3 (Parquet) as a target: cdc_platform/s3/values.py
    ValueRule("postgresql", "s3", ("numeric",), "NaN, Infinity, -Infinity",
              "a Parquet decimal has no special values", when=lambda t: bool(t.precision) and t.precision <= 76),
    ValueRule("postgresql", "s3", ("date", "timestamp", "timestamptz"),
              "infinity, -infinity and dates outside 0001-01-01..9999-12-31 (BC, year > 9999)",
              "Parquet readers (pandas, DuckDB, Spark) take dates of years 1..9999"),
    ValueRule("mysql", "s3", ("date", "timestamp", "timestamptz"),
              "zero-in-date values ('0000-00-00', a zero year, month or day)",
              "no such date exists in Parquet; Debezium reads them from the binlog as NULL"),
    # SQL Server as a source
    ValueRule("sqlserver", "postgresql", ("varchar", "char", "text"), "NUL characters (U+0000) inside text",
              "PostgreSQL text cannot contain them", becomes="the text without its NUL characters"),
    ValueRule("sqlserver", "postgresql", ("time", "timestamp", "timestamptz"),
              "a seventh fractional digit (100 ns, time(7)/datetime2(7)/datetimeoffset(7))",
              "PostgreSQL keeps microseconds", becomes="the value rounded to microseconds"),
    ValueRule("sqlserver", "mysql", ("time", "timestamp", "timestamptz"),
              "a seventh fractional digit (100 ns, time(7)/datetime2(7)/datetimeoffset(7))",
              "MySQL/MariaDB keep microseconds", becomes="the value rounded to microseconds"),
)  # fmt: skip


def rules_for(source_kind: str, target_kind: str, ctype: CanonicalType) -> list[ValueRule]:
    src, dst = family(source_kind), family(target_kind)
    return [
        r
        for r in RULES
        if r.source == src and r.target == dst and ctype.name in r.types and (r.when is None or r.when(ctype))
    ]


def rule_for(source_kind: str, target_kind: str, ctype: CanonicalType) -> ValueRule | None:
    """The rule that may turn a value of this column into NULL (None: every value arrives non-NULL)."""
    return next((r for r in rules_for(source_kind, target_kind, ctype) if r.becomes == "NULL"), None)


def describe_rules(source_kind: str, target_kind: str, ctype: CanonicalType) -> str | None:
    rules = rules_for(source_kind, target_kind, ctype)
    return "; ".join(r.describe() for r in rules) if rules else None


def pg_null_predicate(target_kind: str, column_sql: str, ctype: CanonicalType) -> str | None:
    """PostgreSQL source: SQL true for the values a rule turns into NULL (None: no such rule)."""
    if rule_for("postgresql", target_kind, ctype) is None:
        return None
    special = f"{column_sql} IN ('NaN', 'Infinity', '-Infinity')"
    beyond = _beyond_sqlserver_decimal if target_kind == "sqlserver" else _beyond_mysql_decimal
    if ctype.name == "numeric" and not target_traits(target_kind).any_decimal and beyond(ctype):
        precision, scale = decimal_bounds(target_kind, ctype)
        return (f"{special} OR scale(trim_scale({column_sql})) > {scale} "
                f"OR abs({column_sql}) >= 1e{precision - scale}")  # fmt: skip
    if ctype.name in ("real", "double", "numeric"):
        return special
    value = f"({column_sql} AT TIME ZONE 'UTC')" if ctype.name == "timestamptz" else column_sql
    upper = "'9999-12-31'" if ctype.name == "date" else "'9999-12-31 23:59:59.999999'"
    return f"NOT ({value} BETWEEN '0001-01-01' AND {upper})"


def pg_substituted_predicate(target_kind: str, column_sql: str, ctype: CanonicalType) -> str | None:
    """PostgreSQL source: SQL true for every value any rule changes (what the asset counts)."""
    predicates = [p for p in [pg_null_predicate(target_kind, column_sql, ctype)] if p]
    if any(r.becomes == "0" for r in rules_for("postgresql", target_kind, ctype)):
        predicates.append(f"{column_sql}::text = '-0'")
    return " OR ".join(f"({p})" for p in predicates) if predicates else None


def strip_nul(value: str) -> str | None:
    """MySQL text bound for PostgreSQL: the text without NUL characters, or None when it has none."""
    return value.replace("\x00", "") if "\x00" in value else None


def mysql_zero_in_date(value) -> bool:
    """A value pymysql could not turn into a date: a zero-in-date value (it returns the raw text)."""
    return isinstance(value, str | bytes)
