"""Helpers for integration tests: throw-away databases on the stack and waiting for replication."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager

import psycopg
import pymysql

from cdc_platform.settings import STACK_DB_USER, StackSettings


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def pg_connect(stack: StackSettings, dbname: str = "postgres", **kwargs) -> psycopg.Connection:
    return psycopg.connect(
        host=stack.host, port=stack.postgres_port, user=STACK_DB_USER,
        password=stack.password("postgres"), dbname=dbname, autocommit=True, **kwargs,
    )  # fmt: skip


def mariadb_connect(stack: StackSettings, database: str | None = None) -> pymysql.Connection:
    return pymysql.connect(
        host=stack.host, port=stack.mariadb_port, user=STACK_DB_USER,
        password=stack.password("mariadb"), database=database, autocommit=True,
    )  # fmt: skip


@contextmanager
def pg_database(stack: StackSettings, prefix: str):
    """A fresh PostgreSQL database, dropped afterwards (with any slot still pointing at it)."""
    name = unique(prefix)
    with pg_connect(stack) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with pg_connect(stack) as admin:
            for (slot,) in admin.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE database = %s", (name,)
            ).fetchall():
                _drop_slot(admin, slot)
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_slot(admin: psycopg.Connection, slot: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            admin.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@contextmanager
def mariadb_database(stack: StackSettings, prefix: str):
    name = unique(prefix)
    with mariadb_connect(stack) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield name
    finally:
        with mariadb_connect(stack) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


@contextmanager
def mariadb_global_sql_mode_with(stack: StackSettings, mode: str):
    """The server's global ``sql_mode`` with ``mode`` added (new sessions take it), restored after."""
    with mariadb_connect(stack) as admin, admin.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.sql_mode")
        before = cur.fetchone()[0]
        cur.execute("SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',', %s)", (mode,))
    try:
        yield
    finally:
        with mariadb_connect(stack) as admin, admin.cursor() as cur:
            cur.execute("SET GLOBAL sql_mode = %s", (before,))


def mariadb_rows(stack: StackSettings, database: str, query: str) -> list[tuple]:
    """Every row of ``query`` on a stack MariaDB database, as plain tuples (comparable with psycopg's)."""
    conn = mariadb_connect(stack, database)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def pg_inserter(stack: StackSettings, database: str, table: str = "t"):
    """A writer step for ``SlowWriter``: insert row ``i`` (``i``, ``'row i'``) into ``table``."""

    def write(i: int) -> None:
        with pg_connect(stack, database) as conn:
            conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", (i, f"row {i}"))

    return write


def wait_for_equal(
    read_source: Callable[[], list], read_target: Callable[[], list], *, timeout: float = 120.0
) -> list:
    """Poll until both sides return the same rows; on timeout fail showing the difference."""
    deadline = time.monotonic() + timeout
    source, target = read_source(), None
    while time.monotonic() < deadline:
        source = read_source()
        try:
            target = read_target()
        except Exception as exc:  # noqa: BLE001 - target table may not exist yet
            target = f"unreadable: {exc}"
        if source == target:
            return source
        time.sleep(1)
    missing = [r for r in source if r not in (target or [])] if isinstance(target, list) else source
    extra = [r for r in target if r not in source] if isinstance(target, list) else target
    raise AssertionError(
        f"target did not converge within {timeout} s; missing={missing[:10]} extra={extra[:10]}"
    )
