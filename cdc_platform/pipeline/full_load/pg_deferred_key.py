"""A PostgreSQL target's primary key built once after a full load's ``COPY``, not row by row during it.

A ``COPY`` into a table with its primary key inserts every row into the key's B-tree as well; the
same ``ALTER TABLE ... ADD PRIMARY KEY`` after the rows are in sorts the keys once and writes the
index in one pass, as ``pg_restore`` does (1.2-1.3x on a 10M-row ``COPY`` here, bench/README.md).
Everything happens in the load's own transaction, after its ``TRUNCATE``: no other session sees the
table without its key, and a failure rolls back to the table as it was, key included.

The key is left where it is whenever dropping it could change anything beyond this transaction: a
foreign key refers to the table, the table's replica identity is an index, its index is the one
the table is clustered on or lives in its own tablespace, or the table is not a plain one
(partitioned tables keep their key on every partition).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from psycopg import errors as pg_errors

from cdc_platform.pipeline.load_errors import FullLoadError
from cdc_platform.schema.ddl import quote

#: the target's primary key, and whether anything makes dropping it for the load unsafe
PRIMARY_KEY_SQL = """
SELECT con.conname, pg_get_constraintdef(con.oid),
       cls.relkind <> 'r'
       OR cls.relreplident = 'i'
       OR idx.indisclustered
       OR ic.reltablespace <> 0
       OR EXISTS (SELECT 1 FROM pg_constraint fk WHERE fk.confrelid = cls.oid AND fk.contype = 'f')
FROM pg_constraint con
JOIN pg_class cls ON cls.oid = con.conrelid
JOIN pg_index idx ON idx.indexrelid = con.conindid
JOIN pg_class ic ON ic.oid = con.conindid
WHERE con.conrelid = to_regclass(%s) AND con.contype = 'p'
"""

#: sorting the keys in memory rather than in temporary files, for this transaction only
INDEX_BUILD_MEMORY = "256MB"


@contextmanager
def primary_key_built_after(cur, target: str, label: str, log: Callable[[str], None]) -> Iterator[None]:
    """Around a load into ``target`` (a qualified, quoted name) inside an open transaction that has
    just truncated it: drops its primary key where that is safe, and adds it back, with its own name
    and definition, once the rows are in.

    Rows that break the key (possible only when the target's key is not the source's) fail the load
    with the key's own message, naming ``label``, and the transaction rolls back.
    """
    found = cur.execute(PRIMARY_KEY_SQL, (target,)).fetchone()
    if found is None or found[2]:
        yield
        return
    name, definition, _ = found
    constraint = quote("postgresql", name)
    cur.execute(f"ALTER TABLE {target} DROP CONSTRAINT {constraint}")
    yield
    log(f"{label}: building the target's primary key {name} over the rows loaded")
    cur.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
    try:
        cur.execute(f"ALTER TABLE {target} ADD CONSTRAINT {constraint} {definition}")
    except (pg_errors.UniqueViolation, pg_errors.NotNullViolation) as exc:
        raise FullLoadError(f"{label}: the rows loaded do not fit the target's primary key: {exc}") from exc
