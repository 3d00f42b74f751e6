"""Connector configs are pure functions of the specs; secrets only as config-provider references."""

from __future__ import annotations

import pytest

from cdc_platform.connectors import (
    DatabaseEndpoint,
    SourceOptions,
    TableRef,
    debezium_source_config,
    jdbc_sink_config,
    topic_name,
)
from cdc_platform.connectors.diff import config_diff, mask

REF = "${file:/secrets/x.properties:pw}"


def _ep(kind, db="shop"):
    return DatabaseEndpoint(kind, "db.internal", 5432, db, "cdc", REF)


def test_plaintext_password_is_rejected():
    with pytest.raises(ValueError, match="config-provider reference"):
        DatabaseEndpoint("postgresql", "h", 1, "d", "u", "plaintext")


def test_postgres_source_uses_pgoutput_our_slot_and_no_data():
    cfg = debezium_source_config("p-source", _ep("postgresql"), [TableRef("public", "orders")],
                                 SourceOptions(topic_prefix="p", slot_name="cdc_p", publication_name="cdc_p"))  # fmt: skip
    assert cfg["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert (
        cfg["plugin.name"] == "pgoutput" and cfg["slot.name"] == "cdc_p" and cfg["snapshot.mode"] == "no_data"
    )
    assert cfg["publication.autocreate.mode"] == "disabled" and cfg["database.password"] == REF
    assert cfg["table.include.list"] == "public\\.orders"  # an escaped, anchored regex
    assert int(cfg["heartbeat.interval.ms"]) > 0


@pytest.mark.parametrize("kind", ["mysql", "mariadb"])
def test_mysql_family_sources_need_history_and_server_id(kind):
    options = SourceOptions(
        topic_prefix="p", server_id=184054, kafka_bootstrap="k:9092", schema_history_topic="p.h"
    )
    cfg = debezium_source_config("p-source", _ep(kind), [TableRef("shop", "orders")], options)
    assert cfg["database.server.id"] == "184054" and cfg["database.include.list"] == "shop"
    assert cfg["schema.history.internal.kafka.topic"] == "p.h"
    with pytest.raises(ValueError, match="server_id"):
        debezium_source_config("p", _ep(kind), [TableRef("shop", "o")], SourceOptions(topic_prefix="p", kafka_bootstrap="k",
                               schema_history_topic="h"))  # fmt: skip


def test_sqlserver_source_and_topic_names():
    options = SourceOptions(topic_prefix="p", kafka_bootstrap="k:9092", schema_history_topic="p.h")
    cfg = debezium_source_config("p-source", _ep("sqlserver", "sales"), [TableRef("dbo", "orders")], options)
    assert cfg["database.names"] == "sales" and cfg["connector.class"].endswith("SqlServerConnector")
    assert topic_name("sqlserver", "p", "sales", TableRef("dbo", "orders")) == "p.sales.dbo.orders"
    assert topic_name("postgresql", "p", "x", TableRef("public", "orders")) == "p.public.orders"


def test_sink_subscribes_only_to_table_topics_and_upserts_deletes():
    routes = {"p.public.orders": "orders_v2", "p.public.items": "items"}
    cfg = jdbc_sink_config("p-sink", _ep("postgresql", "wh"), "shop", routes)
    assert cfg["topics"] == "p.public.orders,p.public.items"
    assert "heartbeat" not in cfg["topics"] and "topics.regex" not in cfg
    assert (cfg["insert.mode"], cfg["primary.key.mode"], cfg["delete.enabled"]) == (
        "upsert",
        "record_key",
        "true",
    )
    assert cfg["collection.name.format"] == "shop.${topic}" and cfg["connection.password"] == REF
    assert (
        cfg["transforms.route0.regex"] == "\\Qp.public.orders\\E"
        and cfg["transforms.route0.replacement"] == "orders_v2"
    )
    assert cfg["connection.url"] == "jdbc:postgresql://db.internal:5432/wh?stringtype=unspecified"


def test_sink_reduces_by_key():
    """A batch ends when full or when the schema changes, not at each delete (issue 35)."""
    cfg = jdbc_sink_config("p-sink", _ep("postgresql", "wh"), "shop", {"p.public.a": "a", "p.public.b": "b"})
    assert cfg["use.reduction.buffer"] == "true"
    assert cfg["transforms"] == "route0,route1" and "predicates" not in cfg


def test_mariadb_and_sqlserver_sinks():
    my = jdbc_sink_config("s", _ep("mariadb", "ignored"), "shop", {"t": "x"})
    assert (
        my["connection.url"] == "jdbc:mariadb://db.internal:5432/shop"
        and my["collection.name.format"] == "${topic}"
    )
    ms = jdbc_sink_config("s", _ep("sqlserver", "dw"), "dbo", {"t": "x"})
    assert ms["connection.url"] == "jdbc:sqlserver://db.internal:5432;databaseName=dw;encrypt=false"


def test_masking_and_diff_never_show_plaintext_secrets():
    old = {"a": "1", "connection.password": REF, "x.secret": "raw"}
    new = {"a": "2", "connection.password": REF, "x.secret": "raw2"}
    assert mask(new)["x.secret"] == "********" and mask(new)["connection.password"] == REF
    diff = config_diff(old, new)
    assert diff == {"a": {"old": "1", "new": "2"}}


