"""Debezium JDBC sink configs: upsert by key, deletes applied, one explicit topic list."""

from __future__ import annotations

from dataclasses import replace

from cdc_platform.connectors.common import (
    DEFAULT_MAX_EVENT_BYTES,
    SCHEMA_CACHING_JSON_CONVERTER,
    DatabaseEndpoint,
    consumer_size_overrides,
    java_literal_regex,
    json_converter_settings,
)
from cdc_platform.connectors.tls import jdbc_tls_params

#: Debezium's JDBC sink with tasks that reconnect after a lost connection instead of failing
#: (connect-plugins/cdc-platform-sink: the stack builds it into Debezium's JDBC plugin directory)
SINK_CLASS = "io.cdcplatform.connect.ResilientJdbcSinkConnector"
#: how long a sink task keeps reconnecting to an unreachable target before it fails for the health
#: sensor to restart and alert on
SINK_RECONNECT_WINDOW_MS = 300_000
SINK_SESSION_TIMEOUT_MS = 6_000
SINK_FLUSH_RETRIES = 60
SINK_FLUSH_RETRY_DELAY_MS = 1000


def jdbc_url(endpoint: DatabaseEndpoint) -> str:
    host, port, db = endpoint.host, endpoint.port, endpoint.database
    tls = jdbc_tls_params(endpoint.kind, endpoint.tls_mode, endpoint.tls_root_cert)
    if endpoint.kind == "postgresql":
        # text values (the converter's exact forms of NaN, infinity, intervals, ...) are typed by
        # the server from the target column instead of being sent as varchar
        params = [("stringtype", "unspecified"), *tls]
        return f"jdbc:postgresql://{host}:{port}/{db}?" + "&".join(f"{k}={v}" for k, v in params)
    if endpoint.kind in ("mariadb", "mysql"):
        query = "?" + "&".join(f"{k}={v}" for k, v in tls) if tls else ""
        return f"jdbc:{endpoint.kind}://{host}:{port}/{db}{query}"
    if endpoint.kind == "sqlserver":
        return f"jdbc:sqlserver://{host}:{port};databaseName={db};" + ";".join(f"{k}={v}" for k, v in tls)
    raise ValueError(f"no JDBC sink for kind {endpoint.kind!r}")


COOPERATIVE_STICKY_ASSIGNOR = "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"


