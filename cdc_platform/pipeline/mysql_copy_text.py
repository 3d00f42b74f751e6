"""MySQL/MariaDB rows rendered by the server itself as PostgreSQL ``COPY`` text.

Decoding every value of every row in pymysql (pure Python) ran at about 56,000 rows/s, a sixth of
what ``mariadb --batch | psql \\copy`` does between the same two servers. So the MariaDB ->
PostgreSQL full load asks the source server for one value per row: the row as a ``COPY`` text
line, built by SQL string functions in C, which the copy relays to ``COPY ... FROM STDIN`` without
looking at the values.

The value rules of ``cdc_platform/schema/rules.py`` are SQL here, the same rules the CDC converter
applies: a zero-in-date value becomes ``\\N`` and NUL characters are removed from text. A row a
rule changed starts with a flag prefix, ``\\!<column index>[,<index>...]!``, which
:func:`take_flags` counts and strips. No line of values can start with ``\\!``: the only backslash
pairs the SQL writes are ``\\\\``, ``\\t``, ``\\n``, ``\\r`` and ``\\N``, and a line starts with a pair.

Text is converted to utf8mb4 and then handled as bytes: replacing in a binary string is about a
third cheaper for the server than in a collated one, and the copy's speed is the server's.

String literals are hex literals, so the SQL means the same whatever the session's ``sql_mode``
(``NO_BACKSLASH_ESCAPES`` changes what a backslash in a quoted literal means).

The same lines feed a MySQL/MariaDB target: ``LOAD DATA``'s default format (tab-separated, escaped
by backslash, ``\\N`` for NULL) reads exactly these escapes. For that target the values keep
MySQL's own text, except the ones ``LOAD DATA`` cannot assign from text as they are: binary as hex,
BIT(n) and YEAR as numbers, each through a variable (:func:`load_data_columns`).
"""

from __future__ import annotations

from dataclasses import dataclass

from cdc_platform.schema.ddl import qualified, quote
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.rules import family, rule_for, rules_for

TEXT_KINDS = ("varchar", "char", "text")
FLAG = b"\\!"


def _hex(data: bytes) -> str:
    return f"X'{data.hex()}'"


NUL_SQL, TAB_SQL, FLAG_SQL = _hex(b"\x00"), _hex(b"\t"), _hex(FLAG)
FLAG_END = b"!"
NULL_SQL = _hex(b"\\N")  # COPY's NULL
BYTEA_PREFIX_SQL = _hex(b"\\\\x")  # \\x: COPY unescapes it to bytea's \x


#: COPY text escapes, backslash first; NUL is handled by the rule
_ESCAPES = ((b"\\", b"\\\\"), (b"\t", b"\\t"), (b"\n", b"\\n"), (b"\r", b"\\r"))


def _escaped(value_sql: str, strip_nul: bool) -> str:
    for raw, escaped in _ESCAPES:
        value_sql = f"REPLACE({value_sql}, {_hex(raw)}, {_hex(escaped)})"
    if strip_nul:
        value_sql = f"REPLACE({value_sql}, {NUL_SQL}, '')"
    return value_sql


def _zero_in_date(column_sql: str) -> str:
    return f"(YEAR({column_sql}) = 0 OR MONTH({column_sql}) = 0 OR DAYOFMONTH({column_sql}) = 0)"


@dataclass(frozen=True)
class CopyTextSelect:
    """The SELECT producing one ``COPY`` text line per row, and the columns its flags name."""

    sql: str
    #: flag index -> column name, for the columns a rule can change
    counted: tuple[str, ...]


