"""Pipelines from YAML specs, materialized as Dagster assets on the real stack, compared row by row."""

from __future__ import annotations

import random
import threading
import time
from contextlib import contextmanager

import dagster as dg
import pytest
from confluent_kafka import Consumer, TopicPartition

from cdc_platform.health.collect import PipelineWatch, TableWatch, kafka_offsets
from cdc_platform.pipeline.plan import PipelineNames, table_topic
from tests.pipeline_support import connection, materializations, materialize, teardown, write_specs
from tests.support import mariadb_connect, mariadb_database, pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration


class Writer(threading.Thread):
    """Inserts, updates, deletes and primary-key changes on ``big`` until stopped."""

    def __init__(self, connect_fn, first_free_id: int, dialect: str):
        super().__init__(daemon=True)
        self.connect_fn, self.next_id, self.dialect = connect_fn, first_free_id, dialect
        self.stop_event, self.ops, self.error = threading.Event(), 0, None

    def run(self) -> None:
        rng = random.Random(7)
        conn = self.connect_fn()
        try:
            cur = conn.cursor()
            while not self.stop_event.is_set():
                op = rng.random()
                target = rng.randint(1, self.next_id - 1)
                if op < 0.35:
                    cur.execute(
                        "INSERT INTO big (id, val, n) VALUES (%s, %s, %s)",
                        (self.next_id, f"new {self.next_id}", 0),
                    )
                    self.next_id += 1
                elif op < 0.75:
                    cur.execute(
                        "UPDATE big SET n = n + 1, val = %s WHERE id = %s", (f"upd {self.ops}", target)
                    )
                elif op < 0.92:
                    cur.execute("DELETE FROM big WHERE id = %s", (target,))
                else:
                    cur.execute("UPDATE big SET id = %s WHERE id = %s", (self.next_id, target))
                    self.next_id += 1
                self.ops += 1
                if self.dialect == "mysql":
                    conn.commit()
        except Exception as exc:  # noqa: BLE001 - surfaced by the test
            self.error = exc
        finally:
            conn.close()


@contextmanager
def writing(writer: Writer, *, settle: float = 1.0):
    """Run ``writer`` around the block (and ``settle`` seconds after it); then check it made changes cleanly."""
    writer.start()
    try:
        yield writer
        time.sleep(settle)
    finally:
        writer.stop_event.set()
        writer.join()
    assert writer.error is None, writer.error
    assert writer.ops > 50, f"the writer made only {writer.ops} changes"


def _pg_big(stack, db, schema="public"):
    with pg_connect(stack, db) as conn:
        return conn.execute(f"SELECT id, val, n FROM {schema}.big ORDER BY id").fetchall()


def _mariadb_big(stack, db):
    with mariadb_connect(stack, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, val, n FROM big ORDER BY id")
        return [tuple(r) for r in cur.fetchall()]


def test_postgres_to_postgres_handoff_under_concurrent_writes(stack, connect, tmp_path):
    """200,000 rows copied while a writer changes the source; afterwards source == target row by row."""
    rows = 200_000
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, val text NOT NULL, n int NOT NULL)")
            conn.execute(f"INSERT INTO big SELECT g, 'row ' || g, 0 FROM generate_series(1, {rows}) g")
            conn.execute("CREATE TABLE small (id int PRIMARY KEY, label varchar(20))")
            conn.execute("INSERT INTO small VALUES (1, 'one'), (2, 'two')")
        name = unique("hand")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
            [{"name": name, "source": "src", "target": "tgt", "tables": {"schema": "public"},
              "target_schema": "replica", "options": {"parallelism": 2, "batch_size": 5000}}],
        )  # fmt: skip
        with writing(Writer(lambda: pg_connect(stack, src), rows + 1, "postgresql"), settle=2):
            time.sleep(0.5)
            result = materialize(stack, specs, name)
        try:
            meta = materializations(result)
            assert meta[("tgt", "replica", "big")]["dagster/row_count"].value >= rows * 0.9
            final = wait_for_equal(
                lambda: _pg_big(stack, src), lambda: _pg_big(stack, tgt, "replica"), timeout=180
            )
            assert len(final) > rows * 0.9
            with pg_connect(stack, tgt) as conn:
                assert conn.execute("SELECT count(*) FROM replica.small").fetchone()[0] == 2
        finally:
            teardown(stack, connect, specs, name)
        with pg_connect(stack, src) as conn:
            assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                                (f"cdc_{name}",)).fetchone()[0] == 0  # fmt: skip


