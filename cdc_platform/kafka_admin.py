"""The pipeline's Kafka topics, created by the platform with the limits the pipeline needs.

Why not leave it to Kafka Connect's topic creation: the sink subscribes to its topics before the
source has written to them, and a consumer subscription auto-creates a missing topic with the
broker's defaults (1 MB ``max.message.bytes``), so a large row would later be refused by the broker.
Creating (or correcting) the topics before either connector starts removes that race, and works on
a cluster whose broker defaults the platform does not own.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)
from confluent_kafka.error import KafkaError, KafkaException

from cdc_platform.kafka_log import kafka_client_config


class KafkaAdminError(RuntimeError):
    pass


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient(kafka_client_config(bootstrap, **{"socket.timeout.ms": 10_000}))


def ensure_topics(bootstrap: str, topics: Iterable[str], max_message_bytes: int, *,
                  partitions: int | None = None, timeout: float = 30.0) -> dict[str, str]:  # fmt: skip
    """Create missing topics and raise ``max.message.bytes`` on existing ones; returns topic -> action.

    ``partitions``: how many each topic has (None: the broker's default); replication follows the
    broker's default. An existing topic with another partition count is refused before anything is
    created: Kafka places a key by its hash modulo the count, so changing it under a running pipeline
    would put a key's later changes on another partition than its earlier ones, and their order
    would be lost. An existing topic whose limit is already at least ``max_message_bytes`` is left
    alone (``unchanged``), so deploying twice does nothing.
    """
    admin = _admin(bootstrap)
    wanted = sorted(set(topics))
    try:
        listed = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise KafkaAdminError(f"Kafka at {bootstrap} could not be reached to list topics: {exc}") from exc
    existing = set(listed)
    if partitions is not None:
        differing = {
            t: len(listed[t].partitions)
            for t in wanted
            if t in listed and len(listed[t].partitions) != partitions
        }
        if differing:
            have = ", ".join(f"{t} has {n}" for t, n in sorted(differing.items()))
            raise KafkaAdminError(
                f"options.topic_partitions is {partitions}, but {have} partition(s): a topic's partition count "
                "cannot change under a pipeline (a key's changes would be split across partitions and lose "
                "their order); set it back, or tear the pipeline down with delete_topics and deploy it again"
            )
    actions: dict[str, str] = {}
    missing = [t for t in wanted if t not in existing]
    if missing:
        config = {"max.message.bytes": str(max_message_bytes)}
        futures = admin.create_topics([NewTopic(t, num_partitions=partitions or -1, replication_factor=-1, config=config)
                                       for t in missing], operation_timeout=timeout)  # fmt: skip
        for topic, future in futures.items():
            try:
                future.result()
                actions[topic] = "created"
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise KafkaAdminError(f"creating topic {topic} failed: {exc}") from exc
                existing.add(topic)
    present = [t for t in wanted if t in existing]
    if present:
        limits = topic_limits(admin, present, timeout)
        too_small = [t for t in present if limits[t] < max_message_bytes]
        for topic in present:
            actions.setdefault(topic, "unchanged")
        if too_small:
            resources = [
                ConfigResource(ResourceType.TOPIC, t, incremental_configs=[ConfigEntry(
                    "max.message.bytes", str(max_message_bytes),
                    incremental_operation=AlterConfigOpType.SET)])
                for t in too_small
            ]  # fmt: skip
            for resource, future in admin.incremental_alter_configs(resources).items():
                try:
                    future.result(timeout=timeout)
                except KafkaException as exc:
                    raise KafkaAdminError(
                        f"raising max.message.bytes of topic {resource.name} failed: {exc}"
                    ) from exc
                actions[resource.name] = "limit raised"
    return actions


def topic_limits(admin: AdminClient, topics: list[str], timeout: float = 30.0) -> dict[str, int]:
    """``max.message.bytes`` in force on each topic (its own setting or the broker default)."""
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
    limits: dict[str, int] = {}
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        entries = future.result(timeout=timeout)
        limits[resource.name] = int(entries["max.message.bytes"].value)
    return limits


def max_message_bytes(bootstrap: str, topics: list[str]) -> dict[str, int]:
    return topic_limits(_admin(bootstrap), topics)
