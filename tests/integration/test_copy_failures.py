"""Copy paths end with the original error when either side fails mid-copy, and a failed re-load of
a MySQL/MariaDB table leaves its previous rows in place."""

from __future__ import annotations

import contextlib
import threading
import time

import dagster as dg
import pytest

from cdc_platform.pipeline.full_load import FullLoadError, copy_table
from cdc_platform.schema.ddl import create_table_sql
from cdc_platform.schema.discovery import discover_pipeline_tables
from cdc_platform.schema.model import CopyJob
from tests.faults import killer
from tests.pipeline_support import connection, create_target_table, materialize, teardown, write_specs
from tests.support import mariadb_connect, mariadb_database, pg_connect, pg_database, unique

pytestmark = pytest.mark.integration
ROWS = 3_000_000


def _pg_to_mariadb_job(stack, tmp_path, src, tgt, streams: int = 1):
    specs = write_specs(
        tmp_path,
        {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "mariadb", tgt)},
        [{"name": unique("kill"), "source": "src", "target": "tgt", "target_schema": tgt, "mode": "full_load_only",
          "tables": {"names": ["public.big"]}}],
    )  # fmt: skip
    spec = next(iter(specs.pipelines.values())).spec
    table = discover_pipeline_tables(spec, specs.connection("src"), specs.directory)[0]
    with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
        cur.execute(create_table_sql("mariadb", tgt, "big", table, source_kind="postgresql"))
    return specs, CopyJob(table, tgt, "big", streams=streams)


@pytest.mark.parametrize("streams", [1, 2])
@pytest.mark.parametrize("side", ["postgres", "mariadb"])
def test_killing_either_side_of_the_fifo_copy_ends_it_with_the_original_error(stack, tmp_path, side, streams):
    """With two streams (two ranges of the table's pages, each its own psql and LOAD DATA session),
    one range's reader or loading session is killed: the other range's rows must not be committed."""
    with pg_database(stack, "src") as src, mariadb_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE big (id int PRIMARY KEY, v text)")
            conn.execute(f"INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g")
        specs, job = _pg_to_mariadb_job(stack, tmp_path, src, tgt, streams)

        def kill() -> bool:
            if side == "postgres":
                # with two ranges, only the second one's reader: its pages begin at a ctid bound
                with pg_connect(stack) as admin:
                    return bool(admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                              "WHERE datname = %s AND query LIKE 'COPY%%' "
                                              "AND (%s = 1 OR query LIKE '%%ctid >=%%')", (src, streams)).fetchall())  # fmt: skip
            with mariadb_connect(stack) as admin, admin.cursor() as cur:
                cur.execute(
                    "SELECT id FROM information_schema.processlist WHERE info LIKE 'LOAD DATA%%' AND db = %s",
                    (tgt,),
                )
                found = cur.fetchall()
                if len(found) < streams:  # not every range's load has begun yet
                    return False
                cur.execute(f"KILL {int(found[0][0])}")  # one loading session, whatever their number
                return True

        killer(kill)
        logged: list[str] = []
        started = time.monotonic()
        with pytest.raises(Exception) as failure:
            copy_table(
                specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=logged.append
            )
        assert (streams > 1) == any("2 ranges of its pages at once" in m for m in logged), logged
        elapsed = time.monotonic() - started
        assert elapsed < 30, f"the copy took {elapsed:.0f} s to end after its {side} side was killed"
        if side == "postgres":
            # the PostgreSQL side's own error (its wording depends on timing and on TLS: the admin
            # command, a closed connection, or an SSL EOF), not one from the MariaDB side: psql's
            # message when psql reads the source, else psycopg's
            import psycopg

            from cdc_platform.pipeline.pg_client import psql_for

            if psql_for():
                assert isinstance(failure.value, FullLoadError), repr(failure.value)
                assert "public.big: reading the source failed: " in str(failure.value), str(failure.value)
            else:
                assert isinstance(failure.value, psycopg.OperationalError), repr(failure.value)
        else:
            assert "loading session" in str(failure.value), str(failure.value)
        with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM big")
            assert cur.fetchone()[0] == 0, "nothing of a failed copy is committed"
            cur.execute("SHOW TABLES")
            assert [r[0] for r in cur.fetchall()] == ["big"], "the shadow table is cleaned up"


