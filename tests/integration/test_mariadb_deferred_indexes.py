"""A full load into MariaDB builds the target's secondary indexes once the rows are in its shadow
(``mysql_deferred_indexes``): every index comes back with its own definition (unique, prefix,
descending, ignored, commented, full-text, each full-text one in a statement of its own), one that
leads with an ``AUTO_INCREMENT`` column stays in place, and rows that break a unique index fail the
load with the table as it was.
Both ways rows reach MariaDB are covered: ``LOAD DATA`` (from PostgreSQL and from MariaDB) and the
``INSERT`` batches of the paths that hold Python rows."""

from __future__ import annotations

import re

import pytest

from cdc_platform.pipeline.full_load import FullLoadError, copy_table
from cdc_platform.pipeline.full_load.common import rows_to_mysql
from tests.pipeline_support import items_copy_job
from tests.support import mariadb_connect, mariadb_database, pg_database

pytestmark = pytest.mark.integration
ROWS = 20_000
BUILT = "building the target's index"
#: the target's own indexes beside its key: what the load must give back exactly
INDEXES = [
    "ADD UNIQUE KEY items_id_v (id, v)",
    "ADD KEY items_v (v(12), parent DESC) COMMENT 'for the lookups, (by v)'",
    "ADD KEY items_parent (parent) IGNORED",
    "ADD FULLTEXT KEY items_text (v)",
    "ADD FULLTEXT KEY items_words (v) COMMENT 'a second one, built in a statement of its own'",
    "ADD COLUMN n bigint NOT NULL AUTO_INCREMENT, ADD KEY items_n (n, v)",
]


def _items(stack, tmp_path, source_kind: str, src: str, tgt: str) -> tuple:
    """``items`` with ROWS rows on the source, its mapped table on the MariaDB target with the
    indexes above; the specs and the copy job."""
    specs, job = items_copy_job(stack, tmp_path, source_kind, src, "mariadb", tgt, ROWS, word="word")
    with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
        for clause in INDEXES:
            cur.execute(f"ALTER TABLE items {clause}")
    return specs, job


def _definition(stack, tgt: str) -> list[str]:
    """The lines of ``SHOW CREATE TABLE`` without the next ``AUTO_INCREMENT`` value, in order: the
    indexes rebuilt may now print after one that stayed (``items_n``), which changes nothing else."""
    with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
        cur.execute("SHOW CREATE TABLE items")
        return sorted(re.sub(r" AUTO_INCREMENT=\d+", "", cur.fetchone()[1]).splitlines())


def _source_database(stack, source_kind: str):
    return pg_database(stack, "src") if source_kind == "postgresql" else mariadb_database(stack, "src")


def _assert_indexes_built_after(logged: list[str]) -> None:
    built = [line for line in logged if BUILT in line]
    assert len(built) == 1, logged
    assert built[0].endswith(
        "building the target's indexes items_id_v, items_v, items_parent, items_text, items_words over the rows loaded"
    )


