"""The schema-change policy, one test per rule: which source changes are safe (the platform applies
them) and which wait for review, with the target DDL each target kind gets."""

from __future__ import annotations

import pytest

from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.policy import TargetSide, classify, constant_default
from cdc_platform.schema.types import CanonicalType as T

ID = Column("id", T("bigint"), False, "bigint")
NOTE = Column("note", T("varchar", length=64), True, "character varying")


def _table(*columns: Column, key: tuple[str, ...] = ("id",)) -> Table:
    return Table("public", "t", columns, key)


def _target(
    kind: str = "postgresql", *columns: str, source_kind: str = "postgresql", not_null=None
) -> TargetSide:
    return TargetSide(kind, "replica", "t", frozenset(columns or ("id", "note")), source_kind,
                      None if not_null is None else frozenset(not_null))  # fmt: skip


def _only(stored: Table, now: Table, target: TargetSide | None = None, defaults=None):
    changes = classify(stored, now, target or _target(), "postgresql", defaults).changes
    assert len(changes) == 1, changes
    return changes[0]


def test_a_new_null_able_column_is_safe_and_added_with_the_platforms_mapping():
    c = _only(
        _table(ID, NOTE),
        _table(ID, NOTE, Column("note2", T("numeric", precision=12, scale=2), True, "numeric")),
    )
    assert c.safe and not c.stalls_sink
    assert c.ddl == ('ALTER TABLE "replica"."t" ADD COLUMN IF NOT EXISTS "note2" numeric(12,2)',)


def test_a_new_not_null_column_with_a_constant_default_is_safe_and_keeps_the_default():
    flag = Column("flag", T("integer"), False, "integer")
    c = _only(_table(ID, NOTE), _table(ID, NOTE, flag), defaults={"flag": "7"})
    assert c.safe and c.ddl == (
        'ALTER TABLE "replica"."t" ADD COLUMN IF NOT EXISTS "flag" integer DEFAULT 7',
    )
    on_mariadb = classify(_table(ID, NOTE), _table(ID, NOTE, flag), _target("mariadb", source_kind="postgresql"),
                          "postgresql", {"flag": "7"}).changes[0]  # fmt: skip
    assert on_mariadb.ddl == ("ALTER TABLE `replica`.`t` ADD COLUMN IF NOT EXISTS `flag` INT DEFAULT 7",)


@pytest.mark.parametrize("default", [None, "now()", "nextval('t_seq'::regclass)"])
def test_a_new_not_null_column_without_a_constant_default_is_unsafe(default):
    stamp = Column("at", T("timestamptz"), False, "timestamp with time zone")
    c = _only(_table(ID, NOTE), _table(ID, NOTE, stamp), defaults={"at": default})
    assert not c.safe and "NOT NULL" in c.description


@pytest.mark.parametrize(
    ("old", "new", "ddl"),
    [
        (T("varchar", length=64), T("varchar", length=200), 'ALTER COLUMN "note" TYPE varchar(200)'),
        (T("numeric", precision=10, scale=2), T("numeric", precision=14, scale=4), "TYPE numeric(14,4)"),
        (T("integer"), T("bigint"), 'ALTER COLUMN "note" TYPE bigint'),
        (T("real"), T("double"), "TYPE double precision"),
    ],
    ids=["varchar", "numeric", "int-bigint", "real-double"],
)
def test_a_widening_is_safe_and_the_target_is_widened_the_same_way(old, new, ddl):
    c = _only(
        _table(ID, Column("note", old, True, str(old))), _table(ID, Column("note", new, True, str(new)))
    )
    assert c.safe and c.stalls_sink and c.kind == "widened" and ddl in c.ddl[0]


@pytest.mark.parametrize(
    ("old", "new"),
    [(T("varchar", length=200), T("varchar", length=64)), (T("integer"), T("varchar", length=20)),
     (T("numeric", precision=10, scale=2), T("numeric", precision=12, scale=1))],
    ids=["narrowed", "kind-changed", "scale-shrunk"],
)  # fmt: skip
def test_a_narrowing_or_any_other_type_change_is_unsafe(old, new):
    c = _only(
        _table(ID, Column("note", old, True, str(old))), _table(ID, Column("note", new, True, str(new)))
    )
    assert not c.safe and c.kind == "type_changed" and len(c.ddl) == 1  # proposed for review only


