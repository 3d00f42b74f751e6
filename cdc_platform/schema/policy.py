"""What a source schema change means for the target, in one place: safe (the platform may apply it),
or unsafe (a person reviews it), and the target DDL that follows it.

A change is *safe* when applying it can neither lose nor change a value already on the target, and
the statement is derived from the source's new column with the mapping the initial DDL used:

- a new NULL-able column (``ADD COLUMN``, NULL-able);
- a new NOT NULL column whose default is a constant (the target column gets the same default, so the
  rows the source filled with it read the same on the target);
- a widening (``schema/evolution.py``: longer strings, wider integers or numerics, real to double);
- a dropped column: the target keeps it with its values, made NULL-able when it is NOT NULL, so rows
  inserted from then on are accepted;
- a column that became NULL-able (the target's twin follows).

Everything else is *unsafe*: a narrowing or any other type change, a rename, a new NOT NULL column
without a constant default, a primary key change, a column the target lost, or a column whose new
type the platform has no mapping for. Those wait for a person (``cdc-platform apply-drift``).

Each change also says whether the sink *stalls* without its DDL (it refuses rows: a value that no
longer fits, NULL into a NOT NULL column): those are the ones the check reports as an ERROR until
they are applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from cdc_platform.schema.ddl import qualified, quote
from cdc_platform.schema.evolution import widen_column_ddl, widens
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.types import render

#: kinds whose ADD COLUMN takes IF NOT EXISTS: the sink may add a NULL-able column itself first
_ADD_IF_NOT_EXISTS = ("postgresql", "mariadb")


@dataclass(frozen=True)
class SchemaChange:
    """One column's change on the source, as the target must follow it."""

    column: str
    #: added | dropped | widened | type_changed | renamed | became_nullable | became_not_null |
    #: key_changed | missing_on_target | unreadable
    kind: str
    #: what happened, in a reader's words (e.g. "column 'note' was widened: varchar(64) -> varchar(200)")
    description: str
    safe: bool
    #: the sink refuses rows until the target follows
    stalls_sink: bool = False
    ddl: tuple[str, ...] = ()
    #: a rename's old name
    previous: str | None = None


@dataclass(frozen=True)
class TargetSide:
    """Where a source table lands, and what the target table has now."""

    kind: str
    schema: str
    table: str
    columns: frozenset[str]
    source_kind: str | None = None
    #: the target's columns that are NOT NULL, as read from it (None: not read; then as the platform's
    #: DDL creates them: only the key)
    not_null: frozenset[str] | None = None
    key: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return qualified(self.kind, self.schema, self.table)

    def may_hold_null(self, column: Column) -> bool:
        """The target's column takes NULL (the platform creates every non-key column NULL-able; a target
        deployed before that rule is read as it is)."""
        if self.not_null is not None:
            return column.name not in self.not_null
        return column.name not in self.key


@dataclass
class Classified:
    changes: list[SchemaChange] = field(default_factory=list)

    @property
    def safe(self) -> list[SchemaChange]:
        return [c for c in self.changes if c.safe]

    @property
    def unsafe(self) -> list[SchemaChange]:
        return [c for c in self.changes if not c.safe]

    @property
    def ddl(self) -> list[str]:
        return [s for c in self.changes for s in c.ddl]


def type_text(c: Column) -> str:
    return f"{c.native_type} ({c.type.name})"


# -- constant defaults ------------------------------------------------------------------------------
_NUMBER = re.compile(r"\(?(-?\d+(\.\d+)?)\)?")
_PG_STRING = re.compile(r"'((?:[^']|'')*)'(::[a-z ]+(\(\d+\))?)?")
_MYSQL_STRING = re.compile(r"'((?:[^'\\]|''|\\.)*)'")


def constant_default(source_kind: str, default: str | None) -> str | None:
    """A column default as a constant SQL literal any target reads the same way (a number, a string,
    true/false); None for no default, NULL, or an expression (``now()``, ``nextval(...)``), whose
    values on existing rows the target cannot reproduce."""
    if default is None:
        return None
    text = default.strip()
    if text.upper() == "NULL":
        return None
    if m := _NUMBER.fullmatch(text):
        return m.group(1)
    if text.lower() in ("true", "false"):
        return text.upper()
    pattern = _PG_STRING if source_kind == "postgresql" else _MYSQL_STRING
    if m := pattern.fullmatch(text):
        body = m.group(1)
        if source_kind != "postgresql":
            body = body.replace("\\'", "''")
            if "\\" in body:
                return None  # other backslash escapes: not carried over as written
        return f"'{body}'"
    return None


