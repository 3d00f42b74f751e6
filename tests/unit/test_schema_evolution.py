"""Which source column changes are widenings a target can follow exactly, and the DDL per target."""

from __future__ import annotations

import pytest

from cdc_platform.quality.drift import schema_drift
from cdc_platform.schema.evolution import widen_column_ddl, widens
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.types import CanonicalType as T

WIDENINGS = [
    (T("varchar", length=64), T("varchar", length=200)),
    (T("varchar", length=64), T("text")),
    (T("char", length=3), T("char", length=10)),
    (T("char", length=3), T("varchar", length=3)),
    (T("smallint"), T("integer")),
    (T("integer"), T("bigint")),
    (T("integer"), T("numeric", precision=12, scale=2)),
    (T("real"), T("double")),
    (T("numeric", precision=10, scale=2), T("numeric", precision=14, scale=4)),
    (T("numeric", precision=10, scale=2), T("numeric")),
]
NOT_WIDENINGS = [
    (T("varchar", length=200), T("varchar", length=64)),  # narrowed
    (T("text"), T("varchar", length=10_000)),  # text is unbounded
    (T("varchar", length=5), T("char", length=10)),  # char pads what varchar kept as written
    (T("bigint"), T("integer")),
    (T("bigint"), T("numeric", precision=12, scale=2)),  # 19 digits do not fit in 10
    (T("double"), T("real")),
    (T("numeric", precision=10, scale=2), T("numeric", precision=12, scale=1)),  # scale shrinks
    (T("numeric", precision=10, scale=2), T("numeric", precision=11, scale=4)),  # integer digits shrink
    (T("numeric"), T("numeric", precision=38, scale=10)),  # unbounded into bounded
    (T("integer"), T("varchar", length=20)),  # a change of kind
    (T("timestamp"), T("timestamptz")),
]


@pytest.mark.parametrize(("old", "new"), WIDENINGS, ids=lambda t: str(t))
def test_a_widening_keeps_every_value(old, new):
    assert widens(old, new)


@pytest.mark.parametrize(("old", "new"), NOT_WIDENINGS, ids=lambda t: str(t))
def test_anything_else_is_not_a_widening(old, new):
    assert not widens(old, new)


def _col(t: T, nullable: bool = True) -> Column:
    return Column("note", t, nullable, str(t))


def test_the_target_ddl_follows_each_targets_mapping_and_keeps_its_nullability():
    old, new = _col(T("varchar", length=64)), _col(T("varchar", length=200))
    assert widen_column_ddl("postgresql", "replica", "t", old, new) == (
        'ALTER TABLE "replica"."t" ALTER COLUMN "note" TYPE varchar(200)'
    )
    assert widen_column_ddl("mariadb", "dw", "t", _col(old.type, False), _col(new.type, False)) == (
        "ALTER TABLE `dw`.`t` MODIFY `note` VARCHAR(200) NOT NULL"
    )
    assert widen_column_ddl("sqlserver", "dbo", "t", old, new).startswith(
        "ALTER TABLE [dbo].[t] ALTER COLUMN [note]"
    )
    # the target already holds it (both map to text): nothing to run; not a widening: no DDL either
    assert widen_column_ddl("mariadb", "dw", "t", _col(T("text")), _col(T("text"))) is None
    assert widen_column_ddl("postgresql", "replica", "t", new, old) is None


def test_drift_proposes_the_widening_and_calls_other_type_changes_for_review():
    table = lambda c: Table("public", "t", (Column("id", T("bigint"), False, "bigint"), c), ("id",))  # noqa: E731
    widened = schema_drift(table(_col(T("varchar", length=64))), table(_col(T("varchar", length=200))),
                           {"id", "note"}, "postgresql", "replica", "t")  # fmt: skip
    assert widened.proposed_ddl == ['ALTER TABLE "replica"."t" ALTER COLUMN "note" TYPE varchar(200)']
    assert "was widened on the source" in widened.errors[0]
    changed = schema_drift(table(_col(T("integer"))), table(_col(T("varchar", length=20))),
                           {"id", "note"}, "postgresql", "replica", "t")  # fmt: skip
    assert "not a widening" in changed.errors[0] and changed.unsafe
    assert changed.proposed_ddl == [
        'ALTER TABLE "replica"."t" ALTER COLUMN "note" TYPE varchar(20) USING "note"::varchar(20)'
    ]