def _value(column: Column, counted: list[str], flags: list[str], target: str) -> str:
    """One column as ``COPY`` text (``\\N`` for NULL), registering its rule's flag when it has one."""
    name = quote("mysql", column.name)
    kind = column.type.name
    to_pg = target == "postgresql"
    rule = rule_for("mysql", target, column.type)
    substituted = None
    if kind in ("date", "timestamp", "timestamptz") and rule:
        substituted = _zero_in_date(name)
    if kind in TEXT_KINDS + ("json", "uuid"):
        text = f"CAST(CONVERT({name} USING utf8mb4) AS BINARY)"
        strip_nul = kind in TEXT_KINDS and bool(rules_for("mysql", target, column.type))
        if strip_nul:
            substituted = f"LOCATE({NUL_SQL}, {text}) > 0"
        expr = _escaped(text, strip_nul=strip_nul)
    elif kind == "real":
        expr = f"CAST({name} AS DOUBLE)"  # its exact binary value; FLOAT's own text has 6 digits
    elif kind == "timestamptz" and to_pg:
        expr = f"CONCAT({name}, '+00')"  # the session reads TIMESTAMP in UTC
    elif kind == "duration" and to_pg:
        expr = f"TIME_FORMAT({name}, '%H:%i:%s.%f')"  # [-]H:MM:SS.ffffff, as the CDC converter
    elif kind == "boolean":
        expr = (
            f"CASE WHEN {name} = 0 THEN 'f' WHEN {name} IS NOT NULL THEN 't' END"
            if to_pg
            else f"({name} + 0)"
        )
    elif kind == "bit":
        expr = f"LPAD(BIN({name}), {column.type.length}, '0')" if to_pg else f"({name} + 0)"
    elif kind == "binary":
        expr = f"CONCAT({BYTEA_PREFIX_SQL}, HEX({name}))" if to_pg else f"HEX({name})"
    elif kind == "year":
        expr = f"({name} + 0)"
    else:  # integers, decimals, double, date, timestamp (and MySQL's TIME, TIMESTAMP): the text both read
        expr = name
    if substituted:
        flags.append(f"IF({substituted}, '{len(counted)}', NULL)")
        counted.append(column.name)
        if kind not in TEXT_KINDS:
            expr = f"IF({substituted}, NULL, {expr})"
    return f"IFNULL({expr}, {NULL_SQL})" if column.nullable or substituted else expr


def copy_text_select(table: Table, target_kind: str = "postgresql") -> CopyTextSelect:
    """The lines for ``target_kind``: PostgreSQL's ``COPY`` text, or the same escapes with MySQL's
    values for a MySQL/MariaDB target's ``LOAD DATA``."""
    target = family(target_kind)
    if target not in ("postgresql", "mysql"):
        raise ValueError(f"no COPY text form for a {target_kind} target")
    counted: list[str] = []
    flags: list[str] = []
    values = [_value(c, counted, flags, target) for c in table.columns]
    line = f"CONCAT_WS({TAB_SQL}, {', '.join(values)})"
    if flags:
        prefix = f"CONCAT({FLAG_SQL}, NULLIF(CONCAT_WS(',', {', '.join(flags)}), ''), '!')"
        line = f"CONCAT(IFNULL({prefix}, ''), {line})"
    source = qualified("mysql", table.schema, table.name)
    return CopyTextSelect(f"SELECT CAST({line} AS BINARY) FROM {source}", tuple(counted))


#: how LOAD DATA reads the lines: its defaults, spelled out so no server setting changes them
LOAD_DATA_FORMAT = (
    "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n'"
)


def load_data_columns(table: Table) -> tuple[list[str], list[str]]:
    """``LOAD DATA``'s column list and ``SET`` clauses for lines made for a MySQL target.

    Binary arrives as hex (``UNHEX``); BIT(n) and YEAR as numbers, assigned as numbers: the text
    ``'0'`` would be the year 2000 and a BIT column would take the digits' bytes.
    """
    columns, sets = [], []
    for i, c in enumerate(table.columns):
        target = quote("mysql", c.name)
        if c.type.name == "binary":
            columns.append(f"@v{i}")
            sets.append(f"{target} = UNHEX(@v{i})")
        elif c.type.name in ("bit", "year"):
            columns.append(f"@v{i}")
            sets.append(f"{target} = CAST(@v{i} AS UNSIGNED)")
        else:
            columns.append(target)
    return columns, sets


def take_flags(block: bytes, counted: tuple[str, ...], substituted: dict[str, int]) -> bytes:
    """Whole ``COPY`` lines without their flag prefixes, each flag counted in ``substituted``.

    The scan for the flag runs in C over the whole block; only a block holding it (a flagged row,
    or rarely a text with a backslash before a ``!``) is split into lines.
    """
    if FLAG not in block:
        return block
    lines = block.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(FLAG):
            flags, rest = line[len(FLAG) :].split(FLAG_END, 1)
            for index in flags.split(b","):
                name = counted[int(index)]
                substituted[name] = substituted.get(name, 0) + 1
            lines[i] = rest
    return b"\n".join(lines)
