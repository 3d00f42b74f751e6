"""The parts of the MariaDB -> PostgreSQL and MariaDB -> MariaDB text copies that need no server:
the marks of substituted values, the SQL's independence from ``sql_mode``, and how LOAD DATA assigns the lines. The values themselves are checked against MariaDB and PostgreSQL
in tests/integration/test_mysql_copy_text.py and test_value_fidelity.py."""

from __future__ import annotations

import pytest

from cdc_platform.pipeline.mysql_copy_text import (
    CopyTextSelect,
    copy_text_select,
    load_data_columns,
    take_substitutions,
)
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.types import CanonicalType

NAMES = ("smallint", "integer", "bigint", "real", "double", "boolean", "year", "varchar", "char", "text", "json",
         "date", "duration", "timestamp", "timestamptz", "binary", "uuid")  # fmt: skip


def _table() -> Table:
    columns = [Column(f"c_{n}", CanonicalType(n, length=8 if n in ("varchar", "char") else None), True, n)
               for n in NAMES]  # fmt: skip
    columns += [Column("c_bit", CanonicalType("bit", length=5), True, "bit(5)"),
                Column("c_numeric", CanonicalType("numeric", precision=12, scale=2), False, "decimal(12,2)")]  # fmt: skip
    return Table("db", "t", tuple(columns), ("c_integer",))


def test_the_select_uses_no_quoted_backslash_and_counts_dates_and_text():
    select = copy_text_select(_table())
    assert "\\" not in select.sql  # hex literals only: NO_BACKSLASH_ESCAPES cannot change its meaning
    names = {c.name: i for i, c in enumerate(_table().columns)}
    assert select.counted == {
        names[n]: n for n in ("c_varchar", "c_char", "c_text", "c_date", "c_timestamp", "c_timestamptz")
    }
    assert select.nul_dropped == {names[n] for n in ("c_varchar", "c_char", "c_text")}
    assert "LOCATE" not in select.sql  # NUL is found by the copy, not by the server
    assert "`c_numeric`" in select.sql and "IFNULL(`c_numeric`" not in select.sql  # NOT NULL needs no \N


def test_marks_and_nul_are_counted_and_replaced_and_plain_blocks_pass_untouched():
    select = CopyTextSelect("", {1: "d", 2: "t"}, frozenset({2}))
    # a text holding the mark's bytes is escaped (\\N!), so it is no mark; NUL in a field the
    # rule does not cover (0) is left for the target to judge
    plain = b"1\t2020-01-01\tx\\\\N!y\n2\t\\N\t\\N\n"
    substituted: dict[str, int] = {}
    assert take_substitutions(plain, select, substituted) == plain and substituted == {}
    marked = b"1\t\\N!\tx\x00y\x00\n2\t2020-01-01\tz\n3\t\\N!\tq\\\\N!\n4\x00\t2020-01-02\tok\n"
    assert take_substitutions(marked, select, substituted) == (
        b"1\t\\N\txy\n2\t2020-01-01\tz\n3\t\\N\tq\\\\N!\n4\x00\t2020-01-02\tok\n"
    )
    assert substituted == {"d": 2, "t": 1}


def test_for_a_mysql_target_the_lines_keep_mysql_values_and_count_only_dates():
    select = copy_text_select(_table(), "mariadb")
    assert "\\" not in select.sql
    # PostgreSQL's forms are not used: no UTC offset, no 't'/'f', no bytea prefix, no bit string
    assert "'+00'" not in select.sql and "'t'" not in select.sql and "LPAD(BIN" not in select.sql
    assert "X'5c5c78'" not in select.sql and "HEX(`c_binary`)" in select.sql
    # NUL is a PostgreSQL limit: a MySQL target keeps it, so only zero dates are flagged
    names = {c.name: i for i, c in enumerate(_table().columns)}
    assert select.counted == {names[n]: n for n in ("c_date", "c_timestamp", "c_timestamptz")}
    assert select.nul_dropped == frozenset()


def test_load_data_assigns_hex_bits_and_years_as_values_not_text():
    columns, sets = load_data_columns(_table())
    assert "`c_varchar`" in columns and "`c_binary`" not in columns
    by_var = dict(zip([c for c in columns if c.startswith("@")], sets, strict=True))
    assert any(v.startswith("@") and by_var[v] == f"`c_binary` = UNHEX({v})" for v in by_var)
    assert sorted(s.split(" = ")[0] for s in sets) == ["`c_binary`", "`c_bit`", "`c_year`"]
    assert all("CAST(" in s and "AS UNSIGNED)" in s for s in sets if not s.startswith("`c_binary`"))


def test_no_text_form_for_other_targets():
    with pytest.raises(ValueError, match="sqlserver"):
        copy_text_select(_table(), "sqlserver")
