"""Pure functions from endpoints and tables to Kafka Connect connector configs (no I/O)."""

from cdc_platform.connectors.common import DatabaseEndpoint, TableRef, topic_name
from cdc_platform.connectors.sink import jdbc_sink_config
from cdc_platform.connectors.source import SourceOptions, debezium_source_config

__all__ = [
    "DatabaseEndpoint",
    "SourceOptions",
    "TableRef",
    "debezium_source_config",
    "jdbc_sink_config",
    "topic_name",
]
