"""What each plotted figure means and in which unit, for the person reading the plot.

Dagster's numeric metadata carries no unit or description of its own; the key names end in their
unit where one fits (``_seconds``, ``_bytes``, ``_ms``, ``_per_second``), and every observation
that records figures carries a description built from this table, so the Events list and the plot's
hover say what a number is. One table, so the metrics job, the health sensor and the README agree.
"""

from __future__ import annotations

#: metric key -> (unit, meaning)
GLOSSARY: dict[str, tuple[str, str]] = {
    "dagster/row_count": (
        "rows",
        "rows on the target (the database's estimate; absent until it has statistics)",
    ),
    "lag_messages": ("changes", "changes in Kafka the sink has not applied yet"),
    "applied_total": ("changes", "the sink's committed position, summed over its topics"),
    "sink_stalled": (
        "0/1",
        "1 when changes wait and the sink applied none since the previous collection (even if it shows RUNNING)",
    ),
    "captured_per_second": ("changes/s", "changes the source connector wrote to Kafka, over the last minute"),
    "applied_per_second": ("changes/s", "changes the sink consumed from Kafka, over the last minute"),
    "captured_bytes_per_second": ("bytes/s", "change events written to Kafka by the source connector"),
    "applied_bytes_per_second": ("bytes/s", "change events consumed by the sink"),
    "latency_seconds": (
        "s",
        "source commit to target row, measured on the heartbeat; during an outage at least "
        "the heartbeat's age, never a stale value",
    ),
    "heartbeat_age_seconds": ("s", "since the last heartbeat reached the target"),
    "dlq_messages": ("changes", "changes parked in the dead-letter topic"),
    "state_code": (
        "code",
        "the pipeline's state: 0 RUNNING, 1 STARTING, 2 PAUSED, 3 STOPPING, 4 STOPPED, 5 ERROR",
    ),
    "slot_active": ("0/1", "1 while a connector reads the replication slot"),
    "slot_retained_wal_bytes": ("bytes", "WAL the server keeps for the slot"),
    "slot_flush_lag_bytes": ("bytes", "WAL the connector has not confirmed yet"),
    "slot_safe_wal_size_bytes": ("bytes", "WAL that may still be written before the slot is invalidated"),
    "slot_wal_status_ok": ("0/1", "1 while the slot's WAL is reserved or extended (not lost)"),
    "binlog_files": ("files", "binlog files the server keeps"),
    "binlog_total_bytes": ("bytes", "size of all binlog files"),
    "binlog_behind_bytes": ("bytes", "binlog the connector has still to read"),
    "binlog_position_available": ("0/1", "0 when the file the connector would resume from was purged"),
    "binlog_expire_seconds": ("s", "how long the server keeps a binlog file"),
    "source_ms_behind": ("ms", "Debezium's lag behind the source's commit time"),
    "source_events_seen": ("events", "events Debezium has read since its task started"),
    "source_queue_remaining": ("events", "free room in Debezium's internal queue"),
    "source_queue_capacity": ("events", "size of Debezium's internal queue"),
    "source_connected": ("0/1", "1 while Debezium is connected to the source"),
    "source_ms_since_last_event": ("ms", "since Debezium last read an event"),
    "sink_record_errors": ("records", "records that raised an error in the sink since its task started"),
    "sink_record_failures": ("records", "record failures (retried or not) since the task started"),
    "sink_records_skipped": ("records", "records the sink skipped under its error tolerance"),
    "sink_dlq_produced": ("records", "records the sink sent to the dead-letter topic"),
    "sink_put_batch_avg_ms": ("ms", "average time of one write batch on the target"),
    "sink_records_per_second": ("records/s", "records the sink task received per second"),
}


def legend(keys) -> str:
    """A Markdown list, one item per figure present, ``key (unit): meaning``; unknown keys are left
    out, not guessed. The UI renders descriptions as Markdown and joins plain lines into one."""
    return "\n".join(f"- `{k}` ({GLOSSARY[k][0]}): {GLOSSARY[k][1]}" for k in sorted(keys) if k in GLOSSARY)
