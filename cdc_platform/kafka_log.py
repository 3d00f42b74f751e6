"""Where librdkafka's own log lines go: Python's DEBUG level, not the terminal.

librdkafka prints every failed connection attempt to stderr, dozens a second while a broker is
down or booting. The platform reports an unreachable Kafka itself, once and by name (the metrics
job's ``collection_error``, the stack's readiness wait), so those lines only bury it in ``dg dev``'s
terminal and in run logs. They stay available under the ``cdc_platform.kafka`` logger at DEBUG.
"""

from __future__ import annotations

import logging

LOG = logging.getLogger("cdc_platform.kafka")


class LibrdkafkaToDebug:
    """The ``logger`` object librdkafka's Python binding calls as ``log(level, fmt, *args)``."""

    def log(self, level: int, fmt: str, *args) -> None:
        LOG.debug(fmt, *args)


def kafka_client_config(bootstrap: str, **settings) -> dict:
    """A confluent-kafka client config for ``bootstrap`` with the quiet logger, plus ``settings``
    (dotted librdkafka keys are passed as a dict: ``**{"group.id": ...}``)."""
    return {"bootstrap.servers": bootstrap, "logger": LibrdkafkaToDebug(), **settings}
