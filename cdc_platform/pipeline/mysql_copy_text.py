"""MySQL/MariaDB rows rendered by the server itself as PostgreSQL ``COPY`` text.

Decoding every value of every row in pymysql (pure Python) ran at about 56,000 rows/s, a sixth of
what ``mariadb --batch | psql \\copy`` does between the same two servers. So the MariaDB ->
PostgreSQL full load asks the source server for one value per row: the row as a ``COPY`` text
line, built by SQL string functions in C, which the copy relays to ``COPY ... FROM STDIN`` without
looking at the values.

The value rules of ``cdc_platform/schema/rules.py`` are applied here too, the same rules the CDC
converter applies: a zero-in-date value becomes NULL and NUL characters are removed from text, each
counted. The server does only what it must: it writes a zero-in-date value as the mark ``\\N!``
(a field no value can be: every backslash of a value is escaped, and ``\\N`` is a whole field) and
leaves NUL characters in the text; :func:`take_substitutions` finds both with one scan of each
block in C and, only in the rare line holding one, turns the mark into ``\\N`` and drops the NULs,
counting each column. Testing for NUL on the server cost as much as escaping the text, and a flag
computed apart from the value made the server test every date twice.

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
#: the field the server writes for a value a rule turns into NULL
MARK = b"\\N!"
NUL = b"\x00"


def _hex(data: bytes) -> str:
    return f"X'{data.hex()}'"


TAB_SQL, MARK_SQL = _hex(b"\t"), _hex(MARK)
NULL = b"\\N"  # COPY's NULL
NULL_SQL = _hex(NULL)
BYTEA_PREFIX_SQL = _hex(b"\\\\x")  # \\x: COPY unescapes it to bytea's \x


#: COPY text escapes, backslash first; NUL is left to the rule (:func:`take_substitutions`)
_ESCAPES = ((b"\\", b"\\\\"), (b"\t", b"\\t"), (b"\n", b"\\n"), (b"\r", b"\\r"))


def _escaped(value_sql: str) -> str:
    for raw, escaped in _ESCAPES:
        value_sql = f"REPLACE({value_sql}, {_hex(raw)}, {_hex(escaped)})"
    return value_sql


def _zero_in_date(column_sql: str) -> str:
    return f"(YEAR({column_sql}) = 0 OR MONTH({column_sql}) = 0 OR DAYOFMONTH({column_sql}) = 0)"


@dataclass(frozen=True)
class CopyTextSelect:
    """The SELECT producing one ``COPY`` text line per row, and the fields a rule can change."""

    sql: str
    #: field index -> column name, for the columns a rule can change (counted per row)
    counted: dict[int, str]
    #: the fields whose NUL characters are dropped (text for PostgreSQL, which cannot hold NUL)
    nul_dropped: frozenset[int] = frozenset()


def _value(column: Column, target: str) -> tuple[str, bool, bool]:
    """One column as ``COPY`` text (``\\N`` for NULL); whether a rule can change it, and whether
    that rule is the NUL one (left to :func:`take_substitutions`)."""
    name = quote("mysql", column.name)
    kind = column.type.name
    to_pg = target == "postgresql"
    zero_in_date = kind in ("date", "timestamp", "timestamptz") and bool(
        rule_for("mysql", target, column.type)
    )
    drops_nul = False
    if kind in TEXT_KINDS + ("json", "uuid"):
        drops_nul = kind in TEXT_KINDS and bool(rules_for("mysql", target, column.type))
        expr = _escaped(f"CAST(CONVERT({name} USING utf8mb4) AS BINARY)")
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
    if zero_in_date:
        expr = f"IF({_zero_in_date(name)}, {MARK_SQL}, {expr})"
    value = f"IFNULL({expr}, {NULL_SQL})" if column.nullable or zero_in_date else expr
    return value, zero_in_date or drops_nul, drops_nul


def copy_text_select(table: Table, target_kind: str = "postgresql") -> CopyTextSelect:
    """The lines for ``target_kind``: PostgreSQL's ``COPY`` text, or the same escapes with MySQL's
    values for a MySQL/MariaDB target's ``LOAD DATA``."""
    target = family(target_kind)
    if target not in ("postgresql", "mysql"):
        raise ValueError(f"no COPY text form for a {target_kind} target")
    values: list[str] = []
    counted: dict[int, str] = {}
    nul_dropped: set[int] = set()
    for index, column in enumerate(table.columns):
        value, ruled, drops_nul = _value(column, target)
        values.append(value)
        if ruled:
            counted[index] = column.name
        if drops_nul:
            nul_dropped.add(index)
    line = f"CONCAT_WS({TAB_SQL}, {', '.join(values)})"
    source = qualified("mysql", table.schema, table.name)
    return CopyTextSelect(f"SELECT CAST({line} AS BINARY) FROM {source}", counted, frozenset(nul_dropped))


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


def take_substitutions(block: bytes, select: CopyTextSelect, substituted: dict[str, int]) -> bytes:
    """Whole ``COPY`` lines with each mark made ``\\N`` and each NUL dropped where a rule says so,
    counted per column in ``substituted``.

    The scans for the mark and for NUL run in C over the whole block; only a line holding one (a
    substituted value, or rarely a text with the mark's bytes inside its own escapes) is split
    into fields.
    """
    if not select.counted:
        return block
    marked = MARK in block
    nul = bool(select.nul_dropped) and NUL in block
    if not (marked or nul):
        return block
    lines = block.split(b"\n")
    for i, line in enumerate(lines):
        if (marked and MARK in line) or (nul and NUL in line):
            lines[i] = _substituted_line(line, select, substituted)
    return b"\n".join(lines)


def _substituted_line(line: bytes, select: CopyTextSelect, substituted: dict[str, int]) -> bytes:
    fields = line.split(b"\t")
    for index, name in select.counted.items():
        field = fields[index]
        if field == MARK:
            fields[index] = NULL
        elif index in select.nul_dropped and NUL in field:
            fields[index] = field.replace(NUL, b"")
        else:
            continue
        substituted[name] = substituted.get(name, 0) + 1
    return b"\t".join(fields)
