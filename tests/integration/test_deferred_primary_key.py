"""A full load into PostgreSQL builds the target's primary key and other indexes once the rows are in
(``pg_deferred_key``): the key and indexes that come back are the ones that were there, a key the
table refers to itself and an index with a comment are left alone, and rows that break the key or
a unique index fail the load with the table as it was."""

from __future__ import annotations

import pytest

from cdc_platform.pipeline.full_load import FullLoadError, copy_table
from tests.pipeline_support import items_copy_job
from tests.support import mariadb_database, pg_connect, pg_database

pytestmark = pytest.mark.integration
ROWS = 20_000
DEFERRED = "building the target's primary key"
KEY_SQL = """SELECT con.conname, pg_get_constraintdef(con.oid), idx.indisvalid, idx.indisprimary
             FROM pg_constraint con JOIN pg_index idx ON idx.indexrelid = con.conindid
             WHERE con.conrelid = 'replica.items'::regclass AND con.contype = 'p'"""


def _items(stack, tmp_path, source_kind: str, src: str, tgt: str) -> tuple:
    """``items`` with ROWS rows on the source, its mapped empty table on the PostgreSQL target."""
    return items_copy_job(stack, tmp_path, source_kind, src, "postgresql", tgt, ROWS)


def _source_database(stack, source_kind: str):
    return pg_database(stack, "src") if source_kind == "postgresql" else mariadb_database(stack, "src")


@pytest.mark.parametrize("source_kind", ["postgresql", "mariadb"])
def test_the_key_built_after_the_rows_is_the_key_the_table_had(stack, tmp_path, source_kind):
    with _source_database(stack, source_kind) as src, pg_database(stack, "tgt") as tgt:
        specs, job = _items(stack, tmp_path, source_kind, src, tgt)
        with pg_connect(stack, tgt) as conn:
            before = conn.execute(KEY_SQL).fetchall()
        assert len(before) == 1 and before[0][1] == "PRIMARY KEY (id, part)", before
        logged: list[str] = []
        stats = copy_table(
            specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=logged.append
        )
        assert stats.rows == ROWS
        assert any(DEFERRED in line for line in logged), logged
        with pg_connect(stack, tgt) as conn:
            assert conn.execute(KEY_SQL).fetchall() == before  # same name and definition, valid, primary
            assert conn.execute("SELECT count(*), count(DISTINCT (id, part)), sum(id) FROM replica.items").fetchone() \
                == (ROWS, ROWS, ROWS * (ROWS + 1) // 2)  # fmt: skip
            # the key does its job after the load, as the sink's upserts need it to
            with pytest.raises(Exception, match="duplicate key value violates unique constraint"):
                conn.execute("INSERT INTO replica.items (id, part) VALUES (1, 1)")


def test_a_key_the_table_itself_refers_to_stays_in_place_during_the_load(stack, tmp_path):
    """A self-referencing foreign key depends on the key's index: the key cannot be dropped, so the
    load keeps it and inserts into it as before, instead of failing."""
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        specs, job = _items(stack, tmp_path, "postgresql", src, tgt)
        with pg_connect(stack, tgt) as conn:
            # left NULL by the load (not a source column), so MATCH SIMPLE checks no row
            conn.execute("ALTER TABLE replica.items ADD COLUMN parent_part int")
            conn.execute("ALTER TABLE replica.items ADD CONSTRAINT items_parent FOREIGN KEY (parent, parent_part) "
                         "REFERENCES replica.items (id, part)")  # fmt: skip
        logged: list[str] = []
        stats = copy_table(
            specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=logged.append
        )
        assert stats.rows == ROWS
        assert not any(DEFERRED in line for line in logged), logged
        with pg_connect(stack, tgt) as conn:
            assert conn.execute(KEY_SQL).fetchone()[:2] == ("items_pkey", "PRIMARY KEY (id, part)")
            assert conn.execute("SELECT count(*) FROM replica.items").fetchone()[0] == ROWS


def test_rows_that_break_the_key_fail_the_load_and_the_table_keeps_its_rows_and_key(stack, tmp_path):
    """The target's key is not the source's (a user re-keyed it): the source's rows repeat it. The
    load fails naming the table and the key's violation; the rows and the key from before remain."""
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        specs, job = _items(stack, tmp_path, "postgresql", src, tgt)
        with pg_connect(stack, tgt) as conn:
            conn.execute("ALTER TABLE replica.items DROP CONSTRAINT items_pkey")
            conn.execute("ALTER TABLE replica.items ADD CONSTRAINT items_by_v PRIMARY KEY (v)")
            conn.execute("INSERT INTO replica.items (id, part, v) VALUES (1, 0, 'a'), (2, 0, 'b')")
        with pytest.raises(
            FullLoadError, match=r"public\.items: the rows loaded do not fit the target's primary key"
        ):
            copy_table(
                specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=lambda _: None
            )
        with pg_connect(stack, tgt) as conn:
            assert conn.execute("SELECT v FROM replica.items ORDER BY v").fetchall() == [("a",), ("b",)]
            assert conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'replica.items'::regclass"
            ).fetchall() == [("items_by_v", "PRIMARY KEY (v)")]


INDEXES_SQL = """SELECT ic.relname, pg_get_indexdef(idx.indexrelid), idx.indisvalid, obj_description(ic.oid, 'pg_class')
                 FROM pg_index idx JOIN pg_class ic ON ic.oid = idx.indexrelid
                 WHERE idx.indrelid = 'replica.items'::regclass ORDER BY ic.relname"""


