"""Collecting how pipelines run: sink lag and throughput per table from Kafka offsets, dead-letter
topic sizes, the PostgreSQL slot's retained WAL or the MySQL/MariaDB binlog's retention against the
connector's position, latency through the heartbeat table, and row-count estimates on the target.

One Kafka request answers for every topic of every pipeline; each database is asked once per
collection with a short connect timeout, in parallel, so a source that does not answer costs one
timeout and is reported, not the whole collection.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from cdc_platform.db import mysql_connect, pg_connect
from cdc_platform.health.jmx import JmxWatch, read_jmx
from cdc_platform.health.metrics_store import Sample
from cdc_platform.health.s3_heartbeat import stored_heartbeat_figures
from cdc_platform.kafka_log import kafka_client_config
from cdc_platform.pipeline.heartbeat import Heartbeat
from cdc_platform.pipeline.plan import PipelineNames, heartbeat_of, table_topic, target_table_name
from cdc_platform.schema.model import Table
from cdc_platform.specs.loader import Specs

DB_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class TableWatch:
    qualified: str
    topic: str
    target_table: str


@dataclass(frozen=True)
class PipelineWatch:
    """What one pipeline's collection reads: its topics, sink group, slot and target tables."""

    pipeline: str
    tables: tuple[TableWatch, ...]
    sink_group: str
    slot: str | None
    heartbeat: Heartbeat | None = None
    #: MySQL/MariaDB: the source connector whose binlog position is compared with the server's binlogs
    binlog_connector: str | None = None
    #: the sink's dead-letter topic, when its target connection configures one
    dlq_topic: str | None = None
    #: what the Connect JVM's MBeans are read by (Debezium's streaming metrics, the sink's task metrics)
    jmx: JmxWatch | None = None


@dataclass
class PipelineFigures:
    """One collection of one pipeline: samples to store, and errors by the part that did not answer."""

    samples: list[Sample] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def pipeline_watch(specs: Specs, name: str, tables: list[Table] | None) -> PipelineWatch | None:
    """The watch of a streaming pipeline whose tables are known (stored catalog or named tables)."""
    spec = specs.pipelines[name].spec
    if not spec.streams:
        return None
    source, target = specs.connection(spec.source), specs.connection(spec.target)
    qualified = [t.qualified for t in tables] if tables else list(spec.tables.names)
    names = PipelineNames(name)
    watches = []
    for q in qualified:
        watches.append(TableWatch(q, table_topic(source, names, q), target_table_name(spec, q)))
    slot = names.slot if source.kind.value == "postgresql" else None
    schemas = {q.split(".", 1)[0] for q in qualified} | (
        {spec.tables.schema_} if spec.tables.schema_ else set()
    )
    beat = heartbeat_of(spec, source, target, sorted(schemas))
    binlog = names.source_connector if source.kind.value in ("mysql", "mariadb") else None
    dlq = target.options.get("errors.deadletterqueue.topic.name") or None
    jmx = JmxWatch(name, source.kind.value, names.topic_prefix, names.sink_connector, names.source_connector)
    # an S3 target's changes are applied by the platform's writer: its group's offsets are what is written
    group = names.s3_writer_group if target.kind.value == "s3" else f"connect-{names.sink_connector}"
    return PipelineWatch(name, tuple(watches), group, slot, beat, binlog, str(dlq) if dlq else None, jmx)


