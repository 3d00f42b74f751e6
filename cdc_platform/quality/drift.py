"""Schema drift: the source table now, against the table the pipeline was deployed with (recorded by
its last run; the stored catalog for a deploy older than that record), and against the target table.

What each change means is decided in one place, ``schema/policy.py``: safe (the platform applies it
when the pipeline's ``schema_changes.safe`` is ``apply``) or unsafe (held for review), with the target
DDL derived by the platform's own mapping. This check reports what is not applied yet:

- an ERROR for an unsafe change, and for a safe one the sink cannot run without (a widened column, a
  dropped NOT NULL column), until it is applied;
- a WARN for the other safe changes (a new NULL-able column, a dropped column the target keeps);
- passing once applied, naming the target's columns the source no longer has as *kept*: the target
  keeps a dropped column and its values on purpose.

``cdc-platform apply-drift`` applies what is proposed and records the table as deployed anew.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdc_platform.audit import record
from cdc_platform.db import engine_for, mysql_connect, pg_connect
from cdc_platform.pipeline.deployed import deployed_tables
from cdc_platform.schema.discovery import (
    DiscoveryError,
    column_defaults,
    describe_table,
    target_nullability,
)
from cdc_platform.schema.model import Table
from cdc_platform.schema.policy import SchemaChange, TargetSide, classify, unreadable


@dataclass
class Drift:
    changes: list[SchemaChange] = field(default_factory=list)
    #: target columns the source no longer has: kept on purpose, with their last values
    kept: list[str] = field(default_factory=list)

    def _named(self, *kinds: str) -> list[str]:
        return [c.column for c in self.changes if c.kind in kinds]

    @property
    def added(self) -> list[str]:
        return self._named("added")

    @property
    def dropped(self) -> list[str]:
        return self._named("dropped")

    @property
    def renamed(self) -> list[tuple[str, str]]:
        return [(c.previous or "", c.column) for c in self.changes if c.kind == "renamed"]

    @property
    def type_changed(self) -> list[str]:
        return self._named("widened", "type_changed")

    @property
    def nullability_changed(self) -> list[str]:
        return self._named("became_nullable", "became_not_null")

    @property
    def missing_on_target(self) -> list[str]:
        return self._named("missing_on_target")

    @property
    def errors(self) -> list[str]:
        return [c.description for c in self.changes if not c.safe or c.stalls_sink]

    @property
    def warnings(self) -> list[str]:
        return [c.description for c in self.changes if c.safe and not c.stalls_sink]

    @property
    def proposed_ddl(self) -> list[str]:
        """The statements that bring the target in line (never run by the check)."""
        return [s for c in self.changes for s in c.ddl]

    @property
    def unsafe(self) -> list[SchemaChange]:
        return [c for c in self.changes if not c.safe]

    @property
    def clean(self) -> bool:
        return not self.changes


def schema_drift(stored: Table, now: Table, target_columns: set[str], target_kind: str, target_schema: str,
                 target_table: str, source_kind: str | None = None,
                 defaults: dict[str, str | None] | None = None,
                 target_not_null: set[str] | None = None) -> Drift:  # fmt: skip
    """``target_not_null``: the target's NOT NULL columns as read from it (None: as the platform's DDL
    creates them, only the key)."""
    target = TargetSide(target_kind, target_schema, target_table, frozenset(target_columns), source_kind,
                        None if target_not_null is None else frozenset(target_not_null))  # fmt: skip
    changes = classify(stored, now, target, source_kind, defaults).changes
    present = {c.name for c in now.columns}
    return Drift(changes, sorted(target_columns - present - {c.column for c in changes}))


def drift_baseline(pipeline: str, qualified_name: str, catalog_table: Table | None) -> Table | None:
    """What the source is compared with: the table as last deployed, else the stored catalog's."""

    return deployed_tables(pipeline).get(qualified_name) or catalog_table


def _source_now(specs, spec, stored: Table) -> tuple[Table, dict[str, str | None]] | Drift:
    """The source table now and, when a column was added, the source's column defaults; a Drift
    when the table can no longer be read as the platform maps it."""

    source = specs.connection(spec.source)
    engine = engine_for(source, specs.directory)
    try:
        try:
            now = describe_table(engine, source.kind.value, stored.schema, stored.name)
        except DiscoveryError as exc:
            return Drift([unreadable(str(exc))])
        added = {c.name for c in now.columns} - {c.name for c in stored.columns}
        return now, column_defaults(engine, source.kind.value, stored.schema, stored.name) if added else {}
    finally:
        engine.dispose()


def measure_drift(specs, spec, stored: Table, target_table: str) -> Drift:
    """Read the source table and the target's columns now and compare them with the stored table."""

    found = _source_now(specs, spec, stored)
    if isinstance(found, Drift):
        return found
    now, defaults = found
    source, target = specs.connection(spec.source), specs.connection(spec.target)
    target_engine = engine_for(target, specs.directory)
    try:
        nullable = target_nullability(target_engine, target.kind.value, spec.target_schema, target_table)
    finally:
        target_engine.dispose()
    not_null = {name for name, may_be_null in nullable.items() if not may_be_null}
    return schema_drift(stored, now, set(nullable), target.kind.value, spec.target_schema, target_table,
                        source.kind.value, defaults, not_null)  # fmt: skip


def measure_file_drift(specs, spec, stored: Table) -> Drift:
    """The same comparison for an S3 target: its files hold the deployed columns (a dropped column is
    kept in the older files, NULL in the newer); no DDL, only the new shape for the next files."""

    found = _source_now(specs, spec, stored)
    if isinstance(found, Drift):
        return found
    now, defaults = found
    source = specs.connection(spec.source)
    columns = {c.name for c in stored.columns}
    drift = schema_drift(
        stored, now, columns, "s3", spec.target_schema, stored.name, source.kind.value, defaults
    )
    drift.kept = sorted(c.name for c in stored.columns if c.kept)  # dropped on the source, kept in the files
    return drift


def apply_ddl(specs, spec, statements: list[str], why: str | None = None) -> None:
    """Run statements on the pipeline's target (in one transaction on PostgreSQL), each recorded in the
    audit log with ``why`` (the source change it follows)."""

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
        record(
            "apply_ddl",
            f"connection {spec.target}",
            pipeline=spec.name,
            detail=f"{statement} -- {why}" if why else statement,
        )