def test_postgres_to_mariadb_pipeline(stack, connect, tmp_path):
    with pg_database(stack, "src") as src, mariadb_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE big (id bigint PRIMARY KEY, val text NOT NULL, n int NOT NULL)")
            conn.execute("INSERT INTO big SELECT g, 'row ' || g, 0 FROM generate_series(1, 20000) g")
        name = unique("pgmdb")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "mariadb", "mysql")},
            [{"name": name, "source": "src", "target": "tgt", "tables": {"names": ["public.big"]},
              "target_schema": tgt}],
        )  # fmt: skip
        with writing(Writer(lambda: pg_connect(stack, src), 20_001, "postgresql")):
            materialize(stack, specs, name)
        try:
            wait_for_equal(lambda: _pg_big(stack, src), lambda: _mariadb_big(stack, tgt), timeout=180)
        finally:
            teardown(stack, connect, specs, name)


def test_mariadb_to_postgres_pipeline_capture_first(stack, connect, tmp_path):
    with mariadb_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE big (id bigint PRIMARY KEY, val varchar(100) NOT NULL, n int NOT NULL)")
            cur.execute("INSERT INTO big SELECT seq, CONCAT('row ', seq), 0 FROM seq_1_to_20000")
        name = unique("mdbpg")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "mariadb", src), "tgt": connection(stack, "postgresql", tgt)},
            [{"name": name, "source": "src", "target": "tgt", "tables": {"names": [f"{src}.big"]},
              "target_schema": "replica"}],
        )  # fmt: skip
        with writing(Writer(lambda: mariadb_connect(stack, src), 20_001, "mysql")):
            materialize(stack, specs, name)
        try:
            wait_for_equal(
                lambda: _mariadb_big(stack, src), lambda: _pg_big(stack, tgt, "replica"), timeout=180
            )
        finally:
            teardown(stack, connect, specs, name)


def test_rematerializing_connectors_is_a_no_op_until_the_config_changes(stack, connect, tmp_path):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t VALUES (1, 'a')")
        name = unique("idem")
        conns = {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)}
        pipeline = {"name": name, "source": "src", "target": "tgt", "tables": {"names": ["public.t"]},
                    "target_schema": "replica"}  # fmt: skip
        specs = write_specs(tmp_path, conns, [pipeline])
        materialize(stack, specs, name)
        connectors = [dg.AssetKey([name, "source_connector"]), dg.AssetKey([name, "sink_connector"])]
        try:
            again = materializations(materialize(stack, specs, name, selection=connectors))
            assert again[(name, "sink_connector")]["action"].value == "unchanged"
            assert again[(name, "source_connector")]["action"].value == "unchanged"
            changed = write_specs(tmp_path, conns, [{**pipeline, "options": {"batch_size": 777}}])
            after = materializations(materialize(stack, changed, name, selection=connectors))
            sink = after[(name, "sink_connector")]
            assert sink["action"].value == "updated"
            assert sink["config_diff"].value["batch.size"] == {"old": "10000", "new": "777"}
            assert "password" not in str(sink["config_diff"].value)
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t VALUES (2, 'b')")
            wait_for_equal(
                lambda: pg_connect(stack, src).execute("SELECT * FROM public.t ORDER BY 1").fetchall(),
                lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall(),
            )
        finally:
            teardown(stack, connect, specs, name)


def _pg_rows(stack, db, sql):
    with pg_connect(stack, db) as conn:
        return conn.execute(sql).fetchall()


