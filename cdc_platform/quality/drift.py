"""Schema drift: the source table now, against the table the pipeline was deployed with (recorded by
its last run; the stored catalog for a deploy older than that record), and against the target table.

- A column **added** on the source (nullable) is a WARN, with the exact ``ALTER TABLE`` that gives
  the target the platform's mapping of it. The platform never applies it by itself.
- A column **widened** on the source (a longer string, a wider integer or numeric, real to double;
  ``schema/evolution.py``) is an ERROR with the ``ALTER`` that widens the target's column the same
  way, until it is applied: the sink refuses the values that no longer fit. When the target's type
  already holds them (both map to text, say), it is a WARN with no DDL.
- A column added NOT NULL, any other **type change**, and a column that became NULL-able while the
  target's twin is NOT NULL are ERRORs. The sink cannot apply them, or would apply them with another
  mapping.
- A **dropped** column is a WARN: updates stop touching the target's column, which keeps its last
  values. A dropped column that is NOT NULL on the target is an ERROR with the DDL that lets it take
  NULL: rows inserted from then on have no value for it. A dropped and an added column of the same type look like a **rename**, and are reported
  as one.
- A target that lacks a column the catalog has is an ERROR.

Once ``cdc-platform apply-drift`` has applied a change, it records the table as deployed anew, and
the check passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdc_platform.audit import record
from cdc_platform.db import engine_for, mysql_connect, pg_connect
from cdc_platform.pipeline.deployed import deployed_tables
from cdc_platform.schema.ddl import qualified, quote
from cdc_platform.schema.discovery import column_names, describe_table
from cdc_platform.schema.evolution import widen_column_ddl, widens
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.rules import rule_for
from cdc_platform.schema.types import render


@dataclass
class Drift:
    added: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    type_changed: list[str] = field(default_factory=list)
    nullability_changed: list[str] = field(default_factory=list)
    missing_on_target: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the statements that would bring the target in line (for review; never run by the check)
    proposed_ddl: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.errors or self.warnings)


def _type_text(c: Column) -> str:
    return f"{c.native_type} ({c.type.name})"


def _allow_null(target_kind: str, target_schema: str, target_table: str, column: Column) -> str:
    """The statement that lets the target's column take NULL, keeping its type and values."""
    where, name = qualified(target_kind, target_schema, target_table), quote(target_kind, column.name)
    if target_kind == "postgresql":
        return f"ALTER TABLE {where} ALTER COLUMN {name} DROP NOT NULL"
    if target_kind == "sqlserver":
        return f"ALTER TABLE {where} ALTER COLUMN {name} {render(target_kind, column.type)} NULL"
    return f"ALTER TABLE {where} MODIFY {name} {render(target_kind, column.type)} NULL"


