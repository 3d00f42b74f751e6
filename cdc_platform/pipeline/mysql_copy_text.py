"""MySQL/MariaDB rows rendered by the server itself as PostgreSQL ``COPY`` text.

Decoding every value of every row in pymysql (pure Python) ran at about 56,000 rows/s, a sixth of
what ``mariadb --batch | psql \\copy`` does between the same two servers. So the MariaDB ->
PostgreSQL full load asks the source server for one value per row: the row as a ``COPY`` text
line, built by SQL string functions in C, which the copy relays to ``COPY ... FROM STDIN`` without
looking at the values.

The value rules of ``cdc_platform/schema/rules.py`` are applied here too, the same rules the CDC
converter applies: a zero-in-date value becomes NULL and NUL characters are removed from text, each
counted. The server does neither: it writes dates as MySQL prints them and leaves NUL characters in
the text, and :func:`take_substitutions` finds both with a few scans of each block in C (a zero
year, month or day prints as ``0000-`` or ``-00``, and no other date text holds those bytes); only
in the rare line holding one does it split the fields, turn each zero-in-date date into ``\\N`` and
drop the NULs, counting each column. Testing on the server cost as much as escaping the text:
three date functions and a branch for every date of every row, about a fifth of the server's work
on a table of one date column.

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
NUL = b"\x00"
#: the bytes every zero-in-date value prints with (``0000-00-00``, ``2020-00-15``, ``2020-01-00 10:00:00``);
#: a line holding neither holds no such date. Two short needles, because each scan costs about
#: 0.6 ms a megabyte whatever the needle (dates are full of dashes and zeros)
ZERO_DATE_HINTS = (b"0000-", b"-00")


def _hex(data: bytes) -> str:
    return f"X'{data.hex()}'"


TAB_SQL = _hex(b"\t")
NULL = b"\\N"  # COPY's NULL
NULL_SQL = _hex(NULL)
BYTEA_PREFIX_SQL = _hex(b"\\\\x")  # \\x: COPY unescapes it to bytea's \x


#: COPY text escapes, backslash first; NUL is left to the rule (:func:`take_substitutions`)
_ESCAPES = ((b"\\", b"\\\\"), (b"\t", b"\\t"), (b"\n", b"\\n"), (b"\r", b"\\r"))


def _escaped(value_sql: str) -> str:
    for raw, escaped in _ESCAPES:
        value_sql = f"REPLACE({value_sql}, {_hex(raw)}, {_hex(escaped)})"
    return value_sql


@dataclass(frozen=True)
class CopyTextSelect:
    """The SELECT producing one ``COPY`` text line per row, and the fields a rule can change."""

    sql: str
    #: field index -> column name, for the columns a rule can change (counted per row)
    counted: dict[int, str]
    #: the fields whose NUL characters are dropped (text for PostgreSQL, which cannot hold NUL)
    nul_dropped: frozenset[int] = frozenset()
    #: the date fields whose zero-in-date values become NULL
    zero_dates: frozenset[int] = frozenset()


def _value(column: Column, target: str) -> tuple[str, str | None]:
    """One column as ``COPY`` text (``\\N`` for NULL), and the rule :func:`take_substitutions`
    applies to it, if any: ``"zero_date"`` or ``"nul"``."""
    name = quote("mysql", column.name)
    kind = column.type.name
    to_pg = target == "postgresql"
    rule: str | None = None
    if kind in ("date", "timestamp", "timestamptz") and rule_for("mysql", target, column.type):
        rule = "zero_date"
    if kind in TEXT_KINDS + ("json", "uuid"):
        if kind in TEXT_KINDS and rules_for("mysql", target, column.type):
            rule = "nul"
        expr = _escaped(f"CAST(CONVERT({name} USING utf8mb4) AS BINARY)")
    elif kind == "real":
        expr = f"CAST({name} AS DOUBLE)"  # its exact binary value; FLOAT's own text has 6 digits
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
    else:
        # integers, decimals, double, date, and timestamps as MySQL prints them: a TIMESTAMP is
        # read in UTC (the snapshot session's time zone) and a PostgreSQL target's copy session
        # reads a timestamptz without offset in UTC too
        expr = name
    return (f"IFNULL({expr}, {NULL_SQL})" if column.nullable else expr), rule


def copy_text_select(table: Table, target_kind: str = "postgresql") -> CopyTextSelect:
    """The lines for ``target_kind``: PostgreSQL's ``COPY`` text, or the same escapes with MySQL's
    values for a MySQL/MariaDB target's ``LOAD DATA``."""
    target = family(target_kind)
    if target not in ("postgresql", "mysql"):
        raise ValueError(f"no COPY text form for a {target_kind} target")
    values: list[str] = []
    counted: dict[int, str] = {}
    by_rule: dict[str, set[int]] = {"nul": set(), "zero_date": set()}
    for index, column in enumerate(table.columns):
        value, rule = _value(column, target)
        values.append(value)
        if rule:
            counted[index] = column.name
            by_rule[rule].add(index)
    line = f"CONCAT_WS({TAB_SQL}, {', '.join(values)})"
    source = qualified("mysql", table.schema, table.name)
    return CopyTextSelect(f"SELECT CAST({line} AS BINARY) FROM {source}", counted,
                          frozenset(by_rule["nul"]), frozenset(by_rule["zero_date"]))  # fmt: skip


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
    """Whole ``COPY`` lines with each zero-in-date date made ``\\N`` and each NUL dropped where a
    rule says so, counted per column in ``substituted``.

    The scans run in C over the whole block; only a line holding a hint (a substituted value, or a
    value that merely contains the same bytes) is split into fields, so a block costs in Python
    what its hits cost, however many lines it has.
    """
    hints = (ZERO_DATE_HINTS if select.zero_dates else ()) + ((NUL,) if select.nul_dropped else ())
    starts = _lines_holding(block, hints)
    if not starts:
        return block
    pieces: list[bytes] = []
    done = 0
    for start in sorted(starts):
        end = block.index(b"\n", start)
        pieces += [block[done:start], _substituted_line(block[start:end], select, substituted)]
        done = end
    pieces.append(block[done:])
    return b"".join(pieces)


def _lines_holding(block: bytes, needles: tuple[bytes, ...]) -> set[int]:
    """The offsets of the lines of ``block`` that hold any of ``needles``."""
    starts: set[int] = set()
    for needle in needles:
        at = block.find(needle)
        while at != -1:
            starts.add(block.rfind(b"\n", 0, at) + 1)
            at = block.find(needle, block.index(b"\n", at + len(needle) - 1) + 1)
    return starts


def _zero_in_date(field: bytes) -> bool:
    """``YYYY-MM-DD[ hh:mm:ss[.ffffff]]`` with a zero year, month or day (never ``\\N``)."""
    return field[:4] == b"0000" or field[5:7] == b"00" or field[8:10] == b"00"


def _substituted_line(line: bytes, select: CopyTextSelect, substituted: dict[str, int]) -> bytes:
    fields = line.split(b"\t")
    for index, name in select.counted.items():
        field = fields[index]
        if index in select.zero_dates and field != NULL and _zero_in_date(field):
            fields[index] = NULL
        elif index in select.nul_dropped and NUL in field:
            fields[index] = field.replace(NUL, b"")
        else:
            continue
        substituted[name] = substituted.get(name, 0) + 1
    return b"\t".join(fields)