def test_reloading_one_table_of_a_running_pipeline_repairs_it_without_losing_changes(
    stack, connect, tmp_path
):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE a (id int PRIMARY KEY, v text)")
            conn.execute("CREATE TABLE b (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 500) g")
            conn.execute("INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 500) g")
        name = unique("reload")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
            [{"name": name, "source": "src", "target": "tgt", "tables": {"names": ["public.a", "public.b"]},
              "target_schema": "replica"}],
        )  # fmt: skip
        materialize(stack, specs, name)
        try:
            with pg_connect(stack, tgt) as conn:  # damage the target behind the pipeline's back
                conn.execute("DELETE FROM replica.a WHERE id % 2 = 0")
            with pg_connect(stack, src) as conn:  # a change captured while the sink is about to stop
                conn.execute("UPDATE b SET v = 'during' WHERE id = 1")
            result = materializations(
                materialize(stack, specs, name, selection=[dg.AssetKey(["tgt", "replica", "a"])])
            )
            assert set(result) == {("tgt", "replica", "a")}
            assert result[("tgt", "replica", "a")]["dagster/row_count"].value == 500
            with pg_connect(stack, src) as conn:
                conn.execute("UPDATE a SET v = 'after reload' WHERE id <= 5")
                conn.execute("INSERT INTO b VALUES (501, 'b501')")
            for table in ("a", "b"):
                wait_for_equal(lambda t=table: _pg_rows(stack, src, f"SELECT * FROM public.{t} ORDER BY 1"),
                               lambda t=table: _pg_rows(stack, tgt, f"SELECT * FROM replica.{t} ORDER BY 1"))  # fmt: skip
            assert connect.status(f"{name}-sink")["connector"]["state"] == "RUNNING"
        finally:
            teardown(stack, connect, specs, name)


def test_full_load_only_and_cdc_only_modes(stack, connect, tmp_path):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t VALUES (1, 'before')")
        conns = {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)}
        copy_name, stream_name = unique("copyonly"), unique("streamonly")
        specs = write_specs(tmp_path, conns, [
            {"name": copy_name, "source": "src", "target": "tgt", "mode": "full_load_only",
             "tables": {"names": ["public.t"]}, "target_schema": "copied"},
            {"name": stream_name, "source": "src", "target": "tgt", "mode": "cdc_only",
             "tables": {"names": ["public.t"]}, "target_schema": "streamed"},
        ])  # fmt: skip
        materialize(stack, specs, copy_name)
        assert not [c for c in connect.list_connectors() if c.startswith(copy_name)]
        assert _pg_rows(stack, tgt, "SELECT * FROM copied.t") == [(1, "before")]
        materialize(stack, specs, stream_name)
        try:
            assert _pg_rows(stack, tgt, "SELECT count(*) FROM streamed.t") == [(0,)]  # no copy in cdc_only
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t VALUES (2, 'after')")
            wait_for_equal(
                lambda: [(2, "after")], lambda: _pg_rows(stack, tgt, "SELECT * FROM streamed.t ORDER BY 1")
            )
        finally:
            teardown(stack, connect, specs, stream_name)


def test_table_without_primary_key_replicates_with_a_declared_key(stack, connect, tmp_path):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE events (tenant int NOT NULL, seq int NOT NULL, payload text)")
            conn.execute("INSERT INTO events SELECT g % 3, g, 'p' || g FROM generate_series(1, 300) g")
        name = unique("nokey")
        pipeline = {"name": name, "source": "src", "target": "tgt", "tables": {"names": ["public.events"]},
                    "target_schema": "replica"}  # fmt: skip
        conns = {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)}
        with pytest.raises(Exception, match="has no primary key"):
            materialize(stack, write_specs(tmp_path, conns, [pipeline]), name)
        assert not [c for c in connect.list_connectors() if c.startswith(name)]  # nothing deployed
        specs = write_specs(tmp_path, conns,
                            [{**pipeline, "overrides": {"public.events": {"primary_key": ["tenant", "seq"]}}}])  # fmt: skip
        materialize(stack, specs, name)
        try:
            with pg_connect(stack, src) as conn:
                conn.execute("UPDATE events SET payload = 'changed' WHERE seq <= 10")
                conn.execute("DELETE FROM events WHERE seq BETWEEN 11 AND 20")
                conn.execute("INSERT INTO events VALUES (9, 1, 'new')")
            query = "SELECT tenant, seq, payload FROM {}.events ORDER BY 1, 2"
            wait_for_equal(lambda: _pg_rows(stack, src, query.format("public")),
                           lambda: _pg_rows(stack, tgt, query.format("replica")))  # fmt: skip
        finally:
            teardown(stack, connect, specs, name)


