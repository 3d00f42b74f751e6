"""Debezium's and Kafka Connect's own metrics, read from the Connect JVM's MBeans through Jolokia.

The offsets and the heartbeat say how far behind a pipeline is; these say why: whether the source
connector is connected and how far behind the source's log it reads (``MilliSecondsBehindSource``),
whether its queue to Kafka is full, and how often the sink's puts take long or records fail.

One bulk POST reads every pipeline's MBeans; a pipeline whose MBeans are absent (connector stopped,
or not deployed) simply gets no figures. Jolokia is started by the local stack on loopback with a
read-only policy; elsewhere point ``CDC_JOLOKIA_URL`` at an agent, or leave it unset to skip these.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Debezium streaming MBean attribute -> metric name in the time series
STREAMING_ATTRIBUTES = {
    "MilliSecondsBehindSource": "source_ms_behind",
    "TotalNumberOfEventsSeen": "source_events_seen",
    "QueueRemainingCapacity": "source_queue_remaining",
    "QueueTotalCapacity": "source_queue_capacity",
    "Connected": "source_connected",
    "MilliSecondsSinceLastEvent": "source_ms_since_last_event",
}
#: Connect task MBeans of the sink (summed over tasks) -> metric name
SINK_ATTRIBUTES = {
    ("task-error-metrics", "total-record-errors"): "sink_record_errors",
    ("task-error-metrics", "total-record-failures"): "sink_record_failures",
    ("task-error-metrics", "total-records-skipped"): "sink_records_skipped",
    ("task-error-metrics", "deadletterqueue-produce-requests"): "sink_dlq_produced",
    ("sink-task-metrics", "put-batch-avg-time-ms"): "sink_put_batch_avg_ms",
    ("sink-task-metrics", "sink-record-send-rate"): "sink_records_per_second",
}
#: Debezium's MBean domain per source kind
DOMAINS = {"postgresql": "debezium.postgres", "mysql": "debezium.mysql", "mariadb": "debezium.mariadb",
           "sqlserver": "debezium.sql_server"}  # fmt: skip
TIMEOUT_SECONDS = 5.0


#: per-topic client metrics of the connectors' producer (captured) and consumer (applied) -> metric
PRODUCER_TOPIC_ATTRIBUTES = {"byte-rate": "captured_bytes_per_second"}
CONSUMER_TOPIC_ATTRIBUTES = {"bytes-consumed-rate": "applied_bytes_per_second"}


@dataclass(frozen=True)
class JmxWatch:
    pipeline: str
    source_kind: str
    topic_prefix: str
    sink_connector: str
    source_connector: str = ""


def _requests(w: JmxWatch) -> list[dict]:
    streaming = f"{DOMAINS.get(w.source_kind, 'debezium.*')}:type=connector-metrics,context=streaming,server={w.topic_prefix},*"
    out = [{"type": "read", "mbean": streaming, "attribute": list(STREAMING_ATTRIBUTES)}]
    for kind in sorted({k for k, _ in SINK_ATTRIBUTES}):
        attributes = [a for k, a in SINK_ATTRIBUTES if k == kind]
        out.append({"type": "read", "mbean": f"kafka.connect:type={kind},connector={w.sink_connector},task=*",
                    "attribute": attributes})  # fmt: skip
    # Connect names its clients connector-producer-<connector>-<task> / connector-consumer-...
    if w.source_connector:
        out.append({"type": "read", "attribute": list(PRODUCER_TOPIC_ATTRIBUTES),
                    "mbean": f"kafka.producer:type=producer-topic-metrics,client-id=connector-producer-{w.source_connector}-*,topic=*"})  # fmt: skip
    out.append({"type": "read", "attribute": list(CONSUMER_TOPIC_ATTRIBUTES),
                "mbean": f"kafka.consumer:type=consumer-fetch-manager-metrics,client-id=connector-consumer-{w.sink_connector}-*,topic=*"})  # fmt: skip
    return out


def _key(mbean: str, key: str) -> str | None:
    for part in mbean.split(":", 1)[-1].split(","):
        name, _, value = part.partition("=")
        if name == key:
            return value
    return None


def _number(value) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value) if value == value and abs(value) != float("inf") else None
    return None


def read_jmx(
    jolokia_urls: str, watches: list[JmxWatch]
) -> tuple[dict[str, dict[tuple[str, str], float]], list[str]]:
    """Per pipeline, its figures by (subject, metric): subject ``source`` or ``sink`` (the ``sink_*``
    figures summed over the sink's tasks), or a topic for the bytes per second captured and applied;
    and the agents that could not be read.

    ``jolokia_urls`` names one agent per Connect worker, comma-separated: a connector's task runs on
    one worker, so its MBeans are on that worker's agent only, and the sink's tasks may be spread over
    several. One unreachable worker costs its own tasks' figures, not the others'."""
    plan = [(w, r) for w in watches for r in _requests(w)]
    figures: dict[str, dict[tuple[str, str], float]] = {w.pipeline: {} for w in watches}
    failures: list[str] = []
    if not plan:
        return figures, failures
    # lazy: a metrics pass imports httpx, not every code-location load
    import httpx

    urls = [u.strip() for u in jolokia_urls.split(",") if u.strip()]
    for url in urls:
        try:
            response = httpx.post(url.rstrip("/") + "/", json=[r for _, r in plan], timeout=TIMEOUT_SECONDS)
            response.raise_for_status()
            answers = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            failures.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        for (w, _), answer in zip(plan, answers, strict=True):
            if answer.get("status") == 200:  # else no such MBean: the connector does not run there
                _add_answer(figures[w.pipeline], answer)
    if len(failures) == len(urls):
        raise ConnectionError("no Jolokia agent answered: " + "; ".join(failures))
    return figures, failures


def _add_answer(mine: dict[tuple[str, str], float], answer: dict) -> None:
    # a pattern read answers {mbean name: {attribute: value}}
    for mbean, attributes in (answer.get("value") or {}).items():
        for attribute, value in (attributes or {}).items():
            number = _number(value)
            if number is None:
                continue
            if mbean.startswith("kafka.connect:"):
                metric = SINK_ATTRIBUTES.get((_key(mbean, "type") or "", attribute))
                if metric:
                    mine[("sink", metric)] = mine.get(("sink", metric), 0.0) + number
            elif mbean.startswith(("kafka.producer:", "kafka.consumer:")):
                names = {**PRODUCER_TOPIC_ATTRIBUTES, **CONSUMER_TOPIC_ATTRIBUTES}
                topic = _key(mbean, "topic")
                if topic and attribute in names:
                    key = (topic, names[attribute])
                    mine[key] = mine.get(key, 0.0) + number
            elif attribute in STREAMING_ATTRIBUTES:
                mine[("source", STREAMING_ATTRIBUTES[attribute])] = number
