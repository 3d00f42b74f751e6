"""Shared shapes for connector configs: endpoints, table references, topic names."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The largest change event (key + value as serialized by the JSON converter, before and after
#: images together) a pipeline carries by default: 32 MiB. A row of up to 16 MiB survives an update
#: under REPLICA IDENTITY FULL, whose event holds the row twice. Every part of the chain that must
#: agree (topic, producer, sink consumer) is derived from this one number; see ``size_limits``.
DEFAULT_MAX_EVENT_BYTES = 32 * 1024 * 1024
#: Kafka brokers refuse any request above ``socket.request.max.bytes`` (100 MiB by default)
MAX_EVENT_BYTES_CEILING = 96 * 1024 * 1024


@dataclass(frozen=True)
class DatabaseEndpoint:
    """A database as a connector sees it. ``password_ref`` is a config-provider reference, never a password."""

    kind: str
    host: str
    port: int
    database: str
    username: str
    password_ref: str
    options: tuple[tuple[str, str], ...] = ()
    #: TLS mode (PostgreSQL's names) and the CA's PEM file (absolute path), see connectors/tls.py
    tls_mode: str = "prefer"
    tls_root_cert: str | None = None

    def __post_init__(self) -> None:
        if not self.password_ref.startswith("${") or not self.password_ref.endswith("}"):
            raise ValueError(
                "password_ref must be a Kafka Connect config-provider reference such as ${env:VAR} "
                "or ${file:/path:key}; a plaintext password never goes into a connector config"
            )


@dataclass(frozen=True)
class TableRef:
    """``schema`` is the PostgreSQL/SQL Server schema, or the database name for MySQL/MariaDB."""

    schema: str
    table: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


def topic_name(kind: str, prefix: str, database: str, table: TableRef) -> str:
    """The topic Debezium writes a table's changes to."""
    if kind == "sqlserver":
        return f"{prefix}.{database}.{table.schema}.{table.table}"
    return f"{prefix}.{table.schema}.{table.table}"


def include_pattern(table: TableRef) -> str:
    """Debezium include lists are anchored regexes: escape names so ``a.b`` cannot match ``axb``."""
    return f"{re.escape(table.schema)}\\.{re.escape(table.table)}"


def producer_size_overrides(max_event_bytes: int) -> dict[str, str]:
    """Source-connector settings that let an event of ``max_event_bytes`` through, and no larger.

    Per connector (``producer.override.*``, ``topic.creation.*``) rather than worker-wide, so a
    pipeline works on a Kafka cluster the platform does not own: the topic gets its own
    ``max.message.bytes`` when Connect creates it, whatever the broker default (1 MB) is. The
    producer checks ``max.request.size`` against the uncompressed record, so the limit means the
    same thing with or without compression; ``buffer.memory`` must hold at least one such record.
    """
    return {
        "producer.override.max.request.size": str(max_event_bytes),
        "producer.override.buffer.memory": str(max(2 * max_event_bytes, 64 * 1024 * 1024)),
        "producer.override.compression.type": "lz4",
        "topic.creation.default.replication.factor": "-1",
        "topic.creation.default.partitions": "-1",
        "topic.creation.default.max.message.bytes": str(max_event_bytes),
        "topic.creation.default.compression.type": "producer",
    }


def consumer_size_overrides(max_event_bytes: int) -> dict[str, str]:
    """Sink-connector settings: fetch sizes that hold the largest event a source may write."""
    return {
        "consumer.override.max.partition.fetch.bytes": str(max_event_bytes),
        "consumer.override.fetch.max.bytes": str(max(max_event_bytes, 52_428_800)),
    }


JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"
#: Kafka's JsonConverter reading each distinct schema once (connect-plugins/cdc-platform-sink): the
#: sinks' converter. It reads what JsonConverter writes, value for value, by JsonConverter's own code
SCHEMA_CACHING_JSON_CONVERTER = "io.cdcplatform.connect.SchemaCachingJsonConverter"


def json_converter_settings(converter: str = JSON_CONVERTER) -> dict[str, str]:
    """The JSON value converter, set per connector so it holds on any Connect cluster.

    ``replace.null.with.default`` is true by default since Kafka 3.5: a NULL in a column that has
    a default (``DEFAULT now()``, ``DEFAULT 0``) would be written, and read back, as that default,
    so a NULL changes silently. Schemas stay in every record: the JDBC sink needs them.
    """
    return {
        "value.converter": converter,
        "value.converter.schemas.enable": "true",
        "value.converter.replace.null.with.default": "false",
    }


def java_literal_regex(text: str) -> str:
    """A Java regex matching exactly ``text`` (Java's \\Q...\\E quoting), for SMTs and predicates."""
    return "\\Q" + text.replace("\\E", "\\E\\\\E\\Q") + "\\E"
