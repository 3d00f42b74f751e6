"""Debezium source connector configs for PostgreSQL, MySQL, MariaDB and SQL Server."""

from __future__ import annotations

from dataclasses import dataclass

from cdc_platform.connectors.common import (
    DEFAULT_MAX_EVENT_BYTES,
    DatabaseEndpoint,
    TableRef,
    include_pattern,
    java_literal_regex,
    json_converter_settings,
    producer_size_overrides,
)
from cdc_platform.connectors.tls import source_tls_config

#: the platform's Debezium converter (connect-plugins/cdc-platform-converters), installed beside
#: each source plugin; it carries the values JSON and Debezium's defaults would change
EXACT_VALUE_CONVERTER = "io.cdcplatform.connect.ExactValueConverter"
CONVERTER_TARGETS = ("postgresql", "mysql", "mariadb", "s3")

SOURCE_CLASSES = {
    "postgresql": "io.debezium.connector.postgresql.PostgresConnector",
    "mysql": "io.debezium.connector.mysql.MySqlConnector",
    "mariadb": "io.debezium.connector.mariadb.MariaDbConnector",
    "sqlserver": "io.debezium.connector.sqlserver.SqlServerConnector",
}


@dataclass(frozen=True)
class SourceOptions:
    topic_prefix: str
    #: ``no_data`` when our own full load copies the rows; ``initial`` lets Debezium snapshot them
    snapshot_mode: str = "no_data"
    #: PostgreSQL: logical replication slot and publication (created by the pipeline, not by Debezium)
    slot_name: str | None = None
    publication_name: str | None = None
    #: the action query writes the pipeline's heartbeat row (cdc_platform/pipeline/heartbeat.py): it
    #: measures latency and keeps an idle PostgreSQL slot's confirmed LSN moving
    heartbeat_interval_ms: int = 10_000
    heartbeat_action_query: str | None = None
    #: MySQL/MariaDB/SQL Server: unique replication client id and schema-history topic
    server_id: int | None = None
    kafka_bootstrap: str | None = None
    schema_history_topic: str | None = None
    #: ``schema.table`` of a signal table for incremental snapshots
    signal_table: str | None = None
    tasks_max: int = 1
    #: the largest serialized change event the pipeline carries (see ``DEFAULT_MAX_EVENT_BYTES``)
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    #: the sink's database kind: the converter writes values in the form that target parses, and
    #: applies the pair's rules (cdc_platform/schema/rules.py) for values it cannot hold
    target_kind: str | None = None
    #: drop the envelope blocks the JDBC sink does not read (see ``lean_event_transform``)
    lean_events: bool = False


#: how long Debezium's task waits for changes before it hands a batch on, by source kind. At a
#: steady 1,000 changes/s the task waits out the whole interval while changes trickle in: 10 ms took
#: PG->MariaDB's p50 from 94 to 56 ms and PG->PG's from 104 to 101 ms; MariaDB->PG measured 71 ms
#: with 50 and 92 ms with 10 (more, smaller sink transactions), so the binlog sources keep 50
#: (2026-12-06, OLTP mix, bench/cdc_latency.md)
SOURCE_POLL_INTERVAL_MS = {"postgresql": 10}
DEFAULT_POLL_INTERVAL_MS = 50
SOURCE_RETRY_WAIT_MS = 2000

#: the value fields a lean change event drops. ``before`` stays: the Debezium JDBC sink reads it
#: (without it, the replication test's sink task failed with "before is not a valid field name")
LEAN_DROPPED_FIELDS = ("source", "transaction", "ts_us", "ts_ns")


def lean_event_transform(topic_prefix: str) -> dict[str, str]:
    """Drops, at the source, the envelope blocks a JDBC sink never reads.

    The JSON converter writes each record's schema beside its values, so a change event to a
    small table is mostly schema, and ``source``'s fifteen fields are a large part of it.
    Serializing and parsing that on both ends of Kafka is where the Connect worker's CPU goes
    during a catch-up (bench/README.md). The JDBC sink applies ``op``, ``before`` and ``after``
    with the record key; it never reads the source position, commit time or transaction. Only
    the table topics (``<prefix>.<...>``) are transformed: heartbeats and MySQL schema-change
    events keep their form.
    """
    return {
        "transforms": "lean",
        "transforms.lean.type": "org.apache.kafka.connect.transforms.ReplaceField$Value",
        "transforms.lean.exclude": ",".join(LEAN_DROPPED_FIELDS),
        "transforms.lean.predicate": "changeTopics",
        "predicates": "changeTopics",
        "predicates.changeTopics.type": "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        "predicates.changeTopics.pattern": java_literal_regex(topic_prefix + ".") + ".+",
    }


