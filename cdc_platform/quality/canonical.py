"""One canonical text per value, written in PostgreSQL's and in MySQL/MariaDB's SQL, so that a row
hashes the same on both engines when (and only when) it holds the same values.

The text is chosen per canonical type (``cdc_platform/schema/types.py``), not per native type, so a
source column and its target twin of another engine meet: a ``timestamptz`` is compared as epoch
microseconds whether it sits in a PostgreSQL ``timestamptz`` or a MariaDB ``DATETIME(6)`` holding
UTC, a ``numeric`` without trailing zeros, bytes as lower-case hex, a boolean as ``0``/``1``.

The value rules of the pair (``cdc_platform/schema/rules.py``) are applied to the *source* side's
text, so a value the pipeline maps by rule (NaN to NULL, a zero date to NULL, NUL characters
stripped) is compared after the rule, as the target holds it.

Two kinds of column have no text both engines print alike: ``real`` and ``double`` (PostgreSQL and
MariaDB switch to exponents at different magnitudes, and MariaDB prints a FLOAT with six digits).
They are read as doubles and canonicalized in Python (:func:`float_text`), which makes the whole
table's comparison stream rows instead of aggregating in the database; see ``checksum.py``.
"""

from __future__ import annotations

import math
import struct

from cdc_platform.schema.rules import family, pg_null_predicate, rule_for
from cdc_platform.schema.types import CanonicalType

#: separates the columns of a row's text; cannot occur in the ':'-prefixed parts ambiguously
SEPARATOR = "\x1f"
#: canonical types compared in Python (see the module's docstring)
PYTHON_TYPES = ("real", "double")
#: canonical types usable as a range-bucketed key
INTEGER_TYPES = ("smallint", "integer", "bigint", "year")

#: session settings that make the PostgreSQL texts below deterministic
PG_SESSION = ("SET DateStyle = 'ISO, YMD'", "SET IntervalStyle = 'iso_8601'", "SET TimeZone = 'UTC'")
MYSQL_SESSION = ("SET time_zone = '+00:00'",)


def pg_text(ct: CanonicalType, col: str) -> str:
    """PostgreSQL: the canonical text of ``col`` (NULL stays NULL)."""
    name = ct.name
    if name in ("timestamp", "timestamptz", "time", "duration"):
        micros = f"(extract(epoch FROM {col}) * 1000000)::numeric(38,0)::text"
        return (
            micros
            if name in ("time", "duration")
            else f"CASE WHEN isfinite({col}) THEN {micros} ELSE {col}::text END"
        )
    if name == "interval":
        return f"{col}::text"
    if name == "numeric":
        return f"trim_scale({col})::text"
    if name == "boolean":
        return f"{col}::int::text"
    if name == "binary":
        return f"encode({col}, 'hex')"
    if name == "char":
        return f"rtrim({col}::text)"
    if name in PYTHON_TYPES:
        return f"{col}::float8"
    return f"{col}::text"


def mysql_text(ct: CanonicalType, col: str) -> str:
    """MySQL/MariaDB: the canonical text of ``col`` (NULL stays NULL), matching :func:`pg_text`."""
    name = ct.name
    if name in ("timestamp", "timestamptz"):
        return f"CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {col}) AS CHAR)"
    if name in ("time", "duration"):
        return f"CAST(CAST(TIME_TO_SEC({col}) * 1000000 AS DECIMAL(38,0)) AS CHAR)"
    if name == "numeric":
        text = f"CAST({col} AS CHAR)"
        return f"IF(LOCATE('.', {text}) > 0, TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {text})), {text})"
    if name == "boolean":
        return f"CAST(({col} + 0 <> 0) AS CHAR)"
    if name == "year":  # YEAR 0 prints as '0000'
        return f"CAST({col} + 0 AS CHAR)"
    if name == "bit":
        return f"LPAD(BIN({col} + 0), {ct.length or 1}, '0')"
    if name == "binary":
        return f"LOWER(HEX({col}))"
    if name == "uuid":
        return f"LOWER(CAST({col} AS CHAR))"
    if name == "char":
        return f"RTRIM({col})"
    if name == "date":
        return f"DATE_FORMAT({col}, '%Y-%m-%d')"
    if name in PYTHON_TYPES:
        return f"CAST({col} AS DOUBLE)"
    return f"CAST({col} AS CHAR)"