def kafka_offsets(
    bootstrap: str, watches: list[PipelineWatch]
) -> tuple[dict[str, int], dict[str, dict[str, int]], dict[str, int]]:
    """End offsets per topic, committed offsets per sink group and topic (summed over partitions),
    and the messages each dead-letter topic holds (end minus earliest offset)."""
    # lazy: librdkafka's bindings only when a metrics pass reads Kafka, not at every code-location load
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient(kafka_client_config(bootstrap, **{"socket.timeout.ms": 5000}))
    topics = sorted({t.topic for w in watches for t in w.tables})
    dlqs = sorted({w.dlq_topic for w in watches if w.dlq_topic})
    metadata = admin.list_topics(timeout=5).topics
    partitions = [TopicPartition(t, p) for t in topics if t in metadata for p in metadata[t].partitions]
    ends: dict[str, int] = dict.fromkeys(topics, 0)
    if partitions:
        futures = admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions}, request_timeout=10)
        for tp, future in futures.items():
            ends[tp.topic] += max(future.result().offset, 0)
    dlq_sizes: dict[str, int] = dict.fromkeys(dlqs, 0)  # a DLQ nothing was sent to does not exist yet
    dlq_partitions = [TopicPartition(t, p) for t in dlqs if t in metadata for p in metadata[t].partitions]
    if dlq_partitions:
        for spec, sign in ((OffsetSpec.latest(), 1), (OffsetSpec.earliest(), -1)):
            futures = admin.list_offsets({tp: spec for tp in dlq_partitions}, request_timeout=10)
            for tp, future in futures.items():
                dlq_sizes[tp.topic] += sign * max(future.result().offset, 0)
    committed: dict[str, dict[str, int]] = {}
    for w in watches:
        mine = [tp for tp in partitions if any(tp.topic == t.topic for t in w.tables)]
        if not mine:
            continue
        request = [
            ConsumerGroupTopicPartitions(
                w.sink_group, [TopicPartition(tp.topic, tp.partition) for tp in mine]
            )
        ]
        result = admin.list_consumer_group_offsets(request, request_timeout=10)[w.sink_group].result()
        by_topic: dict[str, int] = {}
        for tp in result.topic_partitions:
            by_topic[tp.topic] = by_topic.get(tp.topic, 0) + max(tp.offset, 0)
        committed[w.pipeline] = by_topic
    return ends, committed, dlq_sizes