def test_a_load_data_that_never_starts_does_not_leave_the_copy_waiting(stack, tmp_path):
    """The target refuses the statement before it opens the FIFO: the producer must not block."""
    with pg_database(stack, "src") as src, mariadb_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE big (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO big VALUES (1, 'a')")
        specs, job = _pg_to_mariadb_job(stack, tmp_path, src, tgt)
        with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
            cur.execute("DROP TABLE big")  # CREATE TABLE ... LIKE fails before any LOAD DATA
        started = time.monotonic()
        with pytest.raises(Exception, match="doesn't exist"):
            copy_table(
                specs.connection("src"), specs.connection("tgt"), job, specs.directory, log=lambda _m: None
            )
        assert time.monotonic() - started < 15
        assert not [t for t in threading.enumerate() if t.name.startswith("copy public.big")], (
            "producer left behind"
        )


def test_a_failed_reload_of_a_mariadb_table_keeps_its_rows_and_the_pipeline_running(stack, connect, tmp_path):
    with pg_database(stack, "src") as src, mariadb_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v varchar(20))")
            conn.execute("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g")
        name = unique("reload")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "mariadb", tgt)},
            [{"name": name, "source": "src", "target": "tgt", "target_schema": tgt, "tables": {"names": ["public.t"]}}],
        )  # fmt: skip
        materialize(stack, specs, name)
        try:
            # the target column shrank behind the platform's back: a re-load must fail without
            # touching the rows the target has
            with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
                cur.execute("UPDATE t SET v = left(v, 3)")
                cur.execute("ALTER TABLE t MODIFY v varchar(3)")
            with pytest.raises(Exception) as failure:
                materialize(stack, specs, name, selection=[dg.AssetKey(["tgt", tgt, "t"])])
            text = str(failure.value) + str(failure.value.__cause__)
            assert "warning" in text.lower() or "too long" in text.lower(), text
            with mariadb_connect(stack, tgt) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM t")
                assert cur.fetchone()[0] == 1000, "the previous rows must stay"
            connect.wait_running(f"{name}-sink", timeout=30)  # the sink resumes over intact data
        finally:
            teardown(stack, connect, specs, name)


def test_full_load_error_type_is_exported():
    assert issubclass(FullLoadError, RuntimeError)


@pytest.mark.parametrize("target", ["postgresql", "mariadb"])
def test_killing_the_mariadb_source_session_mid_copy_ends_the_copy(stack, tmp_path, target):
    with mariadb_database(stack, "src") as src, mariadb_database(stack, "tgt") as my_tgt, \
            pg_database(stack, "tgt") as pg_tgt:  # fmt: skip
        with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE big (id int PRIMARY KEY, v varchar(40))")
            cur.execute("INSERT INTO big SELECT seq, md5(seq) FROM seq_1_to_1500000")
        tgt, schema = (pg_tgt, "replica") if target == "postgresql" else (my_tgt, my_tgt)
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "mariadb", src), "tgt": connection(stack, target, tgt)},
            [{"name": unique("kill"), "source": "src", "target": "tgt", "target_schema": schema,
              "mode": "full_load_only", "tables": {"names": [f"{src}.big"]}}],
        )  # fmt: skip
        spec = next(iter(specs.pipelines.values())).spec
        table = discover_pipeline_tables(spec, specs.connection("src"), specs.directory)[0]
        create_target_table(stack, target, tgt, "big", table, "mariadb")

        def kill() -> bool:
            with mariadb_connect(stack) as admin, admin.cursor() as cur:
                cur.execute(
                    "SELECT id FROM information_schema.processlist WHERE info LIKE %s",
                    (f"SELECT%`{src}`.`big`",),
                )
                found = cur.fetchall()
                for (conn_id,) in found:
                    cur.execute(f"KILL {int(conn_id)}")
                return bool(found)

        # as soon as the statement shows: on a fast machine the whole read takes about a second, and a
        # kill that lands after the server sent its last row ends nothing
        killer(kill, delay=0.0, every=0.05)
        started = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017 - the driver's own error, or ours naming the session
            copy_table(specs.connection("src"), specs.connection("tgt"), CopyJob(table, schema, "big"),
                       specs.directory, log=lambda _m: None)  # fmt: skip
        assert time.monotonic() - started < 30


def test_a_session_killed_before_the_watchdog_looked_is_still_named(stack, tmp_path):
    """The server may close a killed session's socket at once: pymysql then fails on its own (with
    an AttributeError from its closed socket) before the watchdog's next look. The error must still
    say that the loading session ended."""
    from cdc_platform.db import mysql_connect
    from cdc_platform.pipeline.mysql_session import session_watchdog

    with mariadb_database(stack, "tgt") as tgt:
        specs = write_specs(tmp_path, {"tgt": connection(stack, "mariadb", tgt)}, [])
        dst = specs.connection("tgt")
        dconn = mysql_connect(dst, specs.directory)
        try:
            with mariadb_connect(stack) as admin, admin.cursor() as cur:
                cur.execute(f"KILL {int(dconn.thread_id())}")
            cut: list[str] = []
            with pytest.raises(AttributeError), session_watchdog(dconn, dst, specs.directory, cut, every=60):
                raise AttributeError("'NoneType' object has no attribute 'sendall'")
            assert cut and "ended mid-copy" in cut[0] and str(dconn.thread_id()) in cut[0]
        finally:
            with contextlib.suppress(Exception):
                dconn.close()