def test_secondary_indexes_come_back_as_they_were_and_one_with_a_comment_stays(stack, tmp_path):
    """A plain, a unique, a partial expression index and one with a comment on the target: the first
    three are built after the rows (the log names them), the fourth stays in place; afterwards every
    index has its own name, definition and comment, is valid, and the unique one rejects a duplicate."""
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        specs, job = _items(stack, tmp_path, "postgresql", src, tgt)
        with pg_connect(stack, tgt) as conn:
            conn.execute("CREATE INDEX items_v ON replica.items (v, parent DESC)")
            conn.execute("CREATE UNIQUE INDEX items_id_part ON replica.items ((id * 10 + part))")
            conn.execute("CREATE INDEX items_lower_v ON replica.items (lower(v)) WHERE parent IS NOT NULL")
            conn.execute("CREATE INDEX items_parent ON replica.items (parent)")
            conn.execute("COMMENT ON INDEX replica.items_parent IS 'for the parent lookups'")
            before = conn.execute(INDEXES_SQL).fetchall()
        assert len(before) == 5, before
        logged: list[str] = []
        stats = copy_table(
            specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=logged.append
        )
        assert stats.rows == ROWS
        built = [line for line in logged if DEFERRED in line]
        assert len(built) == 1 and "indexes items_id_part, items_lower_v, items_v" in built[0], logged
        assert "items_parent" not in built[0]
        with pg_connect(stack, tgt) as conn:
            assert conn.execute(INDEXES_SQL).fetchall() == before
            with pytest.raises(
                Exception, match='duplicate key value violates unique constraint "items_id_part"'
            ):
                conn.execute(
                    "INSERT INTO replica.items (id, part) VALUES (0, 11)"
                )  # 0 * 10 + 11 = row (1, 1)


def test_rows_that_break_a_unique_index_fail_the_load_and_the_table_keeps_its_rows_and_indexes(
    stack, tmp_path
):
    """A unique index of the target's own that the source's rows repeat (``part`` has three values):
    the load fails naming the table and the index; the rows and indexes from before remain."""
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        specs, job = _items(stack, tmp_path, "postgresql", src, tgt)
        with pg_connect(stack, tgt) as conn:
            conn.execute("CREATE UNIQUE INDEX items_one_per_part ON replica.items (part)")
            conn.execute("INSERT INTO replica.items (id, part, v) VALUES (1, 0, 'a'), (2, 1, 'b')")
            before = conn.execute(INDEXES_SQL).fetchall()
        with pytest.raises(
            FullLoadError,
            match=r"public\.items: the rows loaded do not fit the target's unique index items_one_per_part",
        ):
            copy_table(
                specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=lambda _: None
            )
        with pg_connect(stack, tgt) as conn:
            assert conn.execute("SELECT v FROM replica.items ORDER BY v").fetchall() == [("a",), ("b",)]
            assert conn.execute(INDEXES_SQL).fetchall() == before


def _load_building_only(stack, tgt: str, specs, job, index: str, before: list) -> None:
    """Loads ``job``; the log names ``index`` alone as built after the rows, and every index of the
    target is afterwards as it was (``before``)."""
    logged: list[str] = []
    stats = copy_table(
        specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=logged.append
    )
    assert stats.rows == ROWS
    built = [line for line in logged if "building the target's" in line]
    assert len(built) == 1 and built[0].endswith(
        f"building the target's index {index} over the rows loaded"
    ), logged
    with pg_connect(stack, tgt) as conn:
        assert conn.execute(INDEXES_SQL).fetchall() == before


def test_a_unique_index_a_foreign_key_uses_stays_in_place_during_the_load(stack, tmp_path):
    """A foreign key of the table's own refers to a unique index that backs no constraint: the index
    cannot be dropped, so the load keeps it and builds only the one beside it afterwards."""
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        specs, job = _items(stack, tmp_path, "postgresql", src, tgt)
        with pg_connect(stack, tgt) as conn:
            conn.execute("CREATE UNIQUE INDEX items_id_v ON replica.items (id, v)")
            conn.execute("CREATE INDEX items_v ON replica.items (v)")
            conn.execute("ALTER TABLE replica.items ADD COLUMN parent_v varchar(40)")  # NULL: no row checked
            conn.execute("ALTER TABLE replica.items ADD CONSTRAINT items_parent FOREIGN KEY (parent, parent_v) "
                         "REFERENCES replica.items (id, v)")  # fmt: skip
            before = conn.execute(INDEXES_SQL).fetchall()
        _load_building_only(stack, tgt, specs, job, "items_v", before)


def test_a_target_that_is_a_partition_keeps_its_inherited_key_and_indexes(stack, tmp_path):
    """The target is one partition of a partitioned table: its key and the index it inherits belong
    to the parent's (neither can be dropped on its own), so the load keeps them and builds only the
    partition's own index afterwards."""
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        specs, job = _items(stack, tmp_path, "postgresql", src, tgt)
        with pg_connect(stack, tgt) as conn:
            conn.execute(
                "CREATE TABLE replica.items_all (LIKE replica.items INCLUDING ALL) PARTITION BY RANGE (id)"
            )
            conn.execute("CREATE INDEX items_all_v ON replica.items_all (v)")
            conn.execute(
                f"ALTER TABLE replica.items_all ATTACH PARTITION replica.items FOR VALUES FROM (1) TO ({ROWS + 1})"
            )
            conn.execute("CREATE INDEX items_parent_only ON replica.items (parent)")
            before = conn.execute(INDEXES_SQL).fetchall()
        assert len(before) == 3, before  # the key, the inherited index, the partition's own
        _load_building_only(stack, tgt, specs, job, "items_parent_only", before)
        with pg_connect(stack, tgt) as conn:
            assert conn.execute("SELECT count(*) FROM replica.items_all").fetchone()[0] == ROWS
