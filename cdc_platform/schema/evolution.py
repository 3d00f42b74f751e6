"""Which source column changes a target can follow without losing or changing a value, and the DDL.

A change is *widening* when every value the old column could hold is a value of the new one,
exactly: a longer varchar or char (or text), an integer into a wider integer or into a numeric with
room for all its digits, real into double, a numeric whose integer digits and scale both grow. The
target then needs the same widening, derived with the mapping its initial DDL used (``render``), so
a widened source column is never a FAILED sink on a value that no longer fits.

Everything else (narrowing, a change of kind, a key change) is not widening: it needs a person's
review, because an ``ALTER`` could fail on rows already there or change their values.
"""

from __future__ import annotations

from cdc_platform.schema.ddl import qualified, quote
from cdc_platform.schema.model import Column
from cdc_platform.schema.types import CanonicalType, render

#: integer kinds -> (bits, the decimal digits any of their values needs)
INTEGERS = {"smallint": (16, 5), "integer": (32, 10), "bigint": (64, 19)}
#: string kinds that take every value of a shorter one
STRINGS = ("char", "varchar", "text")


def _integer_digits(t: CanonicalType) -> int | None:
    """Digits before the decimal point a numeric holds (None: unbounded)."""
    if t.precision is None:
        return None
    return t.precision - (t.scale or 0)


def widens(old: CanonicalType, new: CanonicalType) -> bool:
    """Every value of ``old`` is a value of ``new``, unchanged."""
    if old == new:
        return True
    if old.name in INTEGERS and new.name in INTEGERS:
        return INTEGERS[new.name][0] >= INTEGERS[old.name][0]
    if old.name in INTEGERS and new.name == "numeric":
        digits = _integer_digits(new)
        return digits is None or digits >= INTEGERS[old.name][1]
    if (old.name, new.name) == ("real", "double"):
        return True
    if old.name == new.name == "numeric":
        if new.precision is None:
            return True
        old_digits = _integer_digits(old)
        return (old_digits is not None and _integer_digits(new) >= old_digits
                and (new.scale or 0) >= (old.scale or 0))  # fmt: skip
    if old.name in STRINGS and new.name in STRINGS:
        if new.name == "text":
            return True
        if old.name == "text" or (old.name == "varchar" and new.name == "char"):
            return False  # text is unbounded; char pads what varchar kept as written
        return new.length is None or (old.length is not None and new.length >= old.length)
    return False


def widen_column_ddl(target_kind: str, schema: str, table: str, old: Column, new: Column) -> str | None:
    """The statement that widens the target's twin of ``old`` to hold ``new``'s values; None when
    the target's type is already the same (e.g. both map to text) or the change is not widening."""
    if not widens(old.type, new.type):
        return None
    before, after = render(target_kind, old.type), render(target_kind, new.type)
    if before == after:
        return None
    where, column = qualified(target_kind, schema, table), quote(target_kind, new.name)
    if target_kind == "postgresql":
        return f"ALTER TABLE {where} ALTER COLUMN {column} TYPE {after}"
    nullability = "NULL" if old.nullable else "NOT NULL"  # the target keeps its own nullability
    if target_kind == "sqlserver":
        return f"ALTER TABLE {where} ALTER COLUMN {column} {after} {nullability}"
    return f"ALTER TABLE {where} MODIFY {column} {after} {nullability}"