def debezium_source_config(
    name: str, endpoint: DatabaseEndpoint, tables: list[TableRef], options: SourceOptions
) -> dict[str, str]:
    if endpoint.kind not in SOURCE_CLASSES:
        raise ValueError(f"no Debezium source for kind {endpoint.kind!r}")
    if not tables:
        raise ValueError(f"source connector {name!r} has no tables")
    config: dict[str, str] = {
        "name": name,
        "connector.class": SOURCE_CLASSES[endpoint.kind],
        "tasks.max": str(options.tasks_max),
        "database.hostname": endpoint.host,
        "database.port": str(endpoint.port),
        "database.user": endpoint.username,
        "database.password": endpoint.password_ref,
        "topic.prefix": options.topic_prefix,
        "snapshot.mode": options.snapshot_mode,
        "table.include.list": ",".join(include_pattern(t) for t in tables),
        "heartbeat.interval.ms": str(options.heartbeat_interval_ms),
        "decimal.handling.mode": "precise",
        "time.precision.mode": "adaptive_time_microseconds",
        "tombstones.on.delete": "true",
        # Debezium's default 500 ms wait between empty polls was most of a change's latency:
        # measured at 1,000 changes/s, p50 0.80 s -> 0.33 s and p99 1.27 s -> 0.74 s PG->PG with
        # 50 ms (bench/cdc_latency.md); see SOURCE_POLL_INTERVAL_MS
        "poll.interval.ms": str(SOURCE_POLL_INTERVAL_MS.get(endpoint.kind, DEFAULT_POLL_INTERVAL_MS)),
        # a source database that went away: Debezium restarts the task in place after this wait,
        # for as long as the error is retriable. Its default, 10 s, was the whole of the recovery
        # after a PostgreSQL source came back (bench/recovery.py, 9.6-10.1 s); a try every 2 s
        # costs one refused connection each
        "retriable.restart.connector.wait.ms": str(SOURCE_RETRY_WAIT_MS),
        # Debezium's four tracing headers (__debezium.context.*) on every record: nothing here
        # reads them, and the sink's header converter parsed each as a number first (a thrown
        # NumberFormatException per header and record, 3 % of the sink task's allocation in a
        # catch-up under JFR); bench/README.md, "Catch-up: where the sink's time goes"
        "extended.headers.enabled": "false",
        **producer_size_overrides(options.max_event_bytes),
        **json_converter_settings(),
        **source_tls_config(endpoint.kind, endpoint.tls_mode, endpoint.tls_root_cert),
    }
    if endpoint.kind == "postgresql":
        if not options.slot_name or not options.publication_name:
            raise ValueError(f"PostgreSQL source {name!r} needs slot_name and publication_name")
        config.update(
            {
                "database.dbname": endpoint.database,
                "plugin.name": "pgoutput",
                "slot.name": options.slot_name,
                "publication.name": options.publication_name,
                # the pipeline creates the publication before the slot; Debezium must not alter it
                "publication.autocreate.mode": "disabled",
                "slot.drop.on.stop": "false",
            }
        )
    else:
        if not options.kafka_bootstrap or not options.schema_history_topic:
            raise ValueError(f"source {name!r} needs kafka_bootstrap and schema_history_topic")
        config.update(
            {
                "schema.history.internal.kafka.bootstrap.servers": options.kafka_bootstrap,
                "schema.history.internal.kafka.topic": options.schema_history_topic,
                # the history keeps every table of the captured databases, so a table added to a
                # running pipeline has a known schema when its first change arrives
                "schema.history.internal.store.only.captured.tables.ddl": "false",
                "schema.history.internal.store.only.captured.databases.ddl": "true",
                # a statement the DDL parser cannot read (MariaDB's INET4/INET6, new syntax) must not
                # stop capture: on a table no pipeline captures it does not matter, and a captured
                # table's new shape is read from the catalog by the schema_changes sensor, which holds
                # the pipeline when the platform cannot map it (and ``plan`` refuses such a table)
                "schema.history.internal.skip.unparseable.ddl": "true",
                "include.schema.changes": "true",
            }
        )
        if endpoint.kind in ("mysql", "mariadb"):
            if options.server_id is None:
                raise ValueError(f"{endpoint.kind} source {name!r} needs a server_id")
            config["database.server.id"] = str(options.server_id)
            # a binlog connector checks its heartbeat only when an event arrives; on an idle server
            # the events are the server's own heartbeats, sent every 0.8 x this interval
            config["connect.keep.alive.interval.ms"] = str(options.heartbeat_interval_ms)
            config["database.include.list"] = ",".join(sorted({t.schema for t in tables}))
        else:  # sqlserver
            config["database.names"] = endpoint.database
    if endpoint.kind in ("postgresql", "mysql", "mariadb") and options.target_kind in CONVERTER_TARGETS:
        config.update(
            {
                "converters": "exact",
                "exact.type": EXACT_VALUE_CONVERTER,
                "exact.target": options.target_kind,
            }
        )
    if options.lean_events:
        config.update(lean_event_transform(options.topic_prefix))
    if endpoint.kind in ("mysql", "mariadb"):
        # two-digit-year guessing would turn 0001-01-01 into 2001-01-01
        config["enable.time.adjuster"] = "false"
    if options.heartbeat_action_query:
        config["heartbeat.action.query"] = options.heartbeat_action_query
    if options.signal_table:
        config["signal.data.collection"] = (
            f"{endpoint.database}.{options.signal_table}"
            if endpoint.kind == "sqlserver"
            else options.signal_table
        )
    config.update(dict(endpoint.options))
    return config