def slot_figures(specs: Specs, name: str, slot: str) -> dict[str, float]:

    spec = specs.pipelines[name].spec
    with pg_connect(specs.connection(spec.source), specs.directory, autocommit=True,
                    connect_timeout=DB_TIMEOUT_SECONDS) as conn:  # fmt: skip
        row = conn.execute(
            "SELECT active, wal_status, safe_wal_size, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        ).fetchone()
    if row is None:
        return {"slot_exists": 0.0}
    active, wal_status, safe, retained, flush_lag = row
    figures = {"slot_exists": 1.0, "slot_active": float(bool(active)), "slot_retained_wal_bytes": float(retained or 0),
               "slot_flush_lag_bytes": float(flush_lag or 0),
               "slot_wal_status_ok": float(wal_status in ("reserved", "extended"))}  # fmt: skip
    if safe is not None:
        figures["slot_safe_wal_size_bytes"] = float(safe)
    return figures


def binlog_figures(specs: Specs, name: str, position: dict | None) -> dict[str, float]:
    """The server's binlogs against the connector's stored position (``{"file":..., "pos":...}``).

    ``binlog_position_available`` is 0 when the file the connector would resume from has been purged:
    the pipeline can then only be re-loaded. ``binlog_behind_bytes`` is what the connector has still
    to read; ``binlog_expire_seconds`` is how long the server keeps a file.
    """

    spec = specs.pipelines[name].spec
    conn = mysql_connect(specs.connection(spec.source), specs.directory, database="",
                         connect_timeout=DB_TIMEOUT_SECONDS)  # fmt: skip
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            logs = [(str(r[0]), int(r[1])) for r in cur.fetchall()]
            cur.execute(
                "SHOW VARIABLES WHERE Variable_name IN ('binlog_expire_logs_seconds', 'expire_logs_days')"
            )
            variables = {str(k): float(v or 0) for k, v in cur.fetchall()}
    finally:
        conn.close()
    expire = variables.get("binlog_expire_logs_seconds") or variables.get("expire_logs_days", 0) * 86400
    figures = {"binlog_files": float(len(logs)), "binlog_total_bytes": float(sum(size for _, size in logs)),
               "binlog_expire_seconds": float(expire)}  # fmt: skip
    if position and position.get("file"):
        names = [n for n, _ in logs]
        available = position["file"] in names
        figures["binlog_position_available"] = float(available)
        if available:
            at = names.index(position["file"])
            behind = logs[at][1] - int(position.get("pos", 0)) + sum(size for _, size in logs[at + 1 :])
            figures["binlog_behind_bytes"] = float(max(behind, 0))
    return figures


def connector_position(connect, name: str) -> dict | None:
    """The source connector's stored binlog offset, or None before it has recorded one."""
    if connect is None:
        return None
    offsets = connect.offsets(name).get("offsets", [])
    return next((o.get("offset") for o in offsets if o.get("offset")), None)


def row_estimates(specs: Specs, name: str, tables: tuple[TableWatch, ...]) -> dict[str, float]:
    """Planner estimates of the target tables' rows: free to read on any size of table."""
    spec = specs.pipelines[name].spec
    target = specs.connection(spec.target)
    wanted = {t.target_table: t.qualified for t in tables}
    if target.kind.value == "postgresql":
        with pg_connect(target, specs.directory, autocommit=True, connect_timeout=DB_TIMEOUT_SECONDS) as conn:
            rows = conn.execute(
                # reltuples is -1 until the table was first analyzed: no estimate, not a false zero
                "SELECT c.relname, c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname = ANY(%s) AND c.reltuples >= 0",
                (spec.target_schema, list(wanted)),
            ).fetchall()
    elif target.kind.value in ("mysql", "mariadb"):
        conn = mysql_connect(
            target, specs.directory, database=spec.target_schema, connect_timeout=DB_TIMEOUT_SECONDS
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT table_name, table_rows FROM information_schema.tables WHERE table_schema = %s",
                            (spec.target_schema,))  # fmt: skip
                rows = cur.fetchall()
        finally:
            conn.close()
    else:
        return {}
    return {wanted[r[0]]: float(r[1]) for r in rows if r[0] in wanted and r[1] is not None}


def heartbeat_figures(specs: Specs, name: str, beat: Heartbeat) -> dict[str, float]:
    """Latency of the latest heartbeat and its age, read on the target (see the heartbeat module)."""
    spec = specs.pipelines[name].spec
    target = specs.connection(spec.target)
    kind = target.kind.value
    if kind == "s3":  # no twin table: what the writer stored when it read the heartbeat topic
        return stored_heartbeat_figures(name)
    if kind == "postgresql":
        with pg_connect(target, specs.directory, autocommit=True, connect_timeout=DB_TIMEOUT_SECONDS) as conn:
            row = conn.execute(beat.reading_sql(kind), (name,)).fetchone()
    else:
        conn = mysql_connect(target, specs.directory, database="", connect_timeout=DB_TIMEOUT_SECONDS)
        try:
            with conn.cursor() as cur:
                cur.execute(beat.reading_sql(kind), (name,))
                row = cur.fetchone()
        finally:
            conn.close()
    if row is None:
        return {}  # no heartbeat has arrived yet
    ts_ms, applied_ms, now_ms = (int(v) for v in row)
    latency, age = max(applied_ms - ts_ms, 0) / 1000, max(now_ms - ts_ms, 0) / 1000
    # the next heartbeat is overdue: the stream has stalled, and the latency of a change made now is at
    # least the age of the last one that arrived; the last measured latency would read as current
    if age > 2 * spec.options.heartbeat_interval_ms / 1000:
        latency = max(latency, age)
    return {"latency_seconds": latency, "heartbeat_age_seconds": age}


#: no change applied for at least this long while changes wait: the sink is stalled
STALL_AFTER_SECONDS = 30.0


def collect(
    specs: Specs,
    watches: list[PipelineWatch],
    bootstrap: str,
    previous: dict[str, dict[tuple[str, str], tuple[float, float]]],
    now: float | None = None,
    connect=None,
    jolokia_url: str | None = None,
) -> dict[str, PipelineFigures]:
    """One collection of every pipeline; ``previous`` holds each pipeline's latest stored samples.
    ``connect`` (a ``KafkaConnectResource``) is asked for MySQL/MariaDB connectors' binlog positions;
    ``jolokia_url`` for the Connect JVM's MBeans."""
    now = now or time.time()
    figures = {w.pipeline: PipelineFigures() for w in watches}

    def add(pipeline: str, subject: str, metric: str, value: float) -> None:
        figures[pipeline].samples.append(Sample(now, pipeline, subject, metric, float(value)))

    try:
        ends, committed, dlq_sizes = kafka_offsets(bootstrap, watches)
    except Exception as exc:  # noqa: BLE001 - Kafka down: every pipeline says so, databases still answer
        ends, committed, dlq_sizes = {}, {}, {}
        for w in watches:
            figures[w.pipeline].errors["kafka"] = f"{type(exc).__name__}: {exc}"
    for w in watches:
        if "kafka" in figures[w.pipeline].errors:
            continue
        done = committed.get(w.pipeline, {})
        total_lag = 0
        for t in w.tables:
            end, applied = ends.get(t.topic, 0), done.get(t.topic, 0)
            lag = max(end - applied, 0)
            total_lag += lag
            add(w.pipeline, t.qualified, "lag_messages", lag)
            add(w.pipeline, t.qualified, "captured_offset", end)
            add(w.pipeline, t.qualified, "applied_offset", applied)
            for metric, current in (("captured", end), ("applied", applied)):
                before = previous.get(w.pipeline, {}).get((t.qualified, f"{metric}_offset"))
                if before and now > before[0] and current >= before[1]:
                    add(
                        w.pipeline,
                        t.qualified,
                        f"{metric}_per_second",
                        (current - before[1]) / (now - before[0]),
                    )
        add(w.pipeline, "sink", "lag_messages", total_lag)
        applied_total = sum(done.get(t.topic, 0) for t in w.tables)
        add(w.pipeline, "sink", "applied_total", applied_total)
        before = previous.get(w.pipeline, {}).get(("sink", "applied_total"))
        if before is not None and now - before[0] >= STALL_AFTER_SECONDS:
            # changes wait, and not one was applied since the last collection: stalled, whatever
            # the connector's state says (after a worker crash every task showed RUNNING, issue 34)
            add(w.pipeline, "sink", "sink_stalled", float(total_lag > 0 and applied_total <= before[1]))
        if w.dlq_topic:
            add(w.pipeline, "sink", "dlq_messages", dlq_sizes.get(w.dlq_topic, 0))

    if jolokia_url:
        try:
            by_topic = {w.pipeline: {t.topic: t.qualified for t in w.tables} for w in watches}
            jmx_figures, unreachable = read_jmx(jolokia_url, [w.jmx for w in watches if w.jmx])
            for pipeline, values in jmx_figures.items():
                for (subject, metric), value in values.items():
                    if subject in ("source", "sink"):
                        add(pipeline, subject, metric, value)
                    elif subject in by_topic[pipeline]:  # a table's topic (not the heartbeat's)
                        add(pipeline, by_topic[pipeline][subject], metric, value)
            if unreachable:  # a stopped worker: its tasks moved, the figures came from the others
                for w in watches:
                    figures[w.pipeline].errors["jmx"] = "worker agent(s) unreachable: " + "; ".join(
                        unreachable
                    )
        except Exception as exc:  # noqa: BLE001 - the agent down costs these figures, not the collection
            for w in watches:
                figures[w.pipeline].errors["jmx"] = f"{type(exc).__name__}: {exc}"

    def databases(w: PipelineWatch) -> None:
        if w.slot:
            try:
                for metric, value in slot_figures(specs, w.pipeline, w.slot).items():
                    add(w.pipeline, "source", metric, value)
            except Exception as exc:  # noqa: BLE001 - reported per pipeline and part
                figures[w.pipeline].errors["source"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        if w.binlog_connector:
            try:
                position = connector_position(connect, w.binlog_connector)
                for metric, value in binlog_figures(specs, w.pipeline, position).items():
                    add(w.pipeline, "source", metric, value)
            except Exception as exc:  # noqa: BLE001 - reported per pipeline and part
                figures[w.pipeline].errors["source"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        try:
            for qualified, rows in row_estimates(specs, w.pipeline, w.tables).items():
                add(w.pipeline, qualified, "target_rows_estimate", rows)
            if w.heartbeat is not None:
                for metric, value in heartbeat_figures(specs, w.pipeline, w.heartbeat).items():
                    add(w.pipeline, "pipeline", metric, value)
        except Exception as exc:  # noqa: BLE001 - reported per pipeline and part
            figures[w.pipeline].errors["target"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(databases, watches))
    return figures
