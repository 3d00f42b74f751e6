"""A MySQL/MariaDB target's secondary indexes built once after a full load's rows are in its
shadow table, not row by row during ``LOAD DATA``.

Every row loaded into an InnoDB table with secondary indexes is also inserted into each index's
B-tree, in the order the rows come rather than the index's; ``ALTER TABLE ... ADD KEY`` over the
loaded rows sorts each index's entries once and writes it bottom-up (InnoDB's sorted index build),
as ``mysqldump``'s ``DISABLE KEYS`` intends and ``myloader`` does. The load goes into a shadow
created ``LIKE`` the target and swapped in with one ``RENAME`` (``common.mysql_shadow``), so no
other session ever sees the table without its indexes, and a failure drops the shadow: the target
keeps its rows and its indexes.

Plain B-tree indexes (``KEY`` and ``UNIQUE KEY``) and full-text ones are deferred, each re-created
from the line ``SHOW CREATE TABLE`` prints for it, with its name, columns, prefix lengths, order,
comment, parser and visibility. A full-text index gains the most: InnoDB tokenizes every row into its
full-text cache and merges it during the load, where one ``ADD FULLTEXT`` over the loaded rows
tokenizes and sorts them once (a million rows with one full-text index on a text column loaded in
21 s before, 12 s after, ``bench/README.md``). InnoDB builds one full-text index per ``ALTER TABLE``, so each gets its own, after the B-tree ones.
The primary key stays: it is the InnoDB table itself, and rebuilding it would copy every row again.
Spatial and any other kind of index stay as they are, and so does every index of a table without a
primary key (InnoDB clusters it on its first unique index). The shadow's definition is compared with
the one it had before, line by line, once the indexes are back: a difference fails the load rather
than swap in a table that is not the target's. Only the order ``SHOW CREATE TABLE`` lists the indexes
in may differ, when an index that stayed was created after one that was rebuilt; the order has no
effect on what the table does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pymysql

from cdc_platform.pipeline.load_errors import FullLoadError

#: one B-tree or full-text index of ``SHOW CREATE TABLE``: ``KEY `name` (...)``, ``UNIQUE KEY`` or
#: ``FULLTEXT KEY``, with what follows it (comment, IGNORED, USING BTREE, WITH PARSER); names as
#: printed, backticks doubled inside
INDEX_LINE = re.compile(
    r"^\s*(?P<definition>(?:UNIQUE |FULLTEXT )?KEY (?P<name>`(?:[^`]|``)+`) "
    r"\((?P<first>`(?:[^`]|``)+`).*?),?$"
)

#: the column an ``AUTO_INCREMENT`` counts in, which must stay the first column of some index
AUTO_INCREMENT_COLUMN = re.compile(r"^\s*(?P<name>`(?:[^`]|``)+`) .* AUTO_INCREMENT\b")


def deferrable_indexes(create_table: str) -> list[tuple[str, str]]:
    """(quoted name, definition) of each index of a ``SHOW CREATE TABLE`` text that can be dropped
    and added again from its definition alone, in the order it is printed. An index that leads with
    the ``AUTO_INCREMENT`` column stays: the server refuses a table where that column leads none."""
    lines = create_table.splitlines()
    if not any(line.lstrip().startswith("PRIMARY KEY (") for line in lines):
        return []  # InnoDB clusters such a table on its first unique index: adding one back rebuilds it
    counted = [m["name"] for m in map(AUTO_INCREMENT_COLUMN.match, lines) if m]
    found = []
    for line in lines:
        match = INDEX_LINE.match(line)
        if match and match["first"] not in counted:
            found.append((match["name"], match["definition"]))
    return found


#: the table option that counts rows loaded rather than describes the table
NEXT_AUTO_INCREMENT = re.compile(r" AUTO_INCREMENT=\d+")

#: MySQL/MariaDB's error for rows a unique index refuses
DUPLICATE_ENTRY = 1062


def _definition(cur, table: str) -> str:
    cur.execute(f"SHOW CREATE TABLE {table}")
    return NEXT_AUTO_INCREMENT.sub("", cur.fetchone()[1])


@contextmanager
def indexes_built_after(cur, table: str, label: str, log: Callable[[str], None]) -> Iterator[None]:
    """Around a load into the empty shadow ``table`` (qualified and quoted): drops its secondary
    B-tree and full-text indexes, and once the body has loaded and committed the rows, adds them
    again: the B-tree ones in one ``ALTER TABLE``, then each full-text one in its own. Nothing is
    rebuilt when the body fails: the shadow is dropped anyway.

    Rows that break a unique index fail the load with MariaDB's message naming the index and
    ``label``.
    """
    before = _definition(cur, table)
    indexes = deferrable_indexes(before)
    if indexes:
        cur.execute(f"ALTER TABLE {table} " + ", ".join(f"DROP KEY {name}" for name, _ in indexes))
    yield
    if not indexes:
        return
    names = ", ".join(name.strip("`").replace("``", "`") for name, _ in indexes)
    log(
        f"{label}: building the target's index{'es' if len(indexes) > 1 else ''} {names} over the rows loaded"
    )
    b_trees = [definition for _, definition in indexes if not definition.startswith("FULLTEXT ")]
    statements = [", ".join(f"ADD {definition}" for definition in b_trees)] if b_trees else []
    # InnoDB builds one full-text index per statement
    statements += [f"ADD {definition}" for _, definition in indexes if definition.startswith("FULLTEXT ")]
    try:
        for statement in statements:
            cur.execute(f"ALTER TABLE {table} {statement}")
    except pymysql.err.IntegrityError as exc:
        if exc.args and exc.args[0] == DUPLICATE_ENTRY:
            raise FullLoadError(
                f"{label}: the rows loaded do not fit the target's unique index: {exc.args[1]}"
            ) from exc
        raise
    after = _definition(cur, table)
    if sorted(before.splitlines()) != sorted(after.splitlines()):
        raise FullLoadError(
            f"{label}: the target's indexes did not come back as they were after the load "
            f"(before: {before!r}; after: {after!r}); the target table was left as it was"
        )