def test_a_failed_first_deploy_is_rolled_back(stack, connect, tmp_path):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        name = unique("reject")
        target = {**connection(stack, "postgresql", tgt), "options": {"insert.mode": "sometimes"}}
        specs = write_specs(tmp_path, {"src": connection(stack, "postgresql", src), "tgt": target},
                            [{"name": name, "source": "src", "target": "tgt", "tables": {"names": ["public.t"]},
                              "target_schema": "replica"}])  # fmt: skip
        # the plugin's validate endpoint accepts this value; the sink fails only when it starts
        with pytest.raises(Exception, match=f"{name}-sink' failed"):
            materialize(stack, specs, name)
        assert not [c for c in connect.list_connectors() if c.startswith(name)]
        with pg_connect(stack, src) as conn:
            assert conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s",
                                (f"cdc_{name}",)).fetchone()[0] == 0  # fmt: skip
        with pg_connect(stack, src) as conn:
            assert conn.execute("SELECT count(*) FROM pg_publication WHERE pubname = %s",
                                (f"cdc_{name}",)).fetchone()[0] == 0  # fmt: skip


#: many changes of the same keys, committed while the sink is paused so that they reach it in one
#: batch: the reduction buffer keeps the last change of each key (issue 35); the target must end
#: exactly as the changes applied one by one would leave it
CHURN = [
    "INSERT INTO churn SELECT g, 'new ' || g, 0 FROM generate_series(1, 50) g",
    "UPDATE churn SET n = n + 1, v = 'first update'",
    "UPDATE churn SET n = n + 1, v = 'second update' WHERE id % 3 = 0",
    "DELETE FROM churn WHERE id % 2 = 1",
    "INSERT INTO churn SELECT g, 'back ' || g, 7 FROM generate_series(1, 19, 2) g",
    "UPDATE churn SET id = 1002 WHERE id = 2",
    "UPDATE churn SET id = 2002, v = 'moved twice' WHERE id = 1002",
    "INSERT INTO churn VALUES (1001, 'short-lived', 0)",
    "DELETE FROM churn WHERE id = 1001",
    "UPDATE churn SET v = 'before its delete' WHERE id = 4",
    "DELETE FROM churn WHERE id = 4",
    "INSERT INTO churn VALUES (4, 'reborn', 1)",
    "UPDATE churn SET n = 42 WHERE id = 4",
    "DELETE FROM churn WHERE id BETWEEN 40 AND 50",
]


@pytest.mark.parametrize("target_kind", ["postgresql", "mariadb"])
def test_changes_of_one_key_in_one_sink_batch_end_as_applied_one_by_one(
    stack, connect, tmp_path, target_kind
):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as pg_tgt, \
            mariadb_database(stack, "tgt") as my_tgt:  # fmt: skip
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE churn (id bigint PRIMARY KEY, v text NOT NULL, n int NOT NULL)")
        tgt = pg_tgt if target_kind == "postgresql" else my_tgt
        name = unique("churn")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, target_kind, tgt)},
            [{"name": name, "source": "src", "target": "tgt", "tables": {"names": ["public.churn"]},
              "target_schema": "replica" if target_kind == "postgresql" else tgt}],
        )  # fmt: skip
        materialize(stack, specs, name)
        sink = PipelineNames(name).sink_connector
        read_source = lambda: _pg_rows(stack, src, "SELECT id, v, n FROM churn ORDER BY id")  # noqa: E731
        if target_kind == "postgresql":
            read_target = lambda: _pg_rows(stack, tgt, "SELECT id, v, n FROM replica.churn ORDER BY id")  # noqa: E731
        else:
            read_target = lambda: [tuple(r) for r in _mariadb_churn(stack, tgt)]  # noqa: E731
        try:
            connect.pause(sink)
            with pg_connect(stack, src) as conn:
                for statement in CHURN:
                    conn.execute(statement)
                    conn.commit()
                conn.execute("INSERT INTO churn VALUES (9999, 'last', 0)")
                conn.commit()
                conn.execute("DELETE FROM churn WHERE id = 9999")
            topic = table_topic(specs.connection("src"), PipelineNames(name), "public.churn")
            _wait_until_topic_holds_tombstone(stack, topic, 9999)
            connect.resume(sink)
            final = wait_for_equal(read_source, read_target, timeout=120)
            # the topic ends with a tombstone, which the sink drops: its offset is committed all the
            # same, or the pipeline would show one change waiting forever
            watch = PipelineWatch(
                name, (TableWatch("public.churn", topic, "churn"),), f"connect-{sink}", None
            )
            deadline = time.monotonic() + 30
            while True:
                ends, committed, _ = kafka_offsets(stack.kafka_bootstrap, [watch])
                if committed.get(name, {}).get(topic) == ends[topic] or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert committed[name][topic] == ends[topic], (committed, ends)
            assert (4, "reborn", 42) in final and (2002, "moved twice", 1) in final
            assert (1, "back 1", 7) in final and not {r[0] for r in final} & {2, 1001, 1002, 45}
        finally:
            teardown(stack, connect, specs, name)