def test_one_event_size_limit_reaches_topic_producer_and_sink_consumer():
    limit = 48 * 1024 * 1024
    src = debezium_source_config("p-source", _ep("postgresql"), [TableRef("public", "orders")],
                                 SourceOptions(topic_prefix="p", slot_name="s", publication_name="p",
                                               max_event_bytes=limit))  # fmt: skip
    assert src["producer.override.max.request.size"] == str(limit)
    assert int(src["producer.override.buffer.memory"]) >= limit  # a record must fit the buffer
    assert src["topic.creation.default.max.message.bytes"] == str(limit)
    sink = jdbc_sink_config("p-sink", _ep("postgresql"), "replica", {"p.public.orders": "orders"},
                            max_event_bytes=limit)  # fmt: skip
    assert sink["consumer.override.max.partition.fetch.bytes"] == str(limit)
    assert int(sink["consumer.override.fetch.max.bytes"]) >= limit
    assert sink["consumer.override.allow.auto.create.topics"] == "false"


@pytest.mark.parametrize("source_kind", ["postgresql", "mariadb"])
def test_database_targets_get_lean_change_events_on_table_topics_only(tmp_path, monkeypatch, source_kind):
    from tests.unit.test_heartbeat_plan import _plan

    cfg = _plan(tmp_path, monkeypatch, source_kind, "mariadb").source_config
    assert cfg["transforms"] == "lean" and cfg["transforms.lean.predicate"] == "changeTopics"
    assert cfg["transforms.lean.type"] == "org.apache.kafka.connect.transforms.ReplaceField$Value"
    # the JDBC sink reads before (it fails every record without it), so only these go
    assert cfg["transforms.lean.exclude"] == "source,transaction,ts_us,ts_ns"
    # <prefix>.<anything>: the table topics; not the schema-change topic <prefix> nor the heartbeats'
    assert cfg["predicates.changeTopics.pattern"] == "\\Qp.\\E.+"
    full = _plan(tmp_path, monkeypatch, source_kind, "mariadb", change_events="full").source_config
    assert not {k for k in full if k.startswith(("transforms", "predicates"))}


@pytest.mark.parametrize("kind", ["postgresql", "mariadb", "mysql", "sqlserver"])
def test_recovery_settings_of_sources_and_sinks(kind):
    """Issue 34: a source retries every 2 s after its database comes back; a sink retries its write
    every second, its consumer leaves a dead worker's group within 6 s, and its task opens one
    connection, not five."""
    options = SourceOptions(topic_prefix="p", slot_name="s", publication_name="s", server_id=1,
                            kafka_bootstrap="k:9092", schema_history_topic="p.h")  # fmt: skip
    source = debezium_source_config("p-source", _ep(kind), [TableRef("shop", "orders")], options)
    assert source["retriable.restart.connector.wait.ms"] == "2000"
    if kind == "mysql":
        return
    sink = jdbc_sink_config("p-sink", _ep(kind, "wh"), "shop", {"p.shop.orders": "orders"})
    assert sink["consumer.override.session.timeout.ms"] == "6000"
    assert sink["consumer.override.heartbeat.interval.ms"] == "2000"
    assert (sink["connection.pool.min_size"], sink["connection.pool.acquire_increment"]) == ("1", "1")
    # a returning target is written to within a second; the whole minute of retries stays
    assert (sink["flush.max.retries"], sink["flush.retry.delay.ms"]) == ("60", "1000")


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "mariadb", "sqlserver"])
def test_sources_send_no_tracing_headers(kind):
    """Issue 35: Debezium's four __debezium.context.* headers cost the sink a parse per header and
    record (Connect's SimpleHeaderConverter tries each as a number and throws), and nothing reads
    them; a backlog drained 16,600-17,200 changes/s with them and 20,800-21,200 without."""
    options = SourceOptions(topic_prefix="p", slot_name="s", publication_name="s", server_id=1,
                            kafka_bootstrap="k:9092", schema_history_topic="p.h")  # fmt: skip
    source = debezium_source_config("p-source", _ep(kind), [TableRef("shop", "orders")], options)
    assert source["extended.headers.enabled"] == "false"


def test_sink_tasks_share_a_pipelines_tables():
    """Kafka's default range assignor gives every single-partition topic to the first consumer, so
    ``options.sink_tasks`` > 1 added idle tasks; the cooperative sticky assignor spreads the topics."""
    sink = jdbc_sink_config(
        "p-sink", _ep("postgresql", "wh"), "shop", {"p.shop.a": "a", "p.shop.b": "b"}, tasks_max=2
    )
    assert sink["tasks.max"] == "2"
    assert sink["consumer.override.partition.assignment.strategy"] == (
        "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"
    )


def test_sinks_read_keys_and_values_with_the_schema_caching_converter():
    """Issue 35: the sink's converter reads each distinct schema once; sources keep Kafka's own
    JsonConverter, which writes what it reads."""
    sink = jdbc_sink_config("p-sink", _ep("mariadb", "wh"), "shop", {"p.shop.a": "a"})
    for side in ("key", "value"):
        assert sink[f"{side}.converter"] == "io.cdcplatform.connect.SchemaCachingJsonConverter"
        assert sink[f"{side}.converter.schemas.enable"] == "true"
    assert sink["value.converter.replace.null.with.default"] == "false"
    options = SourceOptions(topic_prefix="p", slot_name="s", publication_name="s")
    source = debezium_source_config("p-source", _ep("postgresql"), [TableRef("shop", "orders")], options)
    assert source["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