def schema_drift(stored: Table, now: Table, target_columns: set[str], target_kind: str, target_schema: str,
                 target_table: str, source_kind: str | None = None) -> Drift:  # fmt: skip
    """``source_kind`` given, a column a value rule may turn into NULL counts as NULL-able on the
    target, as the target's DDL created it (``create_table_sql``)."""
    drift = Drift()
    before = {c.name: c for c in stored.columns}
    after = {c.name: c for c in now.columns}
    added = [after[n] for n in after if n not in before]
    dropped = [before[n] for n in before if n not in after]
    for old in list(dropped):
        twin = next((new for new in added if new.type == old.type and new.nullable == old.nullable), None)
        if twin is not None:
            drift.renamed.append((old.name, twin.name))
            drift.errors.append(f"column {old.name!r} looks renamed to {twin.name!r} (same type): the sink would "
                                f"add {twin.name!r} and leave {old.name!r} stale; rename the target column to match")  # fmt: skip
            drift.proposed_ddl.append(
                f"ALTER TABLE {qualified(target_kind, target_schema, target_table)} RENAME COLUMN "
                f"{quote(target_kind, old.name)} TO {quote(target_kind, twin.name)}"
            )
            dropped.remove(old)
            added.remove(twin)
    for column in added:
        drift.added.append(column.name)
        ddl = (f"ALTER TABLE {qualified(target_kind, target_schema, target_table)} ADD COLUMN "
               f"{quote(target_kind, column.name)} {render(target_kind, column.type)}")  # fmt: skip
        drift.proposed_ddl.append(ddl)
        if column.nullable:
            drift.warnings.append(f"column {column.name!r} {_type_text(column)} was added on the source")
        else:
            drift.errors.append(f"column {column.name!r} {_type_text(column)} was added NOT NULL on the source: "
                                "rows already on the target have no value for it")  # fmt: skip
    for column in dropped:
        drift.dropped.append(column.name)
        if column.nullable or (source_kind is not None and rule_for(source_kind, target_kind, column.type)):
            drift.warnings.append(
                f"column {column.name!r} was dropped on the source: the target keeps its last values"
            )
            continue
        # the target keeps the column, but rows inserted from now on have no value for it
        drift.errors.append(f"column {column.name!r} was dropped on the source and is NOT NULL on the target: "
                            "new rows are refused until it accepts NULL (proposed DDL; the target keeps the "
                            "values it has)")  # fmt: skip
        drift.proposed_ddl.append(_allow_null(target_kind, target_schema, target_table, column))
    for name in sorted(set(before) & set(after)):
        old, new = before[name], after[name]
        if old.type != new.type:
            drift.type_changed.append(name)
            change = f"{_type_text(old)} -> {_type_text(new)}"
            widening = widen_column_ddl(target_kind, target_schema, target_table, old, new)
            if widening is not None:
                drift.proposed_ddl.append(widening)
                drift.errors.append(f"column {name!r} was widened on the source ({change}): the target's column "
                                    "refuses the values that no longer fit until it is widened the same way "
                                    "(proposed DDL; `cdc-platform apply-drift`)")  # fmt: skip
            elif widens(old.type, new.type):
                drift.warnings.append(f"column {name!r} was widened on the source ({change}); the target's "
                                      "column already holds every value")  # fmt: skip
            else:
                drift.errors.append(f"column {name!r} changed type on the source: {change} (not a widening: "
                                    "review it, the target's rows may not convert)")  # fmt: skip
        if old.nullable != new.nullable:
            drift.nullability_changed.append(name)
            if new.nullable:
                drift.errors.append(
                    f"column {name!r} became NULL-able on the source; the target's column is NOT NULL"
                )
                drift.proposed_ddl.append(_allow_null(target_kind, target_schema, target_table, new))
            else:
                drift.warnings.append(
                    f"column {name!r} became NOT NULL on the source (the target accepts it)"
                )
    for name in sorted(set(before) - target_columns):
        drift.missing_on_target.append(name)
        drift.errors.append(f"the target table lacks column {name!r} that the pipeline writes")
    return drift


def drift_baseline(pipeline: str, qualified_name: str, catalog_table: Table | None) -> Table | None:
    """What the source is compared with: the table as last deployed, else the stored catalog's."""

    return deployed_tables(pipeline).get(qualified_name) or catalog_table


def measure_drift(specs, spec, stored: Table, target_table: str) -> Drift:
    """Read the source table and the target's columns now and compare them with the stored table."""

    source, target = specs.connection(spec.source), specs.connection(spec.target)
    source_engine, target_engine = engine_for(source, specs.directory), engine_for(target, specs.directory)
    try:
        now = describe_table(source_engine, source.kind.value, stored.schema, stored.name)
        target_columns = set(column_names(target_engine, target.kind.value, spec.target_schema, target_table))
    finally:
        source_engine.dispose()
        target_engine.dispose()
    return schema_drift(stored, now, target_columns, target.kind.value, spec.target_schema, target_table,
                        source.kind.value)  # fmt: skip


def apply_ddl(specs, spec, statements: list[str]) -> None:
    """Run reviewed statements on the pipeline's target, each recorded in the audit log."""

    target = specs.connection(spec.target)
    if target.kind.value == "postgresql":
        with pg_connect(target, specs.directory) as db, db.transaction():
            for statement in statements:
                db.execute(statement)
    else:
        db = mysql_connect(target, specs.directory, database="", autocommit=True)
        try:
            with db.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            db.close()
    for statement in statements:
        record("apply_ddl", f"connection {spec.target}", pipeline=spec.name, detail=statement)