def source_text(source_kind: str, target_kind: str, ct: CanonicalType, col: str) -> str:
    """The source side's text, after the pair's value rules (what the target is meant to hold)."""
    src = family(source_kind)
    if src == "postgresql":
        text = pg_text(ct, col)
        if ct.name in PYTHON_TYPES:
            return text  # NaN, infinities and -0 are ruled in float_text
        null_when = pg_null_predicate(target_kind, col, ct)
        return f"CASE WHEN {null_when} THEN NULL ELSE {text} END" if null_when else text
    text = mysql_text(ct, col)
    rule = rule_for(source_kind, target_kind, ct)
    if rule is not None and ct.name in ("date", "timestamp", "timestamptz"):
        return f"CASE WHEN YEAR({col}) = 0 OR MONTH({col}) = 0 OR DAYOFMONTH({col}) = 0 THEN NULL ELSE {text} END"
    if family(target_kind) == "postgresql" and ct.name in ("varchar", "char", "text"):
        return f"REPLACE({text}, CHAR(0 USING utf8mb4), '')"
    return text


def target_text(target_kind: str, ct: CanonicalType, col: str) -> str:
    return pg_text(ct, col) if family(target_kind) == "postgresql" else mysql_text(ct, col)


def row_text_sql(kind: str, parts: list[str]) -> str:
    """The SQL concatenating column texts into the row's text: ':' + text, or '~' for NULL."""
    if family(kind) == "postgresql":
        wrapped = [f"COALESCE(':' || ({p}), '~')" for p in parts]
        return " || chr(31) || ".join(wrapped) if wrapped else "''"
    wrapped = [f"COALESCE(CONCAT(':', CONVERT({p} USING utf8mb4)), '~')" for p in parts]
    return f"CONCAT_WS(CHAR(31 USING utf8mb4), {', '.join(wrapped)})" if wrapped else "''"


def wrapped_sql(kind: str, part: str) -> str:
    """One column's wrapped text alone (for reading rows to compare column by column)."""
    if family(kind) == "postgresql":
        return f"COALESCE(':' || ({part}), '~')"
    return f"COALESCE(CONCAT(':', CONVERT({part} USING utf8mb4)), '~')"


def md5_sql(kind: str, text: str) -> str:
    return f"md5({text})" if family(kind) == "postgresql" else f"MD5({text})"


def hash60_sql(kind: str, hex_md5: str) -> str:
    """The first 60 bits of an md5 as a non-negative integer, summed per chunk by the database."""
    if family(kind) == "postgresql":
        return f"('x' || substr({hex_md5}, 1, 15))::bit(60)::bigint"
    return f"CAST(CONV(SUBSTR({hex_md5}, 1, 15), 16, 10) AS UNSIGNED)"


def bucket28_sql(kind: str, hex_md5: str, buckets: int) -> str:
    """A hash bucket (0..buckets-1) from an md5, for keys that are not integers."""
    if family(kind) == "postgresql":
        return f"(('x' || substr({hex_md5}, 1, 7))::bit(28)::int % {buckets})"
    return f"(CONV(SUBSTR({hex_md5}, 1, 7), 16, 10) % {buckets})"


def float_text(value: float | None, ct: CanonicalType, ruled_for_mysql: bool) -> str | None:
    """A real/double as text: rounded to single precision for ``real`` (a MariaDB FLOAT read as a
    DOUBLE carries the same float32); on a PostgreSQL source bound for MySQL, NaN and the
    infinities become NULL and -0 becomes 0, as the pipeline's rules do."""
    if value is None:
        return None
    value = float(value)
    if ruled_for_mysql:
        if math.isnan(value) or math.isinf(value):
            return None
        if value == 0.0:
            value = 0.0
    if ct.name == "real" and not (math.isnan(value) or math.isinf(value)):
        value = struct.unpack("f", struct.pack("f", value))[0]
    return repr(value)


def wrap(text: str | None) -> str:
    """Python's twin of the SQL wrapping in :func:`row_text_sql`."""
    return "~" if text is None else ":" + text