def test_a_table_topic_of_several_partitions_keeps_each_keys_order_across_sink_tasks(
    stack, connect, tmp_path
):
    """options.topic_partitions: 3 and sink_tasks: 3. Debezium places a key by its hash, so one key's
    changes (key moves included) stay in order on one partition while three tasks apply the three
    partitions side by side; the target ends equal to the source. The count is fixed once deployed:
    asking for another is refused by name, before anything changes."""
    from tests.pipeline_support import pg_to_pg_specs

    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE churn (id bigint PRIMARY KEY, v text NOT NULL, n int NOT NULL)")
        name = unique("parts")
        specs = pg_to_pg_specs(stack, tmp_path, src, tgt, name, ["public.churn"],
                               options={"topic_partitions": 3, "sink_tasks": 3})  # fmt: skip
        materialize(stack, specs, name)
        sink = PipelineNames(name).sink_connector
        topic = table_topic(specs.connection("src"), PipelineNames(name), "public.churn")
        try:
            connect.pause(sink)
            with pg_connect(stack, src) as conn:
                for statement in CHURN:
                    conn.execute(statement)
                    conn.commit()
            consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": unique("peek")})
            try:
                assert len(consumer.list_topics(topic, timeout=10).topics[topic].partitions) == 3
            finally:
                consumer.close()
            connect.resume(sink)
            assert len(connect.wait_running(sink)["tasks"]) == 3
            final = wait_for_equal(
                lambda: _pg_rows(stack, src, "SELECT id, v, n FROM churn ORDER BY id"),
                lambda: _pg_rows(stack, tgt, "SELECT id, v, n FROM replica.churn ORDER BY id"),
                timeout=120,
            )
            assert (4, "reborn", 42) in final and (2002, "moved twice", 1) in final

            respecified = pg_to_pg_specs(stack, tmp_path, src, tgt, name, ["public.churn"],
                                         options={"topic_partitions": 4, "sink_tasks": 3})  # fmt: skip
            with pytest.raises(Exception) as refused:
                materialize(stack, respecified, name)
            chain, error = [], refused.value
            while error is not None:
                chain.append(str(error))
                error = error.__cause__
            assert any("topic_partitions is 4" in text and f"{topic} has 3" in text for text in chain), chain
            assert len(connect.wait_running(sink)["tasks"]) == 3, "the refused deploy changed nothing"
        finally:
            teardown(stack, connect, specs, name)


def _mariadb_churn(stack, db):
    with mariadb_connect(stack, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, v, n FROM churn ORDER BY id")
        return cur.fetchall()


def _wait_until_topic_holds_tombstone(stack, topic: str, key: int, timeout: float = 60) -> None:
    """The source has the last change in Kafka: the paused sink will receive the churn at once."""
    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": unique("peek"),
                         "enable.auto.commit": False})  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        while time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is None or message.error() or message.value() is not None:
                continue
            if message.key() and f'"id":{key}'.encode() in message.key().replace(b" ", b""):
                return
        raise AssertionError(f"the tombstone of key {key} never reached {topic}")
    finally:
        consumer.close()
