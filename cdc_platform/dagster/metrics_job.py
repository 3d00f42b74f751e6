"""The metrics collection as a Dagster job on a schedule (every minute by default).

Each run reads every pipeline once (see ``collect``), stores the figures in the platform's time
series, and records them as asset observations with numeric metadata, which the UI plots per asset:
lag, throughput and row estimates on each target table, total lag on the sink connector, the
replication slot on the source connector.
"""

import time
from dataclasses import dataclass

import dagster as dg

from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.health.collect import PipelineWatch, collect
from cdc_platform.health.glossary import legend
from cdc_platform.health.metrics_store import MetricsStore
from cdc_platform.kafka_connect import KafkaConnectResource

#: samples older than this are pruned by each collection
RETENTION_SECONDS = 7 * 24 * 3600
TABLE_METRICS = ("lag_messages", "captured_per_second", "applied_per_second", "captured_bytes_per_second",
                 "applied_bytes_per_second")  # fmt: skip
#: per pipeline, measured through its heartbeat table; shown on every table and on the sink
PIPELINE_METRICS = ("latency_seconds", "heartbeat_age_seconds")
#: the source's log kept for the pipeline: the PostgreSQL slot, or the MySQL/MariaDB binlogs
SOURCE_METRICS = ("slot_active", "slot_retained_wal_bytes", "slot_flush_lag_bytes", "slot_safe_wal_size_bytes",
                  "slot_wal_status_ok", "binlog_files", "binlog_total_bytes", "binlog_behind_bytes",
                  "binlog_position_available", "binlog_expire_seconds", "source_ms_behind", "source_events_seen",
                  "source_queue_remaining", "source_queue_capacity", "source_connected",
                  "source_ms_since_last_event")  # fmt: skip
#: the sink's task figures from Connect's MBeans
SINK_METRICS = ("sink_record_errors", "sink_record_failures", "sink_records_skipped", "sink_dlq_produced",
                "sink_put_batch_avg_ms", "sink_records_per_second", "sink_stalled")  # fmt: skip


@dataclass(frozen=True)
class WatchedAssets:
    """Where a pipeline's figures are shown: its table assets and its two connector assets."""

    watch: PipelineWatch
    tables: dict[str, dg.AssetKey]
    source_connector: dg.AssetKey
    #: where the sink's figures show: the sink connector, or for an S3 target the source connector
    sink_connector: dg.AssetKey


def observed(key: dg.AssetKey, metadata: dict) -> dg.AssetObservation:
    """An observation whose description says what each of its figures is, and in which unit; rates
    and sizes rounded to what a person reads (the stored series keeps full precision)."""
    shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in metadata.items()}
    return dg.AssetObservation(asset_key=key, metadata=shown, description=legend(metadata) or None)


def observations(w: WatchedAssets, samples, errors: dict[str, str]) -> list[dg.AssetObservation]:
    values: dict[tuple[str, str], float] = {(s.subject, s.metric): s.value for s in samples}
    events = []
    pipeline = {m: values[("pipeline", m)] for m in PIPELINE_METRICS if ("pipeline", m) in values}
    for qualified, key in w.tables.items():
        metadata: dict = {m: values[(qualified, m)] for m in TABLE_METRICS if (qualified, m) in values}
        metadata.update(pipeline)
        if (qualified, "lag_messages") in values:
            metadata["lag_messages"] = int(values[(qualified, "lag_messages")])
        if (qualified, "target_rows_estimate") in values:
            metadata["dagster/row_count"] = int(values[(qualified, "target_rows_estimate")])
        if errors:
            metadata["collection_errors"] = dg.MetadataValue.json(errors)
        if metadata:
            events.append(observed(key, metadata))
    sink: dict = (
        {"lag_messages": int(values[("sink", "lag_messages")])} if ("sink", "lag_messages") in values else {}
    )
    sink.update(pipeline)
    if ("sink", "dlq_messages") in values:
        sink["dlq_messages"] = int(values[("sink", "dlq_messages")])
    sink.update({m: values[("sink", m)] for m in SINK_METRICS if ("sink", m) in values})
    if "jmx" in errors:
        sink["jmx_error"] = errors["jmx"]
    if "kafka" in errors:
        sink["collection_error"] = errors["kafka"]
    if sink:
        events.append(observed(w.sink_connector, sink))
    source: dict = {m: values[("source", m)] for m in SOURCE_METRICS if ("source", m) in values}
    if "source" in errors:
        source["collection_error"] = errors["source"]
    if source:
        events.append(observed(w.source_connector, source))
    return events


def build_metrics_job(name: str, watched: list[WatchedAssets]) -> dg.JobDefinition:
    @dg.op(
        name=f"{name}_op",
        description="Collect lag, latency, throughput, slot or binlog, DLQ and row figures of every pipeline.",
    )
    def _collect(
        context: dg.OpExecutionContext, cdc_settings: CdcSettingsResource, kafka_connect: KafkaConnectResource
    ) -> None:
        started = time.time()
        specs = cdc_settings.specs()
        store = MetricsStore()
        watches = [w.watch for w in watched if w.watch.pipeline in specs.pipelines]
        previous = {w.pipeline: store.latest(w.pipeline) for w in watches}
        figures = collect(specs, watches, cdc_settings.kafka_bootstrap, previous, now=started, connect=kafka_connect,
                          jolokia_url=cdc_settings.jolokia_url or None)  # fmt: skip
        for w in watched:
            result = figures.get(w.watch.pipeline)
            if result is None:
                continue
            store.record(result.samples)
            for event in observations(w, result.samples, result.errors):
                context.log_event(event)
            for part, error in result.errors.items():
                context.log.warning(f"pipeline {w.watch.pipeline}: {part} did not answer: {error}")
        store.prune(started - RETENTION_SECONDS)
        context.log.info(f"collected {sum(len(f.samples) for f in figures.values())} figures of {len(watches)} "
                         f"pipelines in {time.time() - started:.1f} s")  # fmt: skip

    @dg.job(name=name, description="Collects how every pipeline runs (lag, throughput, slot WAL, rows) "
            "into asset observations and the platform's time series.", tags={"cdc/kind": "metrics"})  # fmt: skip
    def _job():
        _collect()

    return _job


def build_metrics_schedule(job: dg.JobDefinition, cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=f"{job.name}_schedule", job=job, cron_schedule=cron, default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Collects pipeline metrics; each run's figures appear as plots on the assets.",
    )  # fmt: skip
