"""The reconciliation's pieces that need no database: canonical texts, the pair's rules on the source
side, float canonicalization, chunk predicates, and the tables it refuses (with the reason)."""

from __future__ import annotations

import struct

import pytest

from cdc_platform.quality import canonical as cn
from cdc_platform.quality.checksum import Chunking, Layout, UncheckableTable
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.types import CanonicalType


def _table(*columns: Column, key: tuple[str, ...] = ("id",)) -> Table:
    return Table("public", "t", (Column("id", CanonicalType("bigint"), False, "bigint"), *columns), key)


def test_the_pairs_rules_apply_to_the_source_side_only():
    numeric = CanonicalType("numeric")  # unbounded: beyond DECIMAL(65,30) becomes NULL on MySQL
    ruled = cn.source_text("postgresql", "mariadb", numeric, '"n"')
    assert ruled.startswith("CASE WHEN") and "THEN NULL ELSE trim_scale" in ruled
    assert cn.source_text("postgresql", "postgresql", numeric, '"n"') == 'trim_scale("n")::text'
    assert cn.target_text("mariadb", numeric, "`n`").startswith("IF(LOCATE('.'")
    text = cn.source_text("mariadb", "postgresql", CanonicalType("text"), "`v`")
    assert text.startswith("REPLACE(") and "CHAR(0 USING utf8mb4)" in text  # NUL characters stripped
    zero = cn.source_text("mariadb", "postgresql", CanonicalType("date"), "`d`")
    assert "MONTH(`d`) = 0" in zero and "THEN NULL" in zero


def test_timestamps_compare_as_epoch_microseconds_on_both_engines():
    ts = CanonicalType("timestamptz")
    assert "extract(epoch FROM" in cn.pg_text(ts, '"t"') and "isfinite" in cn.pg_text(ts, '"t"')
    assert cn.mysql_text(ts, "`t`").startswith("CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00'")


def test_floats_are_canonical_in_python_with_the_rules_of_the_pair():
    real = CanonicalType("real")
    as_float32 = struct.unpack("f", struct.pack("f", 0.1))[0]
    assert cn.float_text(0.1, real, False) == repr(as_float32) == cn.float_text(as_float32, real, False)
    double = CanonicalType("double")
    assert cn.float_text(float("nan"), double, True) is None  # NaN -> NULL on MySQL
    assert cn.float_text(float("-inf"), double, True) is None
    assert cn.float_text(-0.0, double, True) == "0.0"  # -0 -> 0 on MySQL
    assert (
        cn.float_text(-0.0, double, False) == "-0.0" and cn.float_text(float("nan"), double, False) == "nan"
    )
    assert cn.wrap(None) == "~" and cn.wrap("x") == ":x"


def test_integer_keys_chunk_by_ranges_other_keys_by_hash():
    layout = Layout.of(_table(), {"id"}, "postgresql", "mariadb")
    chunks = Chunking(buckets=10, low=1, width=100)
    assert (
        chunks.predicate(layout, "source", [0, 2])
        == '("id" >= 1 AND "id" < 101) OR ("id" >= 201 AND "id" < 301)'
    )
    assert chunks.predicate(layout, "target", [-1]) == "(`id` < 1)"  # keys below the source's lowest
    text_key = Layout.of(_table(Column("code", CanonicalType("text"), False, "text"), key=("code",)), {"id", "code"},
                         "postgresql", "postgresql")  # fmt: skip
    hashed = Chunking(buckets=4).predicate(text_key, "source", [3])
    assert "md5(" in hashed and "% 4" in hashed and hashed.endswith("IN (3)")


def test_tables_it_cannot_check_say_why():
    with pytest.raises(UncheckableTable, match="no primary key"):
        Layout.of(_table(key=()), {"id"}, "postgresql", "postgresql")
    with pytest.raises(UncheckableTable, match="not implemented for sqlserver"):
        Layout.of(_table(), {"id"}, "postgresql", "sqlserver")
    with pytest.raises(UncheckableTable, match=r"lacks key column\(s\) \['id'\]"):
        Layout.of(_table(), {"other"}, "postgresql", "postgresql")
    partial = Layout.of(
        _table(Column("x", CanonicalType("double"), True, "double")), {"id"}, "postgresql", "postgresql"
    )
    assert [c.name for c in partial.columns] == ["id"] and partial.in_database