@pytest.mark.parametrize("source_kind", ["postgresql", "mariadb"])
def test_the_indexes_built_after_the_rows_are_the_indexes_the_table_had(stack, tmp_path, source_kind):
    with _source_database(stack, source_kind) as src, mariadb_database(stack, "tgt") as tgt:
        specs, job = _items(stack, tmp_path, source_kind, src, tgt)
        before = _definition(stack, tgt)
        for index in ("items_id_v", "items_v", "items_parent", "items_text", "items_words", "items_n"):
            assert any(f"KEY `{index}`" in line for line in before), before
        logged: list[str] = []
        stats = copy_table(
            specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=logged.append
        )
        assert stats.rows == ROWS
        _assert_indexes_built_after(logged)
        assert _definition(stack, tgt) == before
        with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), count(DISTINCT id, part), sum(id), count(DISTINCT n) FROM items")
            assert cur.fetchone() == (ROWS, ROWS, ROWS * (ROWS + 1) // 2, ROWS)
            cur.execute("SELECT count(*) FROM items WHERE MATCH (v) AGAINST ('word3')")
            assert cur.fetchone() == (len([g for g in range(1, ROWS + 1) if g % 7 == 3]),)
            with pytest.raises(Exception, match="Duplicate entry '1-word1' for key 'items_id_v'"):
                cur.execute("INSERT INTO items (id, part, v) VALUES (1, 2, 'word1')")


def test_rows_that_break_a_unique_index_fail_the_load_and_the_table_keeps_its_rows_and_indexes(
    stack, tmp_path
):
    """A unique index of the target's own that the source's rows repeat (``part`` has three values):
    the load fails naming the table and the index; the rows and indexes from before remain."""
    with pg_database(stack, "src") as src, mariadb_database(stack, "tgt") as tgt:
        specs, job = _items(stack, tmp_path, "postgresql", src, tgt)
        with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
            cur.execute("ALTER TABLE items ADD UNIQUE KEY items_one_per_part (part)")
            cur.execute("INSERT INTO items (id, part, v) VALUES (1, 0, 'a'), (2, 1, 'b')")
            conn.commit()
        before = _definition(stack, tgt)
        with pytest.raises(
            FullLoadError,
            match=r"public\.items: the rows loaded do not fit the target's unique index: "
            r"Duplicate entry '\d' for key 'items_one_per_part'",
        ):
            copy_table(
                specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=lambda _: None
            )
        assert _definition(stack, tgt) == before
        with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
            cur.execute("SELECT v FROM items ORDER BY v")
            assert cur.fetchall() == (("a",), ("b",))
            cur.execute("SHOW TABLES")
            assert cur.fetchall() == (("items",),)  # no shadow left behind


def test_insert_batches_build_the_indexes_after_the_rows_too(stack, tmp_path):
    """The paths that hold rows as Python values (SQL Server's) insert them in batches into the
    shadow: the same indexes are built after them, and come back as they were."""
    with pg_database(stack, "src") as src, mariadb_database(stack, "tgt") as tgt:
        specs, job = _items(stack, tmp_path, "postgresql", src, tgt)
        before = _definition(stack, tgt)
        rows = ((g, g % 3, g - 1 or None, f"word{g % 7}") for g in range(1, ROWS + 1))
        logged: list[str] = []
        assert (
            rows_to_mysql(specs.connection("tgt"), job, specs.directory, rows, logged.append, 2_000) == ROWS
        )
        _assert_indexes_built_after(logged)
        assert _definition(stack, tgt) == before
        with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), sum(id), sum(parent IS NULL) FROM items")
            assert cur.fetchone() == (ROWS, ROWS * (ROWS + 1) // 2, 1)


@pytest.mark.parametrize("referring", ["own", "other"])
def test_a_target_with_foreign_keys_is_refused_before_anything_is_touched(stack, tmp_path, referring):
    """The shadow a MariaDB load swaps in has none of the target's foreign keys, and one referring to
    the target would follow it to the retired table: the load is refused up front, naming the key."""
    with pg_database(stack, "src") as src, mariadb_database(stack, "tgt") as tgt:
        specs, job = _items(stack, tmp_path, "postgresql", src, tgt)
        with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE parts (part int PRIMARY KEY)")
            cur.execute("INSERT INTO parts VALUES (0), (1), (2)")
            if referring == "own":
                cur.execute(
                    "ALTER TABLE items ADD CONSTRAINT items_part FOREIGN KEY (part) REFERENCES parts (part)"
                )
                named = "items.items_part -> parts"
            else:
                cur.execute("CREATE TABLE notes (id int PRIMARY KEY, note_id int, note_part int, "
                            "CONSTRAINT notes_item FOREIGN KEY (note_id, note_part) REFERENCES items (id, part))")  # fmt: skip
                named = "notes.notes_item -> items"
            cur.execute("INSERT INTO items (id, part, v) VALUES (1, 0, 'a')")
            conn.commit()
        before = _definition(stack, tgt)
        with pytest.raises(FullLoadError, match=rf"foreign keys \({re.escape(named)}\).*left as it was"):
            copy_table(
                specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=lambda _: None
            )
        assert _definition(stack, tgt) == before
        with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
            cur.execute("SELECT id, v FROM items")
            assert cur.fetchall() == ((1, "a"),)
            cur.execute("SHOW TABLES")
            assert {t for (t,) in cur.fetchall()} == {"items", "parts"} | (
                {"notes"} if referring == "other" else set()
            )
