"""Large rows: up to 16 MiB per image through the full load and CDC, and a named stop above the limit.

A row is updated under REPLICA IDENTITY FULL (PostgreSQL) or a FULL binlog row image (MariaDB), so
the update's event carries the row twice. Values are poorly compressible (md5 text), so compression
cannot hide a size limit that would bite a real user.
"""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from cdc_platform.cli import cli
from cdc_platform.kafka_admin import max_message_bytes
from cdc_platform.ops.diagnosis import explain, first_failed_trace
from cdc_platform.pipeline.plan import build_plan
from cdc_platform.schema.discovery import discover_pipeline_tables
from tests.pipeline_support import connection, materialize, teardown, write_specs
from tests.support import mariadb_connect, mariadb_database, pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PG_BLOB = "(SELECT string_agg(md5((g + {seed})::text), '') FROM generate_series(1, {n}) g)"


def _pg_blob(mib: float, seed: int) -> str:
    return PG_BLOB.format(seed=seed, n=int(mib * MIB) // 32)


def _pg_digest(stack, db, schema):
    with pg_connect(stack, db) as conn:
        big = conn.execute(f"SELECT id, length(body), md5(body) FROM {schema}.big ORDER BY id").fetchall()
        small = conn.execute(f"SELECT id, v FROM {schema}.small ORDER BY id").fetchall()
    return big, small


def _mariadb_digest(stack, db):
    with mariadb_connect(stack, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, char_length(body), md5(body) FROM big ORDER BY id")
        big = list(cur.fetchall())
        cur.execute("SELECT id, v FROM small ORDER BY id")
        small = list(cur.fetchall())
    return big, small


def _wait_for_failed_source(connect, name: str, timeout: float = 120) -> str:
    """The trace of the pipeline's source task once it fails on an event over the limit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trace = first_failed_trace(connect.status(f"{name}-source"))
        if trace is not None:
            return trace
        time.sleep(1)
    raise AssertionError("the source task should stop on an event over the limit")


def _plan(stack, specs, name):
    spec = specs.pipelines[name].spec
    tables = discover_pipeline_tables(spec, specs.connection(spec.source), specs.directory)
    return build_plan(specs, spec, tables, stack.kafka_bootstrap)


def test_rows_up_to_16_mib_replicate_and_a_larger_event_stops_capture_with_its_table_named(
    stack, connect, tmp_path
):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE big (id int PRIMARY KEY, body text)")
            conn.execute("ALTER TABLE big REPLICA IDENTITY FULL")
            conn.execute("CREATE TABLE small (id int PRIMARY KEY, v int)")
            conn.execute(f"INSERT INTO big VALUES (1, {_pg_blob(15, 0)})")  # copied by the full load
        name = unique("large")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
              "tables": {"names": ["public.big", "public.small"]}}],
        )  # fmt: skip
        materialize(stack, specs, name)
        try:
            topics = [f"{name}.public.big", f"{name}.public.small"]
            assert set(max_message_bytes(stack.kafka_bootstrap, topics).values()) == {32 * MIB}
            with pg_connect(stack, src) as conn:
                conn.execute(f"INSERT INTO big VALUES (2, {_pg_blob(1, 1)}), (3, {_pg_blob(15, 2)})")
                conn.execute("INSERT INTO small SELECT g, g FROM generate_series(1, 100) g")
                # each update's event holds the old and the new 15 MiB image
                conn.execute("UPDATE big SET body = 'x' || body WHERE id IN (1, 3)")
                conn.execute("UPDATE small SET v = v + 1")
            wait_for_equal(lambda: _pg_digest(stack, src, "public"), lambda: _pg_digest(stack, tgt, "replica"),
                           timeout=180)  # fmt: skip

            # 20 MiB updated: 40 MiB in one event, over the 32 MiB limit. Capture stops, by design
            # (skipping would lose the change); the failure names the table and the limit.
            with pg_connect(stack, src) as conn:
                conn.execute(f"INSERT INTO big VALUES (4, {_pg_blob(20, 3)})")
                conn.execute("UPDATE big SET body = 'y' || body WHERE id = 4")
                conn.execute("INSERT INTO small VALUES (1000, 1)")
            trace = _wait_for_failed_source(connect, name)
            explanation = explain(_plan(stack, specs, name), trace, specs.directory)
            assert explanation.kind == "event_too_large" and explanation.table == "public.big"
            assert explanation.event_bytes and explanation.event_bytes > 40 * MIB
            assert "options.max_event_bytes = 33,554,432" in explanation.message
            out = CliRunner().invoke(cli, ["status", name, "--specs", str(specs.directory)])
            assert out.exit_code == 4, out.output
            assert "change of table public.big" in out.output and "FAILED" in out.output
        finally:
            teardown(stack, connect, specs, name)


@pytest.mark.parametrize("direction", ["pg_to_mariadb", "mariadb_to_pg", "mariadb_to_mariadb"])
def test_a_15_mib_row_replicates_on_every_other_pair(stack, connect, tmp_path, direction):
    with (
        pg_database(stack, "pg") as pg,
        mariadb_database(stack, "mdb") as mdb,
        mariadb_database(stack, "mdb2") as mdb2,
    ):
        if direction == "pg_to_mariadb":
            with pg_connect(stack, pg) as conn:
                conn.execute("CREATE TABLE big (id int PRIMARY KEY, body text)")
                conn.execute("CREATE TABLE small (id int PRIMARY KEY, v int)")
                conn.execute(f"INSERT INTO big VALUES (1, {_pg_blob(15, 0)})")
            source, target, tables, schema = (
                ("postgresql", pg),
                ("mariadb", mdb),
                ["public.big", "public.small"],
                mdb,
            )
        else:
            with mariadb_connect(stack, mdb) as conn, conn.cursor() as cur:
                cur.execute("CREATE TABLE big (id int PRIMARY KEY, body longtext)")
                cur.execute("CREATE TABLE small (id int PRIMARY KEY, v int)")
                cur.execute("SET SESSION group_concat_max_len = 67108864")
                cur.execute(
                    "INSERT INTO big SELECT 1, group_concat(md5(seq) SEPARATOR '') FROM seq_1_to_491520"
                )
            source, target, tables, schema = (
                ("mariadb", mdb),
                ("postgresql", pg),
                [f"{mdb}.big", f"{mdb}.small"],
                "replica",
            )
            if direction == "mariadb_to_mariadb":
                target, schema = ("mariadb", mdb2), mdb2
        name = unique("large")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, *source), "tgt": connection(stack, *target)},
            [{"name": name, "source": "src", "target": "tgt", "target_schema": schema, "tables": {"names": tables}}],
        )  # fmt: skip
        materialize(stack, specs, name)
        try:
            if direction == "pg_to_mariadb":
                with pg_connect(stack, pg) as conn:
                    conn.execute(f"INSERT INTO big VALUES (2, {_pg_blob(15, 2)})")
                    conn.execute("UPDATE big SET body = 'x' || body")
                    conn.execute("INSERT INTO small SELECT g, g FROM generate_series(1, 50) g")
                read_source = lambda: _pg_digest(stack, pg, "public")  # noqa: E731
                read_target = lambda: _mariadb_digest(stack, mdb)  # noqa: E731
            else:
                with mariadb_connect(stack, mdb) as conn, conn.cursor() as cur:
                    cur.execute("SET SESSION group_concat_max_len = 67108864")
                    cur.execute(
                        "INSERT INTO big SELECT 2, group_concat(md5(seq + 7) SEPARATOR '') FROM seq_1_to_491520"
                    )
                    cur.execute("UPDATE big SET body = concat('x', body)")
                    cur.execute("INSERT INTO small SELECT seq, seq FROM seq_1_to_50")
                read_source = lambda: _mariadb_digest(stack, mdb)  # noqa: E731
                read_target = (lambda: _mariadb_digest(stack, mdb2)) if direction == "mariadb_to_mariadb" \
                    else (lambda: _pg_digest(stack, pg, "replica"))  # fmt: skip
            expected = wait_for_equal(read_source, read_target, timeout=180)
            assert [r[1] for r in expected[0]] == [15 * MIB + 1] * 2
        finally:
            teardown(stack, connect, specs, name)


def test_an_event_over_the_limit_from_mariadb_names_its_table(stack, connect, tmp_path):
    with mariadb_database(stack, "mdb") as mdb, pg_database(stack, "pg") as pg:
        with mariadb_connect(stack, mdb) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE big (id int PRIMARY KEY, body longtext)")
            cur.execute("CREATE TABLE small (id int PRIMARY KEY, v int)")
        name = unique("large")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "mariadb", mdb), "tgt": connection(stack, "postgresql", pg)},
            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
              "tables": {"names": [f"{mdb}.big", f"{mdb}.small"]}}],
        )  # fmt: skip
        materialize(stack, specs, name)
        try:
            with mariadb_connect(stack, mdb) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO small VALUES (1, 1)")
                cur.execute("SET SESSION group_concat_max_len = 67108864")
                # 20 MiB inserted, then updated: 40 MiB in the update's event
                cur.execute(
                    "INSERT INTO big SELECT 1, group_concat(md5(seq) SEPARATOR '') FROM seq_1_to_655360"
                )
                cur.execute("UPDATE big SET body = concat('y', body)")
            trace = _wait_for_failed_source(connect, name)
            explanation = explain(_plan(stack, specs, name), trace, specs.directory, connect)
            assert explanation.kind == "event_too_large" and explanation.table == f"{mdb}.big", explanation
            assert f"change of table {mdb}.big" in explanation.message
        finally:
            teardown(stack, connect, specs, name)