def test_a_dropped_column_is_safe_the_target_keeps_it_and_a_not_null_one_takes_null():
    price = Column("price", T("numeric", precision=10, scale=2), False, "numeric")
    deployed_earlier = _target("postgresql", "id", "note", "price", not_null={"id", "price"})
    c = _only(_table(ID, NOTE, price), _table(ID, NOTE), deployed_earlier)
    assert (
        c.safe
        and c.stalls_sink
        and c.ddl == ('ALTER TABLE "replica"."t" ALTER COLUMN "price" DROP NOT NULL',)
    )
    created = _only(_table(ID, NOTE, price), _table(ID, NOTE), _target("postgresql", "id", "note", "price"))
    assert created.safe and not created.stalls_sink and created.ddl == ()  # NULL-able already
    kept = _only(_table(ID, NOTE), _table(ID))
    assert kept.safe and kept.ddl == () and "keeps it" in kept.description


def test_a_rename_is_unsafe_with_the_rename_proposed():
    renamed = Column("memo", NOTE.type, True, NOTE.native_type)
    c = _only(_table(ID, NOTE), _table(ID, renamed))
    assert not c.safe and c.kind == "renamed" and c.previous == "note"
    assert c.ddl == ('ALTER TABLE "replica"."t" RENAME COLUMN "note" TO "memo"',)


def test_a_key_change_is_unsafe():
    c = _only(_table(ID, NOTE), _table(ID, NOTE, key=("id", "note")))
    assert not c.safe and c.kind == "key_changed"


def test_a_column_that_became_null_able_is_safe_and_the_target_follows():
    strict = Column("note", NOTE.type, False, NOTE.native_type)
    c = _only(_table(ID, strict), _table(ID, NOTE), _target(not_null={"id", "note"}))
    assert c.safe and c.ddl == ('ALTER TABLE "replica"."t" ALTER COLUMN "note" DROP NOT NULL',)
    assert classify(_table(ID, strict), _table(ID, NOTE), _target(), "postgresql").changes == []


def test_a_column_the_target_lost_is_unsafe():
    c = _only(_table(ID, NOTE), _table(ID, NOTE), _target("postgresql", "id"))
    assert not c.safe and c.kind == "missing_on_target"


@pytest.mark.parametrize(
    ("kind", "written", "literal"),
    [("postgresql", "7", "7"), ("postgresql", "(-5)", "-5"), ("postgresql", "'x'::text", "'x'"),
     ("postgresql", "'it''s'::character varying", "'it''s'"), ("postgresql", "true", "TRUE"),
     ("mariadb", "'x'", "'x'"), ("mariadb", "0.5", "0.5"), ("mariadb", "NULL", None),
     ("postgresql", "now()", None), ("mariadb", "current_timestamp()", None), ("postgresql", None, None)],
)  # fmt: skip
def test_only_constant_defaults_are_carried_to_the_target(kind, written, literal):
    assert constant_default(kind, written) == literal


def test_a_type_change_proposes_converting_the_target_column_for_review():
    old, new = (
        Column("qty", T("bigint"), True, "bigint"),
        Column("qty", T("varchar", length=30), True, "varchar"),
    )
    c = _only(_table(ID, old), _table(ID, new), _target("postgresql", "id", "qty"))
    assert c.ddl == (
        'ALTER TABLE "replica"."t" ALTER COLUMN "qty" TYPE varchar(30) USING "qty"::varchar(30)',
    )
    on_mariadb = _only(_table(ID, old), _table(ID, new), _target("mariadb", "id", "qty"))
    assert on_mariadb.ddl == ("ALTER TABLE `replica`.`t` MODIFY `qty` VARCHAR(30) NULL",)


def test_an_s3_target_gets_no_ddl_and_a_default_filled_column_needs_a_re_load():
    """Files carry the new shape from the next flush; the older files cannot show a default the source
    wrote into its existing rows."""
    s3 = TargetSide("s3", "raw", "t", frozenset({"id", "note"}), "postgresql")
    note2 = Column("note2", T("text"), True, "text")
    widened = Column("note", T("varchar", length=200), True, "character varying")
    changes = classify(_table(ID, NOTE), _table(ID, widened, note2), s3, "postgresql").changes
    assert all(c.safe and c.ddl == () and not c.stalls_sink for c in changes), changes
    flag = Column("flag", T("integer"), False, "integer")
    (filled,) = classify(_table(ID, NOTE), _table(ID, NOTE, flag), s3, "postgresql", {"flag": "7"}).changes
    assert not filled.safe and "materialize" in filled.description
