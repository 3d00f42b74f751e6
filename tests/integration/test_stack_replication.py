"""The real chain on the local stack: source DB -> Debezium -> Kafka -> JDBC sink -> target DB.

Connectors go through the worker's REST API with every password given as a config-provider
reference; each test asserts the stored config holds no password, then inserts, updates and deletes
and waits for the target to equal the source.
"""

from __future__ import annotations

import json

import pytest

from cdc_platform.connectors import (
    DatabaseEndpoint,
    SourceOptions,
    TableRef,
    debezium_source_config,
    jdbc_sink_config,
    topic_name,
)
from cdc_platform.settings import STACK_DB_USER
from tests.support import mariadb_connect, mariadb_database, pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration


def _endpoint(stack, kind: str, database: str) -> DatabaseEndpoint:
    service = "postgres" if kind == "postgresql" else "mariadb"
    return DatabaseEndpoint(
        kind=kind,
        host=stack.host,
        port=stack.port_of(service),
        database=database,
        username=STACK_DB_USER,
        password_ref=stack.secret_reference(service),
    )


def _assert_no_password(connect, name: str, stack) -> None:
    stored = connect.get_config(name)
    text = json.dumps(stored)
    for service in ("postgres", "mariadb"):
        assert stack.password(service) not in text, f"plaintext password in {name}'s stored config"
    password_keys = [k for k in stored if "password" in k]
    assert password_keys, f"{name} has no password key at all"
    for key in password_keys:
        assert stored[key].startswith("${file:") or stored[key].startswith("${env:"), (key, stored[key])


def _pg_rows(stack, db, table="items"):
    with pg_connect(stack, db) as conn:
        return [
            tuple(r) for r in conn.execute(f"SELECT id, name, qty FROM public.{table} ORDER BY id").fetchall()
        ]


def _mariadb_rows(stack, db, table="items"):
    with mariadb_connect(stack, db) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, name, qty FROM `{table}` ORDER BY id")
        return [tuple(r) for r in cur.fetchall()]


class _Changes:
    """The same insert / update / delete script, spoken in each source's SQL dialect."""

    SEED = [(1, "apple", 3), (2, "pear", 5), (3, "plum", 7)]

    @staticmethod
    def apply(execute) -> None:
        execute("INSERT INTO items (id, name, qty) VALUES (4, 'fig', 11), (5, 'kiwi', 13)")
        execute("UPDATE items SET qty = qty + 100, name = 'pear (ripe)' WHERE id = 2")
        execute("DELETE FROM items WHERE id = 3")
        execute("UPDATE items SET id = 40 WHERE id = 4")  # primary-key change


def _deploy(connect, source_cfg, sink_cfg) -> None:
    for cfg in (source_cfg, sink_cfg):
        connect.validate(cfg)
        connect.put_config(cfg["name"], cfg)
        connect.wait_running(cfg["name"])


def _cleanup(connect, *names) -> None:
    for name in names:
        connect.delete(name)


def test_postgres_to_postgres(stack, connect):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL, qty int)")
            conn.execute("INSERT INTO public.items VALUES (1, 'apple', 3), (2, 'pear', 5), (3, 'plum', 7)")
            pub, slot = unique("pub"), unique("slot")
            conn.execute(f"CREATE PUBLICATION {pub} FOR TABLE public.items")
        prefix = unique("pgpg")
        table = TableRef("public", "items")
        source = debezium_source_config(
            f"{prefix}-source", _endpoint(stack, "postgresql", src), [table],
            SourceOptions(topic_prefix=prefix, snapshot_mode="initial", slot_name=slot, publication_name=pub),
        )  # fmt: skip
        sink = jdbc_sink_config(
            f"{prefix}-sink", _endpoint(stack, "postgresql", tgt), "public",
            {topic_name("postgresql", prefix, src, table): "items"},
        )  # fmt: skip
        try:
            _deploy(connect, source, sink)
            _assert_no_password(connect, source["name"], stack)
            _assert_no_password(connect, sink["name"], stack)
            wait_for_equal(lambda: _pg_rows(stack, src), lambda: _pg_rows(stack, tgt))
            with pg_connect(stack, src) as conn:
                _Changes.apply(conn.execute)
            rows = wait_for_equal(lambda: _pg_rows(stack, src), lambda: _pg_rows(stack, tgt))
            assert rows == [(1, "apple", 3), (2, "pear (ripe)", 105), (5, "kiwi", 13), (40, "fig", 11)]
        finally:
            _cleanup(connect, source["name"], sink["name"])


