"""A PostgreSQL target's primary key and other indexes built once after a full load's ``COPY``, not
row by row during it.

A ``COPY`` into a table with indexes inserts every row into each index's B-tree as well; the same
``ALTER TABLE ... ADD PRIMARY KEY`` and ``CREATE INDEX`` after the rows are in sort the keys once and
write each index in one pass, as ``pg_restore`` does (1.2-1.3x on a 10M-row ``COPY`` with only its
key, 2.7x on 1M rows with two secondary indexes, bench/README.md). Everything happens in the load's
own transaction, after its ``TRUNCATE``: no other session sees the table without its indexes, and a
failure rolls back to the table as it was, indexes included.

An index is left where it is whenever dropping it could change anything beyond this transaction or
lose something its definition does not carry: a constraint other than the primary key owns it or a
foreign key refers to it (for the key: to the table at all), it is the replica identity or the
index the table is clustered on, it lives in its own tablespace, it has a comment, it is not valid,
or the table is not a plain one (partitioned tables and their partitions keep their key, and the
indexes a partition inherits stay too).
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
       OR cls.relispartition
       OR cls.relreplident = 'i'
       OR idx.indisclustered
       OR ic.reltablespace <> 0
       OR EXISTS (SELECT 1 FROM pg_constraint fk WHERE fk.confrelid = cls.oid AND fk.contype = 'f')
       OR EXISTS (SELECT 1 FROM pg_description d WHERE d.objoid IN (con.oid, con.conindid))
FROM pg_constraint con
JOIN pg_class cls ON cls.oid = con.conrelid
JOIN pg_index idx ON idx.indexrelid = con.conindid
JOIN pg_class ic ON ic.oid = con.conindid
WHERE con.conrelid = to_regclass(%s) AND con.contype = 'p'
"""

#: the target's other indexes that can be dropped for the load and created again from their
#: definition alone: none a constraint owns or a foreign key uses, nothing depends on, no comment
SECONDARY_INDEXES_SQL = """
SELECT ic.relname, idx.indexrelid::regclass::text, pg_get_indexdef(idx.indexrelid)
FROM pg_index idx
JOIN pg_class cls ON cls.oid = idx.indrelid
JOIN pg_class ic ON ic.oid = idx.indexrelid
WHERE idx.indrelid = to_regclass(%s)
  AND cls.relkind = 'r'
  AND idx.indisvalid AND idx.indisready AND idx.indislive
  AND NOT idx.indisprimary AND NOT idx.indisreplident AND NOT idx.indisclustered
  AND ic.reltablespace = 0
  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = idx.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_depend dep
                  WHERE dep.refclassid = 'pg_class'::regclass AND dep.refobjid = idx.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_inherits inh WHERE inh.inhrelid = idx.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_description d WHERE d.objoid = idx.indexrelid)
ORDER BY ic.relname
"""

#: sorting the keys in memory rather than in temporary files, for this transaction only
INDEX_BUILD_MEMORY = "256MB"


@contextmanager
def indexes_built_after(cur, target: str, label: str, log: Callable[[str], None]) -> Iterator[None]:
    """Around a load into ``target`` (a qualified, quoted name) inside an open transaction that has
    just truncated it: drops its primary key and other indexes where that is safe, and builds them
    again, each with its own name and definition, once the rows are in.

    Rows that break the key or a unique index (possible only when the target's are not the
    source's) fail the load with PostgreSQL's own message, naming ``label``, and the transaction
    rolls back.
    """
    key = cur.execute(PRIMARY_KEY_SQL, (target,)).fetchone()
    if key is not None and key[2]:
        key = None
    indexes = cur.execute(SECONDARY_INDEXES_SQL, (target,)).fetchall()
    for _, qualified, _ in indexes:
        cur.execute(f"DROP INDEX {qualified}")
    if key is not None:
        cur.execute(f"ALTER TABLE {target} DROP CONSTRAINT {quote('postgresql', key[0])}")
    yield
    if key is None and not indexes:
        return
    log(f"{label}: building the target's {_what(key[0] if key else None, [name for name, _, _ in indexes])} "
        "over the rows loaded")  # fmt: skip
    cur.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
    if key is not None:
        try:
            cur.execute(f"ALTER TABLE {target} ADD CONSTRAINT {quote('postgresql', key[0])} {key[1]}")
        except (pg_errors.UniqueViolation, pg_errors.NotNullViolation) as exc:
            raise FullLoadError(
                f"{label}: the rows loaded do not fit the target's primary key: {exc}"
            ) from exc
    for name, _, definition in indexes:
        try:
            cur.execute(definition)
        except pg_errors.UniqueViolation as exc:
            raise FullLoadError(
                f"{label}: the rows loaded do not fit the target's unique index {name}: {exc}"
            ) from exc


def _what(key: str | None, indexes: list[str]) -> str:
    """``primary key k``, ``indexes a, b``, or both, for the log line a long index build stands behind."""
    parts = [f"primary key {key}"] if key else []
    if indexes:
        parts.append(f"index{'es' if len(indexes) > 1 else ''} {', '.join(indexes)}")
    return " and ".join(parts)