def jdbc_sink_config(
    name: str,
    endpoint: DatabaseEndpoint,
    target_schema: str,
    routes: dict[str, str],
    *,
    batch_size: int = 2000,
    tasks_max: int = 1,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> dict[str, str]:
    """``routes`` maps each source topic to its target table name in ``target_schema``.

    The sink subscribes to exactly those topics, so heartbeat, signal and schema-change topics never
    reach it. Each topic is renamed to its bare target table by a RegexRouter, and
    ``collection.name.format`` is ``<target_schema>.${topic}``: the sink replaces dots that come from
    ``${topic}`` with underscores but keeps the literal one, so per-table target names work without a
    naming convention. (For MySQL/MariaDB the schema is the target database.)
    """
    if not routes:
        raise ValueError(f"sink connector {name!r} has no topics")
    collection_format = f"{target_schema}.${{topic}}"
    if endpoint.kind in ("mysql", "mariadb"):
        # the MySQL dialect ignores a schema qualifier and writes to the URL's database: the target
        # schema *is* that database
        endpoint = replace(endpoint, database=target_schema)
        collection_format = "${topic}"
    config: dict[str, str] = {
        "name": name,
        "connector.class": SINK_CLASS,
        "tasks.max": str(tasks_max),
        "connection.url": jdbc_url(endpoint),
        "connection.username": endpoint.username,
        "connection.password": endpoint.password_ref,
        "topics": ",".join(routes),
        "insert.mode": "upsert",
        "primary.key.mode": "record_key",
        "delete.enabled": "true",
        "schema.evolution": "basic",
        "quote.identifiers": "true",
        "use.time.zone": "UTC",
        "collection.name.format": collection_format,
        "batch.size": str(batch_size),
        # one buffer per table, keyed by primary key, holding upserts and deletes alike: a batch is
        # flushed when full or when the value schema changes, not at every switch between an upsert
        # and a delete. Without it, a mix of 10 % deletes flushed every ~10 records: 5,219 changes/s
        # PG->PG on the OLTP mix; with it, and tombstones kept from Debezium's task by the platform's
        # task, 19,457/s (issue 35, bench/catch_up.md). The last change of each key in a batch is the
        # one applied, which
        # leaves the target in the same state the changes one by one would.
        "use.reduction.buffer": "true",
        "consumer.override.max.poll.records": str(batch_size),
        "consumer.override.auto.offset.reset": "earliest",
        # the platform creates the topics with their size limit; a subscription must never create
        # one with the broker's defaults first
        "consumer.override.allow.auto.create.topics": "false",
        # with several tasks, each takes its own tables. Kafka's default assignor (range, per topic)
        # gives every single-partition topic to the same first task, so options.sink_tasks added
        # threads that sat idle; the cooperative sticky assignor spreads the topics and, when a
        # worker leaves, moves only that worker's partitions
        "consumer.override.partition.assignment.strategy": COOPERATIVE_STICKY_ASSIGNOR,
        # a worker that dies (kill -9, a lost machine) leaves its consumers in the group until their
        # session expires; the new ones cannot take the partitions before. Kafka's 45 s default was
        # a 45 s stall after every Connect crash (issue 34); 6 s is the broker's minimum. Heartbeats
        # come from the consumer's own thread every 2 s, so neither a long batch nor a GC pause of
        # the JVM's 100 ms target misses one. Static membership would need one id per task, which a
        # connector-wide override cannot give; the cooperative protocol does not expire members sooner.
        "consumer.override.session.timeout.ms": str(SINK_SESSION_TIMEOUT_MS),
        "consumer.override.heartbeat.interval.ms": str(SINK_SESSION_TIMEOUT_MS // 3),
        # a target that goes away costs no FAILED task: Debezium retries a failed write (60 x 1 s:
        # the same minute as 12 x 5 s, but a target that returns is written to within a second,
        # not up to 5 s later, 4.0-4.1 s measured on MariaDB targets in bench/recovery.py),
        # and the platform's task reconnects after a connection lost anywhere else (a rollback, the
        # table's metadata, the session) and has Connect deliver the batch again, for up to 5
        # minutes; longer outages are the health sensor's restarts. Connect's own retries cover
        # converter/transform errors.
        "cdc.platform.sink.reconnect.window.ms": str(SINK_RECONNECT_WINDOW_MS),
        "flush.max.retries": str(SINK_FLUSH_RETRIES),
        "flush.retry.delay.ms": str(SINK_FLUSH_RETRY_DELAY_MS),
        "connection.restart.on.errors": "true",
        # the task writes through one connection at a time. Debezium's pool opens 5 at every task
        # start (each a TLS/SCRAM handshake on a cold JVM, for every sink at once after a worker
        # restart) and holds them on the target for good, and grows by 32 at a time; one to start
        # and one more when needed keep a target's connection count to about one per pipeline
        "connection.pool.min_size": "1",
        "connection.pool.acquire_increment": "1",
        "errors.retry.timeout": "60000",
        "errors.retry.delay.max.ms": "5000",
        **consumer_size_overrides(max_event_bytes),
        # JsonConverter parsed every record's schema (four to seven times its values' bytes) into a tree and
        # hashed it to find it in its cache: a quarter to a third of the sink task's time in a
        # catch-up (issue 35). This one looks each schema up by its bytes and lets JsonConverter
        # convert only the values; the keys, written by the worker's JsonConverter with their
        # schema too, are read the same way
        **json_converter_settings(SCHEMA_CACHING_JSON_CONVERTER),
        "key.converter": SCHEMA_CACHING_JSON_CONVERTER,
        "key.converter.schemas.enable": "true",
    }
    transforms = []
    for index, (topic, target) in enumerate(routes.items()):
        alias = f"route{index}"
        transforms.append(alias)
        config[f"transforms.{alias}.type"] = "org.apache.kafka.connect.transforms.RegexRouter"
        config[f"transforms.{alias}.regex"] = java_literal_regex(topic)
        if "." in target:
            raise ValueError(f"sink {name!r}: target table {target!r} must be a bare table name")
        config[f"transforms.{alias}.replacement"] = target.replace("$", "\\$")
    config["transforms"] = ",".join(transforms)
    config.update(dict(endpoint.options))
    return config
