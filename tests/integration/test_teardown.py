"""Teardown from the pipeline's name alone: spec gone, or source down; replica identities restored,
the sink's consumer group deleted."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from confluent_kafka.admin import AdminClient

from tests.pipeline_support import connection, materialize, write_specs
from tests.support import pg_connect, pg_database, unique

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "cdc_platform.cli"]


def _teardown_cli(name, specs_dir):
    return subprocess.run([*CLI, "teardown", name, "--delete-topics"], capture_output=True, text=True,
                          env={**os.environ, "CDC_SPECS_DIR": str(specs_dir)})  # fmt: skip


def _groups(stack) -> set[str]:
    admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    return {g.group_id for g in admin.list_consumer_groups(request_timeout=10).result().valid}


def _deploy(stack, tmp_path, src, tgt):
    with pg_connect(stack, src) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")  # TOAST-able: switched to FULL
        conn.execute("CREATE TABLE keyed (id int PRIMARY KEY, v int)")
        conn.execute("ALTER TABLE keyed REPLICA IDENTITY FULL")  # the user's own choice: stays
        conn.execute("INSERT INTO docs VALUES (1, 'a')")
    name = unique("td")
    specs = write_specs(
        tmp_path,
        {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
        [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
          "tables": {"names": ["public.docs", "public.keyed"]}}],
    )  # fmt: skip
    materialize(stack, specs, name)
    from tests.support import wait_for_equal

    with pg_connect(stack, src) as conn:
        conn.execute("INSERT INTO docs VALUES (2, 'b')")
    wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT * FROM docs ORDER BY id").fetchall(),
                   lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.docs ORDER BY id").fetchall())  # fmt: skip
    return specs, name


def _replica_identities(stack, db):
    with pg_connect(stack, db) as conn:
        return dict(conn.execute("SELECT relname, relreplident FROM pg_class WHERE relname IN ('docs', 'keyed')")
                    .fetchall())  # fmt: skip


def test_teardown_without_the_spec_removes_everything_by_name(stack, connect, tmp_path):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        specs, name = _deploy(stack, tmp_path / "specs", src, tgt)
        assert _replica_identities(stack, src) == {"docs": "f", "keyed": "f"}
        assert f"connect-{name}-sink" in _groups(stack)
        empty = tmp_path / "empty"
        empty.mkdir()
        result = _teardown_cli(name, empty)  # the spec is gone
        assert result.returncode == 0, result.stdout + result.stderr
        assert connect.get_config(f"{name}-source") is None and connect.get_config(f"{name}-sink") is None
        with pg_connect(stack, src) as conn:
            assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                                (f"cdc_{name}",)).fetchone()[0] == 0  # fmt: skip
            assert conn.execute("SELECT count(*) FROM pg_publication WHERE pubname = %s",
                                (f"cdc_{name}",)).fetchone()[0] == 0  # fmt: skip
        assert _replica_identities(stack, src) == {"docs": "d", "keyed": "f"}, "only what the platform set"
        assert f"connect-{name}-sink" not in _groups(stack)
        assert "restored the default replica identity of public.docs" in result.stdout
        with pg_connect(stack, tgt) as conn:
            assert conn.execute("SELECT count(*) FROM replica.docs").fetchone()[0] == 2, "target data stays"


def test_teardown_with_the_source_down_removes_the_rest_and_names_what_is_left(stack, connect, tmp_path):
    import yaml

    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        specs, name = _deploy(stack, tmp_path, src, tgt)
        # the source becomes unreachable: its spec now points at a port where nothing listens
        connections = yaml.safe_load((tmp_path / "connections.yaml").read_text())
        connections["connections"]["src"]["port"] = 9
        (tmp_path / "connections.yaml").write_text(yaml.safe_dump(connections))
        result = _teardown_cli(name, tmp_path)
        assert result.returncode == 5, result.stdout + result.stderr
        assert f"replication slot cdc_{name}" in result.stderr and "unreachable" in result.stderr
        assert "REPLICA IDENTITY FULL on public.docs" in result.stderr
        assert connect.get_config(f"{name}-sink") is None and f"connect-{name}-sink" not in _groups(stack)
        assert connect.status(f"{name}-source")["connector"]["state"] == "STOPPED", "kept as the record"
        # the source is back: the same command finishes the job (the spec knows the connection)
        connections["connections"]["src"]["port"] = stack.postgres_port
        (tmp_path / "connections.yaml").write_text(yaml.safe_dump(connections))
        again = _teardown_cli(name, tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"dropped replication slot cdc_{name}" in again.stdout
        assert "restored the default replica identity of public.docs" in again.stdout
        assert connect.get_config(f"{name}-source") is None


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_pipeline_created_again_under_the_same_name_starts_fresh(stack, connect, tmp_path, kind):
    """Connect keeps a deleted connector's offsets; teardown deletes them, so the same pipeline
    materialized again starts from its new slot (or binlog position), not from the old one."""
    from tests.pipeline_support import teardown
    from tests.support import mariadb_connect, mariadb_database, mariadb_rows, wait_for_equal

    name = unique("again")
    database = pg_database if kind == "postgresql" else mariadb_database
    with database(stack, "src") as src, pg_database(stack, "tgt") as tgt:

        def source_sql(statement: str) -> None:
            if kind == "postgresql":
                with pg_connect(stack, src) as conn:
                    conn.execute(statement)
                return
            conn = mariadb_connect(stack, src)
            try:
                with conn.cursor() as cur:
                    cur.execute(statement)
                conn.commit()
            finally:
                conn.close()

        def source_rows():
            if kind == "postgresql":
                return pg_connect(stack, src).execute("SELECT id, v FROM t ORDER BY 1").fetchall()
            return mariadb_rows(stack, src, "SELECT id, v FROM t ORDER BY 1")

        source_sql("CREATE TABLE t (id int PRIMARY KEY, v int)")
        source_sql("INSERT INTO t VALUES (1, 1)")
        schema = "public" if kind == "postgresql" else src
        specs = write_specs(tmp_path, {"src": connection(stack, kind, src), "tgt": connection(stack, "postgresql", tgt)},
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
                              "tables": {"names": [f"{schema}.t"]}}])  # fmt: skip

        def target_rows():
            return pg_connect(stack, tgt).execute("SELECT id, v FROM replica.t ORDER BY 1").fetchall()

        try:
            materialize(stack, specs, name)
            source_sql("INSERT INTO t VALUES (2, 2)")
            wait_for_equal(source_rows, target_rows)
            teardown(stack, connect, specs, name)
            source_sql("INSERT INTO t VALUES (3, 3)")  # while nothing is deployed
            materialize(stack, specs, name)  # copies again, then streams from the new position
            source_sql("INSERT INTO t VALUES (4, 4)")
            wait_for_equal(source_rows, target_rows)
            status = connect.status(f"{name}-source") or {}
            assert [t["state"] for t in status.get("tasks", [])] == ["RUNNING"], status
        finally:
            teardown(stack, connect, specs, name)
