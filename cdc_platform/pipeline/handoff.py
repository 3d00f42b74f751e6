"""The full load -> CDC handoff: no change lost, none applied out of order.

PostgreSQL: publication first, then a logical slot created with ``SNAPSHOT 'export'`` on a
replication connection held open while every table is copied under ``SET TRANSACTION SNAPSHOT``;
Debezium then starts with ``snapshot.mode=no_data`` on that slot and streams from exactly the
snapshot's consistent point.

MySQL/MariaDB (no exported snapshot): the source connector starts first (``no_data``) and the copy
runs after its binlog position is recorded; the sink starts after the copy and replays the overlap.
Every binlog event carries the full row image (``binlog_row_image=FULL``) and the sink upserts by
key and applies deletes, so replaying changes the copy already saw converges to the source.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from cdc_platform.audit import record
from cdc_platform.db import pg_connect
from cdc_platform.schema.ddl import qualified, quote
from cdc_platform.schema.model import Table
from cdc_platform.specs.models import ConnectionSpec


class HandoffError(RuntimeError):
    pass


def ensure_publication(
    conn: psycopg.Connection, publication: str, tables: list[Table], switched: set[str] | None = None,
    extra: tuple[str, ...] = (),
) -> None:  # fmt: skip
    """Create the publication, or set its table list; and make TOAST-safe replica identities.

    Tables this call moves from the default replica identity to FULL are added to ``switched``, so
    the platform can record them and teardown can put them back. ``extra`` names further
    ``schema.table``s published as they are (the pipeline's heartbeat table).
    """
    names = [(t.schema, t.name) for t in tables] + [tuple(q.split(".", 1)) for q in extra]
    table_list = ", ".join(qualified("postgresql", schema, name) for schema, name in names)
    exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone()
    verb = "ALTER PUBLICATION {} SET TABLE {}" if exists else "CREATE PUBLICATION {} FOR TABLE {}"
    conn.execute(verb.format(quote("postgresql", publication), table_list))
    record("publication.altered" if exists else "publication.created", publication, detail=f"tables: {table_list}",
           pipeline=publication.removeprefix("cdc_"))  # fmt: skip
    for t in tables:
        # Unchanged TOASTed values would otherwise arrive as __debezium_unavailable_value and the
        # JDBC sink would write that placeholder; a declared key also needs the old row image.
        if t.has_toastable or t.declared_key:
            current = conn.execute(
                "SELECT c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s",
                (t.schema, t.name),
            ).fetchone()
            if current and current[0] != "f":
                conn.execute(f"ALTER TABLE {qualified('postgresql', t.schema, t.name)} REPLICA IDENTITY FULL")
                record("table.replica_identity_full", t.qualified, pipeline=publication.removeprefix("cdc_"),
                       detail=f"was {current[0]!r}: unchanged TOASTed values and declared keys need the full old row")  # fmt: skip
                if switched is not None and current[0] == "d":
                    switched.add(t.qualified)


def slot_exists(conn: psycopg.Connection, slot: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
        is not None
    )


def drop_slot(conn: psycopg.Connection, slot: str, *, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while slot_exists(conn, slot):
        try:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            record("slot.dropped", slot)
            return True
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise HandoffError(f"replication slot {slot} is still in use after {timeout:.0f} s") from None
            time.sleep(0.5)
    return False


@contextmanager
def exported_snapshot(
    source: ConnectionSpec,
    specs_dir: Path,
    slot: str,
    publication: str,
    tables: list[Table],
    *,
    recreate: bool,
    switched: set[str] | None = None,
    extra: tuple[str, ...] = (),
) -> Iterator[str]:
    """Yield a snapshot name consistent with the new slot's start; the slot outlives the block."""
    with pg_connect(source, specs_dir, autocommit=True) as admin:
        ensure_publication(admin, publication, tables, switched, extra)
        if slot_exists(admin, slot):
            if not recreate:
                raise HandoffError(
                    f"replication slot {slot} already exists; its position is not this copy's snapshot. "
                    "Tear the pipeline down first, or re-load single tables instead."
                )
            drop_slot(admin, slot)
    replication = pg_connect(source, specs_dir, autocommit=True, replication="database")
    try:
        row = replication.execute(
            f"CREATE_REPLICATION_SLOT {quote('postgresql', slot)} LOGICAL pgoutput (SNAPSHOT 'export')"
        ).fetchone()
        if row is None:
            raise HandoffError(f"CREATE_REPLICATION_SLOT {slot} returned nothing")
        record("slot.created", slot, detail=f"consistent point {row[1]}, exported snapshot for the full load")
        # The exported snapshot lives only while this connection stays open and idle.
        yield row[2]
    finally:
        replication.close()


def ensure_slot(
    source: ConnectionSpec,
    specs_dir: Path,
    slot: str,
    publication: str,
    tables: list[Table],
    switched: set[str] | None = None,
    extra: tuple[str, ...] = (),
) -> None:
    """cdc_only: publication and slot without a copy (changes from now on)."""
    with pg_connect(source, specs_dir, autocommit=True) as admin:
        ensure_publication(admin, publication, tables, switched, extra)
        if not slot_exists(admin, slot):
            admin.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
            record("slot.created", slot, detail="changes from now on (no full load)")


def restore_replica_identity(conn: psycopg.Connection, tables: list[str]) -> list[str]:
    """Put the default replica identity back on tables the platform switched to FULL (if they exist)."""
    done = []
    for qualified_name in tables:
        schema, _, name = qualified_name.partition(".")
        exists = conn.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND c.relreplident = 'f'",
            (schema, name),
        ).fetchone()
        if exists:
            conn.execute(f"ALTER TABLE {qualified('postgresql', schema, name)} REPLICA IDENTITY DEFAULT")
            record("table.replica_identity_default", qualified_name)
            done.append(f"restored the default replica identity of {qualified_name}")
    return done