def _boolean_literal(target_kind: str, literal: str) -> str:
    if literal in ("TRUE", "FALSE") and target_kind != "postgresql":
        return "1" if literal == "TRUE" else "0"
    return literal


# -- statements -----------------------------------------------------------------------------------
def add_column_ddl(target: TargetSide, column: Column, default: str | None) -> str:
    exists = " IF NOT EXISTS" if target.kind in _ADD_IF_NOT_EXISTS else ""
    definition = f"{quote(target.kind, column.name)} {render(target.kind, column.type)}"
    if default is not None:
        definition += f" DEFAULT {_boolean_literal(target.kind, default)}"
    if not target.may_hold_null(column):
        definition += " NOT NULL"
    keyword = "ADD" if target.kind == "sqlserver" else "ADD COLUMN"
    return f"ALTER TABLE {target.where} {keyword}{exists} {definition}"


def allow_null_ddl(target: TargetSide, column: Column) -> str:
    """The target's column takes NULL, keeping its type and values."""
    name = quote(target.kind, column.name)
    if target.kind == "postgresql":
        return f"ALTER TABLE {target.where} ALTER COLUMN {name} DROP NOT NULL"
    if target.kind == "sqlserver":
        return f"ALTER TABLE {target.where} ALTER COLUMN {name} {render(target.kind, column.type)} NULL"
    return f"ALTER TABLE {target.where} MODIFY {name} {render(target.kind, column.type)} NULL"


def retype_ddl(target: TargetSide, new: Column) -> str:
    """The target's column converted to the new type's mapping, for review: the target's rows may
    not convert (the statement then fails and changes nothing)."""
    name, rendered = quote(target.kind, new.name), render(target.kind, new.type)
    if target.kind == "postgresql":
        return f"ALTER TABLE {target.where} ALTER COLUMN {name} TYPE {rendered} USING {name}::{rendered}"
    null = "NULL" if target.may_hold_null(new) else "NOT NULL"
    if target.kind == "sqlserver":
        return f"ALTER TABLE {target.where} ALTER COLUMN {name} {rendered} {null}"
    return f"ALTER TABLE {target.where} MODIFY {name} {rendered} {null}"


def rename_ddl(target: TargetSide, old: str, new: str) -> str:
    return f"ALTER TABLE {target.where} RENAME COLUMN {quote(target.kind, old)} TO {quote(target.kind, new)}"


# -- the rules ------------------------------------------------------------------------------------
def _added(target: TargetSide, column: Column, source_kind: str | None, default: str | None) -> SchemaChange:
    text = f"column {column.name!r} {type_text(column)} was added on the source"
    constant = constant_default(source_kind or "", default)
    if column.name in target.columns:
        return SchemaChange(column.name, "added", text + " (the target already has it)", safe=True)
    if column.nullable:
        return SchemaChange(
            column.name, "added", text, safe=True, ddl=(add_column_ddl(target, column, constant),)
        )
    if constant is not None:
        return SchemaChange(column.name, "added", f"{text} NOT NULL DEFAULT {constant}", safe=True,
                            ddl=(add_column_ddl(target, column, constant),))  # fmt: skip
    why = "with a default the target cannot reproduce" if default else "with no default"
    return SchemaChange(column.name, "added", f"{text} NOT NULL {why}: rows already on the target have no "
                        "value for it", safe=False, stalls_sink=True,
                        ddl=(add_column_ddl(target, column, None),))  # fmt: skip


def _dropped(target: TargetSide, column: Column) -> SchemaChange:
    if column.name not in target.columns:
        return SchemaChange(column.name, "dropped", f"column {column.name!r} was dropped on the source (and on "
                            "the target)", safe=True)  # fmt: skip
    if target.may_hold_null(column):
        return SchemaChange(column.name, "dropped", f"column {column.name!r} was dropped on the source: the "
                            "target keeps it with its last values", safe=True)  # fmt: skip
    return SchemaChange(column.name, "dropped", f"column {column.name!r} was dropped on the source and is NOT NULL "
                        "on the target: the target keeps it, NULL-able, so new rows are accepted", safe=True,
                        stalls_sink=True, ddl=(allow_null_ddl(target, column),))  # fmt: skip


def _retyped(target: TargetSide, old: Column, new: Column) -> SchemaChange:
    change = f"{type_text(old)} -> {type_text(new)}"
    held = replace(old, nullable=target.may_hold_null(old))  # MODIFY keeps the target's own nullability
    statement = widen_column_ddl(target.kind, target.schema, target.table, held, new)
    if statement is not None:
        return SchemaChange(new.name, "widened", f"column {new.name!r} was widened on the source ({change})",
                            safe=True, stalls_sink=True, ddl=(statement,))  # fmt: skip
    if widens(old.type, new.type):
        return SchemaChange(new.name, "widened", f"column {new.name!r} was widened on the source ({change}); the "
                            "target's column already holds every value", safe=True)  # fmt: skip
    return SchemaChange(new.name, "type_changed", f"column {new.name!r} changed type on the source: {change} (not "
                        "a widening: the target's rows may not convert)", safe=False, stalls_sink=True,
                        ddl=(retype_ddl(target, new),))  # fmt: skip


