"""The parts of the MariaDB -> PostgreSQL and MariaDB -> MariaDB text copies that need no server:
how substituted values are found in the lines, the SQL's independence from ``sql_mode``, and how LOAD DATA assigns the lines. The values themselves are checked against MariaDB and PostgreSQL
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
    assert select.zero_dates == {names[n] for n in ("c_date", "c_timestamp", "c_timestamptz")}
    # NUL and zero dates are found by the copy, not by the server; the target reads timestamps in UTC
    assert "LOCATE" not in select.sql and "YEAR(" not in select.sql and "'+00'" not in select.sql
    assert "`c_numeric`" in select.sql and "IFNULL(`c_numeric`" not in select.sql  # NOT NULL needs no \N


def test_zero_dates_and_nul_are_counted_and_replaced_and_plain_blocks_pass_untouched():
    select = CopyTextSelect("", {0: "d", 1: "t", 2: "ts"}, frozenset({1}), frozenset({0, 2}))
    # NULL dates, text holding a zero date's bytes, a date of year 1: nothing a rule changes
    plain = (b"\\N\tcall 555-00-12 or 0000-1\t0001-01-01 00:00:00\n"
             b"2020-01-01\tx\\\\N!y\t\\N\n")  # fmt: skip
    substituted: dict[str, int] = {}
    assert take_substitutions(plain, select, substituted) == plain and substituted == {}
    no_hint = b"2020-01-01\tx\t2021-01-01 00:00:00\n"
    assert take_substitutions(no_hint, select, substituted) is no_hint  # not even copied
    block = (b"0000-00-00\tx\x00y\x00\t2020-01-01 00:00:00\n"
             b"2020-01-01\tz-00-z\t2020-00-15 10:00:00.5\n"
             b"2020-05-00\tq\t0000-01-01 00:00:00\n"
             b"2021-01-01\tok\t2021-01-01 00:00:00\n")  # fmt: skip
    assert take_substitutions(block, select, substituted) == (
        b"\\N\txy\t2020-01-01 00:00:00\n"
        b"2020-01-01\tz-00-z\t\\N\n"
        b"\\N\tq\t\\N\n"
        b"2021-01-01\tok\t2021-01-01 00:00:00\n"
    )
    assert substituted == {"d": 2, "t": 1, "ts": 2}


def test_nul_outside_the_rule_is_left_for_the_target_to_judge():
    select = CopyTextSelect("", {1: "t"}, frozenset({1}))
    substituted: dict[str, int] = {}
    assert take_substitutions(b"4\x00\tok\n5\tn\x00\n", select, substituted) == b"4\x00\tok\n5\tn\n"
    assert substituted == {"t": 1}


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
