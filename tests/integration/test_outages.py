"""Issue 34: a short outage of a database costs no FAILED task, on its own, with nobody restarting
anything (no health sensor ticks here). Two pipelines run under writers, MariaDB -> PostgreSQL and
PostgreSQL -> MariaDB, and one database is shut down for 30 s: the stack's PostgreSQL (fast shutdown)
or its MariaDB, each being the target of one pipeline (whose sink must reconnect) and the source of
the other (whose Debezium source must reconnect)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from cdc_platform.settings import load_stack_settings
from cdc_platform.stack.manager import up
from cdc_platform.stack.processes import PidFile
from cdc_platform.stack.services import MariaDB, Postgres
from tests.faults import SlowWriter
from tests.pipeline_support import connection, materialize, teardown, write_specs
from tests.support import (
    mariadb_connect,
    mariadb_database,
    mariadb_rows,
    pg_connect,
    pg_database,
    pg_inserter,
    unique,
    wait_for_equal,
)

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # shuts down the PostgreSQL every test shares

OUTAGE_SECONDS = 30


def _mariadb_inserter(stack, database: str):
    def write(i: int) -> None:
        conn = mariadb_connect(stack, database)
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO t VALUES (%s, %s)", (i, f"row {i}"))
            conn.commit()
        finally:
            conn.close()

    return write


def _task_states(connect, names: list[str]) -> dict[str, str]:
    states = {}
    for name in names:
        try:
            status = connect.status(name)
        except Exception as exc:  # noqa: BLE001 - the worker answers; a connector may be restarting
            states[name] = f"unknown ({type(exc).__name__})"
            continue
        if status is None:
            states[name] = "absent"
            continue
        tasks = ",".join(t["state"] for t in status.get("tasks") or [])
        states[name] = f"{status['connector']['state']}/{tasks or 'no task'}"
    return states


def _shut_down(stack, database: str) -> None:
    """PostgreSQL's fast shutdown (every session cut at once) or MariaDB's normal one (SIGTERM)."""
    service, sig = (
        (Postgres(stack), signal.SIGINT) if database == "postgresql" else (MariaDB(stack), signal.SIGTERM)
    )
    pid = PidFile(service.pid_file.path).running_pid()
    assert pid is not None, f"{database} is not running"
    os.kill(pid, sig)
    deadline = time.monotonic() + 30
    while PidFile(service.pid_file.path).running_pid() and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.mark.parametrize("database", ["postgresql", "mariadb"])
def test_a_database_outage_of_30_s_fails_no_task_and_loses_no_row(stack, connect, tmp_path, database):
    with (
        mariadb_database(stack, "osrc") as msrc,
        pg_database(stack, "otgt") as ptgt,
        pg_database(stack, "osrc") as psrc,
        mariadb_database(stack, "otgt") as mtgt,
    ):
        conn = mariadb_connect(stack, msrc)
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id int PRIMARY KEY, v varchar(40))")
        conn.commit()
        conn.close()
        with pg_connect(stack, psrc) as pconn:
            pconn.execute("CREATE TABLE t (id int PRIMARY KEY, v varchar(40))")
        to_pg, from_pg = unique("to_pg"), unique("from_pg")
        specs = write_specs(
            tmp_path,
            {"msrc": connection(stack, "mariadb", msrc), "ptgt": connection(stack, "postgresql", ptgt),
             "psrc": connection(stack, "postgresql", psrc), "mtgt": connection(stack, "mariadb", mtgt)},
            [{"name": to_pg, "source": "msrc", "target": "ptgt", "target_schema": "replica",
              "tables": {"names": [f"{msrc}.t"]}},
             {"name": from_pg, "source": "psrc", "target": "mtgt", "target_schema": mtgt,
              "tables": {"names": ["public.t"]}}],
        )  # fmt: skip
        writers = [SlowWriter(_mariadb_inserter(stack, msrc), 1), SlowWriter(pg_inserter(stack, psrc), 1)]
        connectors = [f"{to_pg}-sink", f"{to_pg}-source", f"{from_pg}-sink", f"{from_pg}-source"]
        seen: dict[str, set[str]] = {name: set() for name in connectors}
        try:
            materialize(stack, specs, to_pg)
            materialize(stack, specs, from_pg)
            for writer in writers:
                writer.start()
            time.sleep(3)
            _shut_down(stack, database)
            down_until = time.monotonic() + OUTAGE_SECONDS
            while time.monotonic() < down_until:
                for name, state in _task_states(connect, connectors).items():
                    seen[name].add(state)
                time.sleep(1)
            up(load_stack_settings(), echo=lambda *_: None)
            watch_until = time.monotonic() + 60
            while time.monotonic() < watch_until:
                for name, state in _task_states(connect, connectors).items():
                    seen[name].add(state)
                time.sleep(1)
            for writer in writers:
                writer.stop_event.set()
                writer.join()
            failed = {name: states for name, states in seen.items() if any("FAILED" in s for s in states)}
            assert not failed, f"tasks went FAILED during a {OUTAGE_SECONDS} s outage: {failed}"

            def pg_rows(db: str, schema: str):
                return lambda: [tuple(r) for r in pg_connect(stack, db).execute(f"SELECT id, v FROM {schema}.t ORDER BY 1").fetchall()]  # fmt: skip

            wait_for_equal(lambda: mariadb_rows(stack, msrc, "SELECT id, v FROM t ORDER BY 1"), pg_rows(ptgt, "replica"),
                           timeout=180)  # fmt: skip
            wait_for_equal(pg_rows(psrc, "public"), lambda: mariadb_rows(stack, mtgt, "SELECT id, v FROM t ORDER BY 1"),
                           timeout=180)  # fmt: skip
            print(f"{database} down {OUTAGE_SECONDS} s; rows written: MariaDB {writers[0].next_id - 1} "
                  f"({writers[0].errors} refused), PostgreSQL {writers[1].next_id - 1} ({writers[1].errors} refused); "
                  f"task states seen: {seen}")  # fmt: skip
        finally:
            for writer in writers:
                writer.stop_event.set()
            up(load_stack_settings(), echo=lambda *_: None)
            teardown(stack, connect, specs, to_pg)
            teardown(stack, connect, specs, from_pg)
