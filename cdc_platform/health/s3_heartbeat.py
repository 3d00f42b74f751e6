"""An S3 target's heartbeat: the writer reads the pipeline's heartbeat topic and stores what arrived.

A database target's sink applies each heartbeat to a twin table, stamped by the target's clock
(cdc_platform/pipeline/heartbeat.py). An S3 target has no table to stamp: the writer sensor reads
the heartbeat topic at each tick, after writing the tables' changes of that tick, and stores the
newest heartbeat's source time with the moment it was read, as two samples of the pipeline. The
metrics schedule turns them into the same figures a database target has: ``latency_seconds``, from
the source's commit to the change log, and ``heartbeat_age_seconds``, how stale the change log is
at worst. A chain that stops anywhere (Debezium, Kafka, the writer) lets the age grow.
"""

from __future__ import annotations

import time

from cdc_platform.health.metrics_store import MetricsStore, Sample
from cdc_platform.kafka_log import kafka_client_config
from cdc_platform.pipeline.plan import PipelineNames
from cdc_platform.s3.events import parse_event

#: the samples the writer stores (subject ``pipeline``), in epoch milliseconds
SOURCE_MS, WRITTEN_MS = "heartbeat_source_ms", "heartbeat_written_ms"


def read_heartbeat(bootstrap: str, pipeline: str, topic: str, budget_seconds: float = 5.0) -> int | None:
    """The newest heartbeat's source time among those since the writer's last read (None: none
    arrived), its offsets committed to the writer's group once read."""
    # lazy: librdkafka's bindings only when the writer reads heartbeats, not at every code-location load
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(kafka_client_config(bootstrap, **{"group.id": PipelineNames(pipeline).s3_writer_group,
                                                          "enable.auto.commit": False,
                                                          "auto.offset.reset": "earliest"}))  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return None  # Debezium has not sent one yet
        plan: dict[int, tuple[int, int]] = {}
        for partition in metadata.partitions:
            tp = TopicPartition(topic, partition)
            (committed,) = consumer.committed([tp], timeout=10)
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            start = max(committed.offset, low) if committed.offset >= 0 else low
            if start < high:
                plan[partition] = (start, high)
        if not plan:
            return None
        consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in plan.items()])
        newest: int | None = None
        remaining, deadline = dict(plan), time.monotonic() + budget_seconds
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1_000, timeout=0.5):
                if message.error():
                    raise KafkaException(message.error())
                partition = message.partition()
                if partition in remaining and message.offset() >= remaining[partition][1] - 1:
                    remaining.pop(partition)
                if message.value() is None:
                    continue
                payload = parse_event(message.value()).payload or {}
                ts_ms = (payload.get("after") or {}).get("ts_ms")
                if isinstance(ts_ms, int) and (newest is None or ts_ms > newest):
                    newest = ts_ms
        read = [
            TopicPartition(topic, p, high if p not in remaining else start)
            for p, (start, high) in plan.items()
        ]
        consumer.commit(offsets=read, asynchronous=False)
        return newest
    finally:
        consumer.close()


def record_heartbeat(pipeline: str, source_ms: int, now: float | None = None) -> None:
    now = time.time() if now is None else now
    MetricsStore().record([Sample(now, pipeline, "pipeline", SOURCE_MS, float(source_ms)),
                           Sample(now, pipeline, "pipeline", WRITTEN_MS, now * 1000)])  # fmt: skip


def stored_heartbeat_figures(pipeline: str, now: float | None = None) -> dict[str, float]:
    """``latency_seconds`` and ``heartbeat_age_seconds`` from what the writer stored (empty: nothing yet)."""
    latest = MetricsStore().latest(pipeline)
    if ("pipeline", SOURCE_MS) not in latest or ("pipeline", WRITTEN_MS) not in latest:
        return {}
    source_ms, written_ms = latest[("pipeline", SOURCE_MS)][1], latest[("pipeline", WRITTEN_MS)][1]
    now_ms = (time.time() if now is None else now) * 1000
    # no overdue rule as for a database target: the writer reads the heartbeats once a tick, so an age of
    # a tick and an interval is the normal case; the age itself is the figure freshness is judged by
    return {"latency_seconds": max(written_ms - source_ms, 0) / 1000,
            "heartbeat_age_seconds": max(now_ms - source_ms, 0) / 1000}  # fmt: skip
