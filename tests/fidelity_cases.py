"""Edge values of each source engine, how to read them back strictly, and the fidelity matrix.

Each case is a column of a source table with its edge values, one per row. Values are read back
as text on both engines with a per-type SQL expression and normalised in Python, so the comparison
is strict: floats by their bits (NaN equals NaN, -0.0 differs from 0.0), decimals by value,
temporal values by their full text (infinity, BC and microseconds included).
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Case:
    column: str
    source_type: str  # DDL on the source
    canonical: str  # canonical type name (cdc_platform.schema.types)
    values: tuple[str, ...]  # SQL literals
    length: int = 0  # bit(n), char(n)
    precision: int | None = None  # numeric(p,s)
    scale: int | None = None


PG_CASES = (
    Case("c_double", "double precision", "double",
         ("'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "1.7976931348623157e308", "4.9e-324", "0.1")),
    Case("c_real", "real", "real",
         ("'NaN'", "'Infinity'", "'-Infinity'", "'-0'", "3.4028235e38", "1.4e-45", "0.1")),
    Case("c_numeric", "numeric", "numeric",
         ("'NaN'", "'Infinity'", "'-Infinity'", "12345678901234567890.123456789", "-0.000000001", "0")),
    Case("c_numeric_wide", "numeric", "numeric",
         ("0.1234567890123456789012345678901", "123456789012345678901234567890123456", "1.5000000000000000000000000000000000",
          "-99999999999999999999999999999999999.999999999999999999999999999999")),
    Case("c_char_300", "char(300)", "char", ("'padded'", "''"), length=300),
    Case("c_numeric_38", "numeric(38,10)", "numeric",
         ("9999999999999999999999999999.9999999999", "-9999999999999999999999999999.9999999999", "0.0000000001"),
         precision=38, scale=10),
    # the widest decimals: Parquet's decimal256 (76 digits), and beyond it, exact text
    Case("c_numeric_76", "numeric(76,38)", "numeric",
         ("concat(repeat('9', 38), '.', repeat('9', 38))::numeric", "-concat(repeat('9', 38), '.', repeat('9', 38))::numeric",
          "1e-38", "-123456789012345678901234567890.5"), precision=76, scale=38),
    Case("c_numeric_1000", "numeric(1000,0)", "numeric",
         ("repeat('9', 1000)::numeric", "-repeat('9', 999)::numeric", "12345678901234567890123456789")),
    Case("c_bigint", "bigint", "bigint", ("9223372036854775807", "-9223372036854775808", "0")),
    Case("c_date", "date", "date",
         ("'infinity'", "'-infinity'", "'4713-01-01 BC'", "'5874897-12-31'", "'0001-01-01'", "'9999-12-31'",
          "'2024-02-29'")),
    Case("c_timestamp", "timestamp", "timestamp",
         ("'infinity'", "'-infinity'", "'4713-01-01 00:00:00 BC'", "'294276-12-31 23:59:59.999999'",
          "'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'", "'2024-01-01 12:00:00.5'")),
    Case("c_timestamptz", "timestamptz", "timestamptz",
         ("'infinity'", "'-infinity'", "'2024-06-01 08:00:00+09'", "'0001-01-01 00:00:00+00'",
          "'9999-12-31 23:59:59.999999+00'", "'1970-01-01 00:00:00+00'")),
    Case("c_time", "time", "time", ("'24:00:00'", "'00:00:00'", "'23:59:59.999999'", "'12:00:00.5'")),
    # column defaults pass through the converter too (Debezium hands some over as text)
    Case("c_tz_default", "timestamptz DEFAULT now()", "timestamptz", ("'2024-01-01 00:00:00+00'",)),
    Case("c_double_default", "double precision DEFAULT 'NaN'", "double", ("1.5",)),
    Case("c_date_default", "date DEFAULT 'infinity'", "date", ("'2024-01-01'",)),
    Case("c_interval", "interval", "interval",
         ("'1 year 2 mons -3 days 04:05:06.789'", "'-1 year -2 mons +3 days -04:05:06.789'", "'0'", "'1 day'",
          "'-0.5 seconds'", "'100 years'", "'1 mon 1 microsecond'", "'-838:59:59'")),
)  # fmt: skip

MARIADB_CASES = (
    Case("c_ubigint", "bigint unsigned", "numeric", ("18446744073709551615", "9223372036854775808", "0")),
    # every width a MySQL/MariaDB DECIMAL has: up to 65 digits, 30 of them after the point
    Case("c_dec65", "decimal(65,30)", "numeric",
         ("CONCAT(REPEAT('9', 35), '.', REPEAT('9', 30))", "CONCAT('-', REPEAT('9', 35), '.', REPEAT('9', 30))",
          "CONCAT('0.', REPEAT('0', 29), '1')", "-393515302594375678509070382397.123456789012345678901234567890", "0"),
         precision=65, scale=30),
    Case("c_dec65_0", "decimal(65,0)", "numeric",
         ("REPEAT('9', 65)", "CONCAT('-', REPEAT('9', 65))", "-393515302594375678509070382397"), precision=65, scale=0),
    Case("c_dec30", "decimal(30,0)", "numeric", ("REPEAT('9', 30)", "-393515302594375678509070382397", "1"),
         precision=30, scale=0),
    Case("c_float", "float", "real", ("3.402823466e38", "-3.402823466e38", "1.17549e-38", "3.14159", "0.1")),
    Case("c_double", "double", "double", ("1.7976931348623157e308", "4.9e-324", "0.1", "-2.5")),
    Case("c_date", "date", "date", ("'0000-00-00'", "'2024-02-00'", "'0001-01-01'", "'9999-12-31'", "'1000-01-01'")),
    Case("c_datetime", "datetime(6)", "timestamp",
         ("'0000-00-00 00:00:00'", "'2024-00-10 10:00:00'", "'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'")),
    Case("c_timestamp", "timestamp(6) NULL DEFAULT NULL", "timestamptz",
         ("'0000-00-00 00:00:00'", "'1970-01-01 00:00:01'", "'2038-01-19 03:14:07.999999'")),
    Case("c_time", "time(6)", "duration",
         ("'838:59:59'", "'-838:59:59'", "'24:00:00'", "'-00:00:00.000001'", "'00:00:00'", "'12:34:56.5'")),
    Case("c_year", "year", "year", ("1901", "2155", "0", "2000")),
    Case("c_ts_default", "datetime(6) DEFAULT CURRENT_TIMESTAMP(6)", "timestamp", ("'2024-01-01 00:00:00'",)),
    Case("c_year_default", "year DEFAULT 2000", "year", ("1999",)),
    Case("c_bit1", "bit(1)", "boolean", ("b'1'", "b'0'")),
    Case("c_bit8", "bit(8)", "bit", ("b'10100000'", "b'00000001'", "b'11111111'", "b'0'"), length=8),
    Case("c_bit64", "bit(64)", "bit", ("b'" + "1" * 64 + "'", "b'1" + "0" * 63 + "'", "b'0'"), length=64),
    Case("c_uuid", "uuid", "uuid",
         ("'123e4567-e89b-12d3-a456-426614174000'", "'00000000-0000-0000-0000-000000000001'",
          "'ffffffff-ffff-ffff-ffff-ffffffffffff'")),
    Case("c_set", "set('a','b','c')", "text", ("'a,c'", "''", "'b'")),
    Case("c_enum", "enum('x','y')", "text", ("'y'", "'x'")),
    Case("c_text", "varchar(50)", "varchar", ("'😀 emoji'", "'Grüße'", "''", "'a\\0b'")),
    Case("c_longtext", "longtext", "text", ("CONCAT('x', CHAR(0), 'y')", "'plain'")),
    # the characters COPY text escapes, and texts that look like the full load's marks (the old row
    # flag, and the field it writes for a zero date)
    Case("c_escapes", "varchar(40)", "varchar",
         ("CONCAT('a', CHAR(9), 'b', CHAR(10), 'c', CHAR(13), 'd', CHAR(92), 'e')", "CONCAT(CHAR(92), '!0!x')",
          "CONCAT(CHAR(92), 'N')", "CHAR(92)", "CONCAT(CHAR(92), CHAR(92), '!')", "CONCAT(CHAR(92), 'N!')")),
    Case("c_latin1", "varchar(20) CHARACTER SET latin1", "varchar", ("'Grüße'", "CONCAT('x', CHAR(9), 'y')")),
    Case("c_blob", "blob", "binary", ("X'005c0a0d09ff01'", "X''", "X'5c7834'")),
    Case("c_json", "json", "json", ("'{\"k\": \"v\\\\tw\", \"n\": [1, 2]}'", "'[]'")),
)  # fmt: skip


def rows_of(cases: tuple[Case, ...], first_id: int) -> list[str]:
    """One SQL row tuple per value index: row i holds the i-th value of every case (NULL when none)."""
    depth = max(len(c.values) for c in cases)
    rows = []
    for i in range(depth):
        cells = [c.values[i] if i < len(c.values) else "NULL" for c in cases]
        rows.append(f"({first_id + i}, 0, {', '.join(cells)})")
    return rows


# -- reading back, strictly ---------------------------------------------------------------------
def pg_read_expr(case: Case, name: str) -> str:
    if case.canonical == "binary":
        return f"encode({name}, 'hex')"
    if case.canonical == "real":
        return f"{name}::float8::text"
    return f"{name}::text"


def mysql_read_expr(case: Case, name: str) -> str:
    if case.canonical in ("real", "double"):
        return f"CAST(CAST({name} AS DOUBLE) AS CHAR)"
    if case.canonical == "bit":
        return f"LPAD(BIN({name}), {case.length}, '0')"
    if case.canonical == "boolean":
        return f"CAST({name} + 0 AS CHAR)"
    if case.canonical == "binary":
        return f"LOWER(HEX({name}))"
    return f"CAST({name} AS CHAR)"


_FRACTION = re.compile(r"(\d\d:\d\d:\d\d)\.(\d*?)0*(?=$|[+ ])")


def normalise(case: Case, text: str | None):
    """A value read as text, in a form equal on both engines exactly when the values are equal."""
    if text is None:
        return None
    kind = case.canonical
    if kind in ("real", "double"):
        value = float(text)
        if math.isnan(value):
            return "NaN"
        if kind == "real":  # compare as the float32 both engines hold, whatever text showed it
            try:
                return struct.pack(">f", value).hex()
            except OverflowError:
                return f"beyond float32: {text}"
        return struct.pack(">d", value).hex()
    if kind == "numeric":
        return "NaN" if text == "NaN" else (text if "Infinity" in text else Decimal(text))
    if kind in ("bigint", "year"):
        return int(text)
    if kind == "boolean":
        return {"t": True, "f": False, "true": True, "false": False, "1": True, "0": False}[text]
    if kind in ("timestamp", "timestamptz", "time", "duration"):
        text = _FRACTION.sub(lambda m: m.group(1) + ("." + m.group(2) if m.group(2) else ""), text)
        return text.removesuffix("+00")
    return text


# -- the matrix ---------------------------------------------------------------------------------
MATRIX_START = "<!-- fidelity-matrix:start (generated by tests/integration/test_value_fidelity.py) -->"
MATRIX_END = "<!-- fidelity-matrix:end -->"


def render_matrix(outcomes: dict[tuple[str, str, str], str], pairs: list[str]) -> str:
    """outcomes: (pair, source type, value) -> 'exact' | 'NULL (rule)'; one line per source type and value."""
    lines = [MATRIX_START, "", "| source type | value | " + " | ".join(pairs) + " |",
             "|---|---|" + "---|" * len(pairs)]  # fmt: skip
    keys: list[tuple[str, str]] = []
    for _pair, stype, value in outcomes:
        if (stype, value) not in keys:
            keys.append((stype, value))
    for stype, value in keys:
        cells = [outcomes.get((pair, stype, value), "") for pair in pairs]
        if any(cells):
            lines.append(f"| {stype} | `{value}` | " + " | ".join(cells) + " |")
    lines += ["", MATRIX_END]
    return "\n".join(lines)
