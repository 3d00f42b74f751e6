"""The parts of the MariaDB -> PostgreSQL and MariaDB -> MariaDB text copies that need no server:
the row flags, the SQL's independence from ``sql_mode``, and how LOAD DATA assigns the lines. The values themselves are checked against MariaDB and PostgreSQL
in tests/integration/test_mysql_copy_text.py and test_value_fidelity.py."""

from __future__ import annotations

import pytest

from cdc_platform.pipeline.mysql_copy_text import copy_text_select, load_data_columns, take_flags
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
    assert select.counted == ("c_varchar", "c_char", "c_text", "c_date", "c_timestamp", "c_timestamptz")
    assert "`c_numeric`" in select.sql and "IFNULL(`c_numeric`" not in select.sql  # NOT NULL needs no \N


def test_flags_are_counted_and_stripped_and_plain_blocks_pass_untouched():
    counted = ("a", "b")
    plain = b"1\tx\\\\!y\n2\t\\N\n"
    substituted: dict[str, int] = {}
    assert take_flags(plain, counted, substituted) == plain and substituted == {}
    flagged = b"\\!0,1!1\t\\N\txy\n2\tok\tz\n\\!1!3\t\\N\tq\n"
    assert take_flags(flagged, counted, substituted) == b"1\t\\N\txy\n2\tok\tz\n3\t\\N\tq\n"
    assert substituted == {"a": 1, "b": 2}


def test_for_a_mysql_target_the_lines_keep_mysql_values_and_count_only_dates():
    select = copy_text_select(_table(), "mariadb")
    assert "\\" not in select.sql
    # PostgreSQL's forms are not used: no UTC offset, no 't'/'f', no bytea prefix, no bit string
    assert "'+00'" not in select.sql and "'t'" not in select.sql and "LPAD(BIN" not in select.sql
    assert "X'5c5c78'" not in select.sql and "HEX(`c_binary`)" in select.sql
    # NUL is a PostgreSQL limit: a MySQL target keeps it, so only zero dates are flagged
    assert select.counted == ("c_date", "c_timestamp", "c_timestamptz")


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
