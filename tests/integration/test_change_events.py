"""What the change events on a pipeline's topics hold, read back from the real Kafka topics: lean
by default (no ``source``/``transaction`` blocks), Debezium's whole envelope with
``options.change_events: full``; replicated row for row either way."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import Consumer

from cdc_platform.pipeline.teardown import teardown_pipeline
from tests.pipeline_support import connection, materialize, write_specs
from tests.support import mariadb_connect, mariadb_database, pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration

ENVELOPE = {"before", "after", "op", "ts_ms"}


def _events(stack, topic: str, wanted: int, timeout: float = 60, match=lambda event: True) -> list[dict]:
    """The first ``wanted`` non-tombstone values of ``topic`` that ``match``, read from its start."""
    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": unique("events"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    out, deadline = [], time.monotonic() + timeout
    try:
        while len(out) < wanted and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error() or msg.value() is None:
                continue
            event = json.loads(msg.value())
            if match(event):
                out.append(event)
    finally:
        consumer.close()
    assert len(out) >= wanted, f"{topic}: {len(out)} events in {timeout:.0f} s, expected {wanted}"
    return out


def _fields(event: dict) -> set[str]:
    return {f["field"] for f in event["schema"]["fields"]}


def _pg_rows(stack, db, table):
    with pg_connect(stack, db) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


@pytest.mark.parametrize("change_events", [None, "full"])
def test_postgres_events_are_lean_by_default_and_whole_when_asked(stack, connect, tmp_path, change_events):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t VALUES (1, 'copied')")
        name = unique("ev")
        options = {"change_events": change_events} if change_events else {}
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
            [{"name": name, "source": "src", "target": "tgt", "tables": {"names": ["public.t"]},
              "target_schema": "replica", "options": options}],
        )  # fmt: skip
        materialize(stack, specs, name)
        try:
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t VALUES (2, 'b'), (3, 'c')")
                conn.execute("UPDATE t SET v = 'changed' WHERE id = 1")
                conn.execute("DELETE FROM t WHERE id = 2")
            wait_for_equal(
                lambda: _pg_rows(stack, src, "public.t"), lambda: _pg_rows(stack, tgt, "replica.t")
            )
            events = _events(stack, f"{name}.public.t", 4)
            assert [e["payload"]["op"] for e in events] == ["c", "c", "u", "d"]
            for event in events:
                if change_events == "full":
                    assert _fields(event) >= ENVELOPE | {"source", "transaction"}
                    assert event["payload"]["source"]["table"] == "t" and event["payload"]["source"]["lsn"]
                else:
                    assert _fields(event) == ENVELOPE and set(event["payload"]) == ENVELOPE
            assert events[-1]["payload"]["before"]["id"] == 2  # a delete still names its row
        finally:
            teardown_pipeline(name, connect, print, source=specs.connection("src"), specs_dir=specs.directory,
                              delete_topics=True, kafka_bootstrap=stack.kafka_bootstrap)  # fmt: skip


def test_mariadb_table_topics_are_lean_and_its_schema_change_topic_is_left_whole(stack, connect, tmp_path):
    with mariadb_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id int PRIMARY KEY, v varchar(20))")
            cur.execute("INSERT INTO t VALUES (1, 'copied')")
        name = unique("evm")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "mariadb", src), "tgt": connection(stack, "postgresql", tgt)},
            [{"name": name, "source": "src", "target": "tgt", "tables": {"names": [f"{src}.t"]},
              "target_schema": "replica"}],
        )  # fmt: skip
        materialize(stack, specs, name)
        try:
            with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO t VALUES (2, 'b')")
                cur.execute("UPDATE t SET v = 'changed' WHERE id = 1")
                cur.execute("DELETE FROM t WHERE id = 2")
                cur.execute("ALTER TABLE t ADD COLUMN n int")
                conn.commit()

            def source_rows():
                with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
                    cur.execute("SELECT id, v FROM t ORDER BY 1")
                    return [tuple(r) for r in cur.fetchall()]

            wait_for_equal(source_rows, lambda: [r[:2] for r in _pg_rows(stack, tgt, "replica.t")])
            events = _events(stack, f"{name}.{src}.t", 3)
            assert [e["payload"]["op"] for e in events] == ["c", "u", "d"]
            assert all(_fields(e) == ENVELOPE for e in events)
            assert events[1]["payload"]["before"] == {"id": 1, "v": "copied"}  # MariaDB's full before image
            ddl = _events(stack, name, 1, match=lambda e: "ALTER TABLE" in (e["payload"].get("ddl") or ""))
            assert ddl[0]["payload"]["source"]["table"] == "t"
        finally:
            teardown_pipeline(name, connect, print, source=specs.connection("src"), specs_dir=specs.directory,
                              delete_topics=True, kafka_bootstrap=stack.kafka_bootstrap)  # fmt: skip
