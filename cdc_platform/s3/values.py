"""Column types of an S3 target's Parquet files, and the values the full load and CDC put in them.

One Arrow type per canonical column type, used by the snapshot and by every change file, so a
reader sees one schema whatever path a row took:

* integers, booleans, ``real``/``double`` (NaN, infinities and -0 kept), ``binary`` as themselves;
* ``numeric(p,s)`` as a Parquet decimal (``decimal128`` up to 38 digits, ``decimal256`` up to 76);
  an unbounded or wider ``numeric`` as the exact decimal text;
* ``date`` as date32, ``timestamp`` as microseconds, ``timestamptz`` as microseconds in UTC;
* text, JSON, UUID, ``time``, ``interval`` and MySQL ``TIME`` as text in the source's own form.

The rules (cdc_platform/schema/rules.py) cover what Parquet cannot hold: NaN and infinities of a
decimal column, and dates outside 0001-01-01..9999-12-31 (PostgreSQL's infinities, BC, MySQL zero
dates) become NULL, counted per column. The CDC side decodes what the platform's converter sends
(target ``s3``: PostgreSQL's text forms) and Debezium's own JSON encodings for the other columns.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pyarrow as pa

from cdc_platform.schema.model import Table
from cdc_platform.schema.types import CanonicalType

MAX_DECIMAL_DIGITS = 76
#: columns the writer adds to every row: operation (r = snapshot, c/u/d = change), the source's
#: commit time and log position, and the order in which rows of one key apply
CDC_COLUMNS = (
    pa.field("_cdc_op", pa.string(), nullable=False),
    pa.field("_cdc_source_ts_ms", pa.int64()),
    pa.field("_cdc_position", pa.string()),
    pa.field("_cdc_seq", pa.int64(), nullable=False),
)


def decimal_column(ctype: CanonicalType) -> bool:
    return ctype.name == "numeric" and bool(ctype.precision) and ctype.precision <= MAX_DECIMAL_DIGITS


def arrow_type(ctype: CanonicalType) -> pa.DataType:
    name = ctype.name
    simple = {
        "smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(), "year": pa.int16(),
        "boolean": pa.bool_(), "real": pa.float32(), "double": pa.float64(), "binary": pa.binary(),
        "date": pa.date32(), "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC"),
    }  # fmt: skip
    if name in simple:
        return simple[name]
    if name == "numeric":
        if not decimal_column(ctype):
            return pa.string()
        scale = ctype.scale or 0
        return (
            pa.decimal128(ctype.precision, scale)
            if ctype.precision <= 38
            else pa.decimal256(ctype.precision, scale)
        )
    return pa.string()


def arrow_schema(table: Table) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in table.columns] + list(CDC_COLUMNS))


# -- CDC: Debezium JSON values -> Python values of the column's Arrow type ---------------------------
class Substituted(Exception):
    """A value a rule turns into NULL (it is counted by the caller)."""


def _in_range(year: int) -> bool:
    return 1 <= year <= 9999


def _date_text(text: str) -> dt.date:
    if text.endswith(" BC") or text in ("infinity", "-infinity"):
        raise Substituted
    year = int(text.split("-", 1)[0])
    if not _in_range(year):
        raise Substituted
    return dt.date.fromisoformat(text)


def _timestamp_text(text: str) -> dt.datetime:
    if text.endswith(" BC") or text in ("infinity", "-infinity"):
        raise Substituted
    aware = text.endswith("+00")
    body = text[:-3] if aware else text
    year = int(body.split("-", 1)[0])
    if not _in_range(year):
        raise Substituted
    value = dt.datetime.fromisoformat(body)
    return value.replace(tzinfo=dt.timezone.utc) if aware else value


EPOCH = dt.date(1970, 1, 1)


def _decode_decimal(value, field: dict) -> Decimal:
    """Kafka Connect's ``Decimal`` logical type: big-endian two's complement bytes (base64), scale."""
    raw = base64.b64decode(value)
    unscaled = int.from_bytes(raw, "big", signed=True)
    scale = int((field.get("parameters") or {}).get("scale", 0))
    # built from its digits: arithmetic such as ``scaleb`` rounds to the context's 28 digits, which
    # silently changed every MySQL/MariaDB decimal wider than that
    sign, digits, _ = Decimal(unscaled).as_tuple()
    return Decimal((sign, digits, -scale))


def change_value(ctype: CanonicalType, value, field: dict, source_kind: str):
    """One column's value from a change event, as the snapshot holds the same value.

    Raises :class:`Substituted` for a value a rule turns into NULL."""
    if value is None:
        return None
    name = ctype.name
    logical = field.get("name") or ""
    if name == "numeric":
        if field.get("type") == "bytes" or logical == "org.apache.kafka.connect.data.Decimal":
            number = _decode_decimal(value, field)
        else:
            text = str(value)
            if not decimal_column(ctype):
                return text
            if text in ("NaN", "Infinity", "-Infinity"):
                raise Substituted
            number = Decimal(text)
        return number if decimal_column(ctype) else format(number, "f")
    if name in ("real", "double"):
        return float(value)
    if name == "date":
        if isinstance(value, int):  # io.debezium.time.Date: days since the epoch
            return EPOCH + dt.timedelta(days=value)
        return _date_text(value)
    if name in ("timestamp", "timestamptz"):
        if isinstance(value, int):  # io.debezium.time.MicroTimestamp
            base = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=value)
            return base.replace(tzinfo=dt.timezone.utc) if name == "timestamptz" else base
        if "T" in value:  # io.debezium.time.ZonedTimestamp (ISO 8601)
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.timezone.utc)
        parsed = _timestamp_text(value)
        if name == "timestamptz" and parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return parsed
    if name == "binary":
        return base64.b64decode(value)
    if name == "char" and source_kind == "postgresql":
        return str(value).rstrip(" ")  # as char::text gives it in the snapshot
    if name == "boolean":
        return bool(value)
    if name in ("smallint", "integer", "bigint", "year"):
        return int(value)
    return value if isinstance(value, str) else str(value)


# -- full load: driver values -> the same Python values ---------------------------------------------
def snapshot_fixers(table: Table, source_kind: str) -> dict[int, Callable]:
    """Driver values that need a step to equal the CDC side's (the rest pass as they are)."""
    fixers: dict[int, Callable] = {}
    for i, c in enumerate(table.columns):
        if decimal_column(c.type):
            fixers[i] = lambda v: v if isinstance(v, Decimal) else Decimal(v)
        elif c.type.name == "numeric":
            fixers[i] = lambda v: v if isinstance(v, str) else format(v, "f")
        elif c.type.name in ("json", "jsonb", "uuid") and source_kind != "postgresql":
            fixers[i] = lambda v: v.decode() if isinstance(v, bytes) else str(v)
    return fixers