def test_postgres_to_mariadb(stack, connect):
    with pg_database(stack, "src") as src, mariadb_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute(
                "CREATE TABLE public.items (id int PRIMARY KEY, name varchar(100) NOT NULL, qty int)"
            )
            conn.execute("INSERT INTO public.items VALUES (1, 'apple', 3), (2, 'pear', 5), (3, 'plum', 7)")
            pub, slot = unique("pub"), unique("slot")
            conn.execute(f"CREATE PUBLICATION {pub} FOR TABLE public.items")
        prefix = unique("pgmdb")
        table = TableRef("public", "items")
        source = debezium_source_config(
            f"{prefix}-source", _endpoint(stack, "postgresql", src), [table],
            SourceOptions(topic_prefix=prefix, snapshot_mode="initial", slot_name=slot, publication_name=pub),
        )  # fmt: skip
        sink = jdbc_sink_config(
            f"{prefix}-sink", _endpoint(stack, "mariadb", tgt), tgt,
            {topic_name("postgresql", prefix, src, table): "items"},
        )  # fmt: skip
        try:
            _deploy(connect, source, sink)
            _assert_no_password(connect, source["name"], stack)
            _assert_no_password(connect, sink["name"], stack)
            with pg_connect(stack, src) as conn:
                _Changes.apply(conn.execute)
            rows = wait_for_equal(lambda: _pg_rows(stack, src), lambda: _mariadb_rows(stack, tgt))
            assert rows == [(1, "apple", 3), (2, "pear (ripe)", 105), (5, "kiwi", 13), (40, "fig", 11)]
        finally:
            _cleanup(connect, source["name"], sink["name"])


def test_mariadb_to_postgres(stack, connect):
    with mariadb_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE items (id int PRIMARY KEY, name varchar(100) NOT NULL, qty int)")
            cur.execute("INSERT INTO items VALUES (1, 'apple', 3), (2, 'pear', 5), (3, 'plum', 7)")
        prefix = unique("mdbpg")
        table = TableRef(src, "items")
        source = debezium_source_config(
            f"{prefix}-source", _endpoint(stack, "mariadb", src), [table],
            SourceOptions(
                topic_prefix=prefix, snapshot_mode="initial", server_id=5400 + (hash(prefix) % 1000),
                kafka_bootstrap=stack.kafka_bootstrap, schema_history_topic=f"{prefix}.schema-history",
            ),
        )  # fmt: skip
        sink = jdbc_sink_config(
            f"{prefix}-sink", _endpoint(stack, "postgresql", tgt), "public",
            {topic_name("mariadb", prefix, src, table): "items"},
        )  # fmt: skip
        try:
            _deploy(connect, source, sink)
            _assert_no_password(connect, source["name"], stack)
            _assert_no_password(connect, sink["name"], stack)
            with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
                _Changes.apply(cur.execute)
            rows = wait_for_equal(lambda: _mariadb_rows(stack, src), lambda: _pg_rows(stack, tgt))
            assert rows == [(1, "apple", 3), (2, "pear (ripe)", 105), (5, "kiwi", 13), (40, "fig", 11)]
        finally:
            _cleanup(connect, source["name"], sink["name"])


def test_worker_runs_the_pinned_kafka_and_debezium_releases(stack, connect):
    """Readiness only proves the classes exist; a cache left from another release would still load.
    The worker must run the Kafka release and every plugin the Debezium release this project pins."""
    import httpx

    from cdc_platform.settings import DEBEZIUM_VERSION, KAFKA_VERSION
    from cdc_platform.stack.services import REQUIRED_PLUGINS

    assert httpx.get(stack.connect_url, timeout=10).json()["version"] == KAFKA_VERSION
    versions = {p["class"]: p.get("version") for p in connect.plugins()}
    assert {cls: versions.get(cls) for cls in REQUIRED_PLUGINS} == dict.fromkeys(
        REQUIRED_PLUGINS, DEBEZIUM_VERSION
    )


def test_validate_surfaces_the_plugins_errors_per_field(connect):
    from cdc_platform.kafka_connect import ConnectorConfigInvalid

    config = {"name": "broken-source", "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
              "database.hostname": "127.0.0.1", "database.port": "not-a-port", "topic.prefix": "broken"}  # fmt: skip
    with pytest.raises(ConnectorConfigInvalid) as info:
        connect.validate(config)
    assert "database.port" in info.value.errors
    assert "broken-source" in str(info.value)
    assert connect.get_config("broken-source") is None  # validating deploys nothing
