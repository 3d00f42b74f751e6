"""Schema drift classification: what warns, what is an error, and the DDL proposed for review."""

from __future__ import annotations

from cdc_platform.quality.drift import schema_drift
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.types import CanonicalType

ID = Column("id", CanonicalType("bigint"), False, "bigint")
NAME = Column("name", CanonicalType("varchar", length=80), True, "character varying")


def _table(*columns: Column) -> Table:
    return Table("public", "t", columns, ("id",))


def test_no_drift_is_clean():
    d = schema_drift(_table(ID, NAME), _table(ID, NAME), {"id", "name"}, "postgresql", "replica", "t")
    assert d.clean and d.proposed_ddl == []


def test_a_nullable_added_column_warns_with_the_mapped_alter():
    note = Column("note", CanonicalType("text"), True, "text")
    d = schema_drift(_table(ID, NAME), _table(ID, NAME, note), {"id", "name"}, "mariadb", "dw", "t")
    assert d.added == ["note"] and not d.errors and d.warnings
    assert d.proposed_ddl == ["ALTER TABLE `dw`.`t` ADD COLUMN IF NOT EXISTS `note` LONGTEXT"]


def test_type_change_not_null_addition_and_a_missing_target_column_are_errors():
    wider = Column("name", CanonicalType("text"), True, "text")
    must = Column("must", CanonicalType("integer"), False, "integer")
    d = schema_drift(_table(ID, NAME), _table(ID, wider, must), {"id"}, "postgresql", "replica", "t")
    assert d.type_changed == ["name"] and "must" in d.added and d.missing_on_target == ["name"]
    assert len(d.errors) == 3


def test_a_rename_is_recognised_and_became_nullable_proposes_dropping_not_null():
    renamed = Column("full_name", CanonicalType("varchar", length=80), True, "character varying")
    d = schema_drift(_table(ID, NAME), _table(ID, renamed), {"id", "name"}, "postgresql", "replica", "t")
    assert d.renamed == [("name", "full_name")] and d.added == [] and d.dropped == []
    assert d.proposed_ddl == ['ALTER TABLE "replica"."t" RENAME COLUMN "name" TO "full_name"']
    strict = Column("name", CanonicalType("varchar", length=80), False, "character varying")
    loose = schema_drift(
        _table(ID, strict),
        _table(ID, NAME),
        {"id", "name"},
        "postgresql",
        "replica",
        "t",
        target_not_null={"id", "name"},
    )  # a target deployed with NOT NULL columns
    assert loose.nullability_changed == ["name"] and loose.errors
    assert loose.proposed_ddl == ['ALTER TABLE "replica"."t" ALTER COLUMN "name" DROP NOT NULL']


def test_a_dropped_not_null_column_proposes_letting_the_target_take_null():
    """The target keeps the column; rows inserted after the drop have no value for it."""
    price = Column("price", CanonicalType("numeric", precision=10, scale=2), False, "numeric")
    note = Column("note", CanonicalType("text"), True, "text")
    d = schema_drift(_table(ID, NAME, price, note), _table(ID, NAME), {"id", "name", "price", "note"},
                     "postgresql", "replica", "t", target_not_null={"id", "price"})  # fmt: skip
    assert d.dropped == ["price", "note"] and len(d.errors) == 1 and "NOT NULL on the target" in d.errors[0]
    assert d.proposed_ddl == ['ALTER TABLE "replica"."t" ALTER COLUMN "price" DROP NOT NULL']
    on_mariadb = schema_drift(_table(ID, price), _table(ID), {"id", "price"}, "mariadb", "dw", "t",
                              target_not_null={"id", "price"})  # fmt: skip
    assert on_mariadb.proposed_ddl == ["ALTER TABLE `dw`.`t` MODIFY `price` DECIMAL(10,2) NULL"]
    # a target the platform created has every non-key column NULL-able: nothing to run, the sink goes on
    created = schema_drift(_table(ID, price), _table(ID), {"id", "price"}, "postgresql", "replica", "t",
                           target_not_null={"id"})  # fmt: skip
    assert created.proposed_ddl == [] and created.errors == [] and created.dropped == ["price"]


def test_a_dropped_column_the_target_created_null_able_is_only_a_warning():
    """PostgreSQL numerics into MariaDB are created NULL-able (NaN has no MariaDB form), so a dropped
    NOT NULL numeric stops nothing there: no DDL, a warning."""
    price = Column("price", CanonicalType("numeric", precision=10, scale=2), False, "numeric")
    d = schema_drift(_table(ID, price), _table(ID), {"id", "price"}, "mariadb", "dw", "t", "postgresql")
    assert d.dropped == ["price"] and d.errors == [] and d.warnings and d.proposed_ddl == []
