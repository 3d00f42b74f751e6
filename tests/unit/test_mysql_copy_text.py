"""The parts of the MariaDB -> PostgreSQL text copy that need no server: the row flags and the SQL's
independence from ``sql_mode``. The values themselves are checked against MariaDB and PostgreSQL
in tests/integration/test_mysql_copy_text.py and test_value_fidelity.py."""

from __future__ import annotations

from cdc_platform.pipeline.mysql_copy_text import copy_text_select, take_flags
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