def classify(
    stored: Table,
    now: Table,
    target: TargetSide,
    source_kind: str | None = None,
    defaults: dict[str, str | None] | None = None,
) -> Classified:
    """The changes from ``stored`` (the table as deployed) to ``now`` (the source table today).

    ``defaults``: the source's column defaults as written (only added columns' are read)."""
    if not target.key:
        target = replace(target, key=stored.primary_key)
    if target.kind == "s3":  # verdicts as for a database; the files need no statement (``_as_files``)
        files = classify(stored, now, replace(target, kind="postgresql"), source_kind, defaults)
        after = {c.name: c for c in now.columns}
        files.changes = [_as_files(c, after.get(c.column), defaults or {}) for c in files.changes]
        return files
    result = Classified()
    before = {c.name: c for c in stored.columns if not c.kept}
    after = {c.name: c for c in now.columns}
    added = [after[n] for n in after if n not in before]
    dropped = [before[n] for n in before if n not in after]
    for old in list(dropped):
        twin = next((new for new in added if new.type == old.type and new.nullable == old.nullable), None)
        if twin is None:
            continue
        result.changes.append(SchemaChange(
            twin.name, "renamed", f"column {old.name!r} looks renamed to {twin.name!r} (same type): the sink "
            f"would add {twin.name!r} and leave {old.name!r} stale; rename the target column to match",
            safe=False, ddl=(rename_ddl(target, old.name, twin.name),), previous=old.name))  # fmt: skip
        dropped.remove(old)
        added.remove(twin)
    for column in added:
        result.changes.append(_added(target, column, source_kind, (defaults or {}).get(column.name)))
    for column in dropped:
        result.changes.append(_dropped(target, column))
    for name in [n for n in before if n in after]:
        old, new = before[name], after[name]
        if old.type != new.type:
            result.changes.append(_retyped(target, old, new))
        if old.nullable != new.nullable:
            if new.nullable and not target.may_hold_null(old):
                result.changes.append(SchemaChange(name, "became_nullable", f"column {name!r} became NULL-able "
                                      "on the source; the target's column follows", safe=True, stalls_sink=True,
                                      ddl=(allow_null_ddl(target, new),)))  # fmt: skip
            elif not new.nullable:
                result.changes.append(SchemaChange(name, "became_not_null", f"column {name!r} became NOT NULL "
                                      "on the source (the target accepts it as it is)", safe=True))  # fmt: skip
    if stored.primary_key != now.primary_key:
        result.changes.append(SchemaChange(
            ",".join(now.primary_key), "key_changed", f"the primary key changed on the source: "
            f"({', '.join(stored.primary_key)}) -> ({', '.join(now.primary_key) or 'none'}); upserts and deletes "
            "follow the key, so the target's key must be changed by a person", safe=False))  # fmt: skip
    for name in [n for n in before if n in after and n not in target.columns]:
        result.changes.append(SchemaChange(name, "missing_on_target", f"the target table lacks column {name!r} "
                              "that the pipeline writes", safe=False, stalls_sink=True))  # fmt: skip
    return result


def _as_files(change: SchemaChange, column: Column | None, defaults: dict[str, str | None]) -> SchemaChange:
    """An S3 target has no DDL: the files written from now on carry the new shape, and readers unify
    old and new files (a new column is NULL in the older ones). So a new column whose default filled
    the source's existing rows is unsafe there (the older files cannot show that value: the table
    needs a re-load); the rest keeps its verdict."""
    if change.kind == "added" and column is not None and defaults.get(column.name) is not None:
        return SchemaChange(change.column, "added", f"{change.description}, with a default that filled the "
                            "source's existing rows: the files written before cannot show it (re-load the "
                            "table: materialize its asset)", safe=False, stalls_sink=True)  # fmt: skip
    return SchemaChange(change.column, change.kind, change.description, change.safe,
                        stalls_sink=not change.safe, previous=change.previous)  # fmt: skip


def unreadable(problem: str) -> SchemaChange:
    """The source table can no longer be read as the platform maps it (a column of a type it has no
    mapping for, the table gone): never followed blindly."""
    return SchemaChange("", "unreadable", f"the source table cannot be read as the platform maps it: {problem}",
                        safe=False, stalls_sink=True)  # fmt: skip
