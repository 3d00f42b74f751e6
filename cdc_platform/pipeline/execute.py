"""Executing a plan: target schema, copy with handoff, connectors; and tearing a pipeline down.

The order honours the handoff invariant (see :mod:`cdc_platform.pipeline.handoff`) and the rule
that the sink starts only after every table is copied. Functions return plain results that the
Dagster assets turn into metadata, so the same steps also serve the CLI and the tests.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cdc_platform.audit import record
from cdc_platform.connectors.source import SOURCE_CLASSES
from cdc_platform.db import engine_for, mysql_connect, pg_connect
from cdc_platform.kafka_admin import ensure_topics
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.pipeline import handoff
from cdc_platform.pipeline.deployed import record_deployed
from cdc_platform.pipeline.full_load import CopyStats, copy_tables
from cdc_platform.pipeline.plan import PipelinePlan, config_diff, config_hash
from cdc_platform.pipeline.sqlserver_capture import ensure_capture
from cdc_platform.pipeline.teardown import teardown_pipeline, with_recorded_tables

Log = Callable[[str], None]


class DeployRollbackFailed(RuntimeError):
    """A first deploy failed and so did its rollback; ``__cause__`` is the deploy's own error."""


@dataclass
class ConnectorResult:
    name: str
    action: str  # created | updated | unchanged
    config_hash: str
    diff: dict = field(default_factory=dict)
    state: str | None = None


@dataclass
class RunResult:
    copied: dict[str, CopyStats] = field(default_factory=dict)
    connectors: dict[str, ConnectorResult] = field(default_factory=dict)
    ddl: list[str] = field(default_factory=list)
    topics: dict[str, str] = field(default_factory=dict)


def apply_ddl(plan: PipelinePlan, specs_dir: Path, log: Log) -> list[str]:
    kind = plan.target.kind.value
    if kind == "s3":
        from cdc_platform.s3.storage import check_bucket, s3_filesystem

        check_bucket(s3_filesystem(plan.target, specs_dir), plan.target)
        log(f"bucket {plan.target.bucket} answers; Parquet files carry their own schema")
        return []
    if kind == "postgresql":
        with pg_connect(plan.target, specs_dir, autocommit=True) as conn:
            for stmt in plan.ddl:
                conn.execute(stmt)
    elif kind in ("mysql", "mariadb"):
        conn = mysql_connect(plan.target, specs_dir, database="", autocommit=True)
        try:
            with conn.cursor() as cur:
                for stmt in plan.ddl:
                    cur.execute(stmt)
        finally:
            conn.close()
    else:
        with engine_for(plan.target, specs_dir).begin() as conn:
            import sqlalchemy as sa

            for stmt in plan.ddl:
                conn.execute(sa.text(stmt))
    record(
        "ddl.applied",
        f"{plan.target.name}:{plan.spec.target_schema}",
        pipeline=plan.spec.name,
        detail=";\n".join(plan.ddl),
    )
    beat = " and the heartbeat table" if plan.heartbeat else ""
    log(f"target schema {plan.spec.target_schema}: {len(plan.tables)} tables{beat} ensured")
    return list(plan.ddl)


def ensure_source_heartbeat(plan: PipelinePlan, specs_dir: Path, log: Log) -> None:
    """Create the heartbeat table on the source, before anything captures or publishes it."""
    beat, kind = plan.heartbeat, plan.source.kind.value
    if beat is None:
        return
    try:
        if kind == "postgresql":
            with pg_connect(plan.source, specs_dir, autocommit=True) as conn:
                conn.execute(beat.source_ddl(kind))
        else:
            conn = mysql_connect(plan.source, specs_dir, database="", autocommit=True)
            try:
                with conn.cursor() as cur:
                    cur.execute(beat.source_ddl(kind))
            finally:
                conn.close()
    except Exception as exc:
        raise RuntimeError(
            f"pipeline {plan.spec.name}: could not create its heartbeat table {beat.source_qualified} on "
            f"source {plan.source.name} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            f"Grant CREATE on {beat.source_schema} to {plan.source.username}, or set "
            "options.heartbeat_table: false in the pipeline spec (no latency figure then)"
        ) from exc
    record("heartbeat.ensured", beat.source_qualified, pipeline=plan.spec.name, detail=beat.source_ddl(kind))
    log(f"heartbeat table {beat.source_qualified} ensured on the source")


def deploy_connector(connect: KafkaConnectResource, config: dict[str, str], log: Log) -> ConnectorResult:
    """Create or update a connector; succeed only when it and every task run afterwards.

    An unchanged config is not a success by itself: a FAILED task is restarted and a paused or
    stopped connector resumed, and the result must run like a freshly deployed one.
    """
    name = config["name"]
    current = connect.get_config(name)
    connect.validate(config)
    is_source = config.get("connector.class") in SOURCE_CLASSES.values()
    action = connect.put_config(name, config, fresh_offsets=is_source)
    diff = config_diff(current, {**config, "name": name}) if action == "updated" else {}
    if action == "unchanged":
        status = connect.status(name) or {}
        connector_state = status.get("connector", {}).get("state")
        task_states = [t["state"] for t in status.get("tasks", [])]
        if connector_state in ("PAUSED", "STOPPED"):
            connect.resume(name)
            action = "resumed"
        elif connector_state == "FAILED" or "FAILED" in task_states:
            connect.restart(name, only_failed=True, include_tasks=True)
            action = "restarted"
        if action != "unchanged":
            log(f"connector {name}: config unchanged but it was {connector_state} {task_states}; {action}")
    status = connect.wait_running(name, settle=0.0 if action == "unchanged" else 3.0)
    state = status["connector"]["state"]
    log(f"connector {name}: {action} ({state})")
    return ConnectorResult(name, action, config_hash(config), diff, state)


def captured_tables(config: dict[str, str] | None) -> set[str]:
    """``schema.table`` names a deployed source connector captures (its include list, unescaped)."""
    patterns = (config or {}).get("table.include.list", "")
    return {re.sub(r"\\(.)", r"\1", p) for p in patterns.split(",") if p}


def extend_capture(plan: PipelinePlan, specs_dir: Path, connect: KafkaConnectResource, jobs: list,
                   switched: set[str], log: Log) -> list[str]:  # fmt: skip
    """Before copying tables a running pipeline does not capture yet, capture them.

    Copying first would lose every change made between the copy and the connector update. In this
    order nothing is lost: changes from the moment capture covers a table wait in Kafka, the copy
    then reads a state at least that recent, and the sink (stopped meanwhile) replays the overlap,
    which full row images, upserts by key and deletes make converge. Returns the added tables.
    """
    names = plan.names
    current = connect.get_config(names.source_connector)
    added = sorted(j.table.qualified for j in jobs if j.table.qualified not in captured_tables(current))
    if not added or plan.source_config is None:
        return []
    ensure_topics(plan.kafka_bootstrap, [t for t, _ in plan.routes], plan.spec.options.max_event_bytes)
    if plan.source.kind.value == "postgresql":
        handoff.ensure_slot(plan.source, specs_dir, names.slot, names.publication, list(plan.tables), switched,
                            plan.published_extra)  # fmt: skip
    deploy_connector(connect, with_recorded_tables(plan.source_config, current, switched), log)
    log(f"capture extended to {', '.join(added)} before copying them")
    return added


def _wait_source_position(connect: KafkaConnectResource, name: str, timeout: float = 120.0) -> None:
    """MySQL/MariaDB: the copy may start only once the connector has recorded its binlog position."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            offsets = connect.offsets(name).get("offsets", [])
        except (httpx.HTTPError, RuntimeError):
            offsets = []
        if any(o.get("offset") for o in offsets):
            return
        time.sleep(0.5)
    raise handoff.HandoffError(f"source connector {name} recorded no binlog position within {timeout:.0f} s")


def with_topic_positions(plan: PipelinePlan, jobs: list) -> list:
    """S3 targets: each copy job learns its table topic's end offset before the copy reads, so the
    merge orders the snapshot after every change captured before it (cdc_platform/s3/snapshot.py)."""
    import dataclasses

    from confluent_kafka import Consumer, TopicPartition

    from cdc_platform.pipeline.plan import table_topic

    consumer = Consumer(
        {"bootstrap.servers": plan.kafka_bootstrap, "group.id": f"cdc-{plan.spec.name}-positions"}
    )
    try:
        topics = consumer.list_topics(timeout=10).topics
        out = []
        for job in jobs:
            topic = table_topic(plan.source, plan.names, job.table.qualified)
            end = 0
            if topic in topics:
                end = max(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                          for p in topics[topic].partitions)  # fmt: skip
            out.append(dataclasses.replace(job, since_offset=end))
        return out
    finally:
        consumer.close()


def run_pipeline(
    plan: PipelinePlan, specs_dir: Path, connect: KafkaConnectResource | None, log: Log, *,
    schema: bool = True, copy: bool = True, source: bool = True, sink: bool = True,
    only_tables: set[str] | None = None,
) -> RunResult:  # fmt: skip
    """Materialize the selected parts of a pipeline in the one order that keeps the handoff gap-free."""
    spec, names = plan.spec, plan.names
    copy = copy and spec.copies
    source = source and spec.streams
    sink = sink and spec.streams
    result = RunResult()
    if (source or sink) and connect is None:
        raise ValueError(f"pipeline {spec.name} streams but no Kafka Connect resource was given")
    # Both configs are checked by their plugins before any DDL, copy or deploy: a config the worker
    # would reject must not leave the pipeline half-deployed.
    if connect is not None and spec.streams:
        for config in (plan.source_config, plan.sink_config):
            if config is not None:
                connect.validate(config)
    if schema:
        result.ddl = apply_ddl(plan, specs_dir, log)
    if spec.streams and (source or copy):
        # the copy's path creates the publication (PostgreSQL), which names the heartbeat table
        ensure_source_heartbeat(plan, specs_dir, log)
        if plan.source_setup:
            ensure_capture(plan.source, specs_dir, list(plan.source_setup), log)
    if (source or sink) and plan.routes:
        result.topics = ensure_topics(plan.kafka_bootstrap, [t for t, _ in plan.routes],
                                      spec.options.max_event_bytes)  # fmt: skip
        changed = {t: a for t, a in result.topics.items() if a != "unchanged"}
        if changed:
            log(f"topics (max.message.bytes {spec.options.max_event_bytes:,}): {changed}")
    src_kind = plan.source.kind.value
    deployed = bool(connect and spec.streams and connect.get_config(names.source_connector) is not None)
    # the connectors always cover every table; ``only_tables`` narrows the copy (re-load of some tables)
    jobs = [j for j in plan.jobs if only_tables is None or j.table.qualified in only_tables]
    if copy and plan.target.kind.value == "s3" and plan.routes:
        jobs = with_topic_positions(plan, jobs)
    tables = list(plan.tables)

    # A first deploy that fails anywhere is rolled back (connectors, slot, publication), so it never
    # stays half-deployed: a plugin's validate endpoint does not catch every bad value.
    fresh = bool(
        connect and spec.streams and not deployed and connect.get_config(names.sink_connector) is None
    )
    #: tables this run moves to REPLICA IDENTITY FULL; recorded in the source connector's config
    switched: set[str] = set()
    try:
        if copy and deployed:
            # Re-load of a running pipeline: keep the sink off the tables while they are rewritten.
            # Changes captured meanwhile wait in Kafka and are upserted after the copy, which converges.
            assert connect is not None
            added = extend_capture(plan, specs_dir, connect, jobs, switched, log)
            sink_exists = connect.get_config(names.sink_connector) is not None
            if sink_exists:
                connect.stop(names.sink_connector)
                log(f"sink {names.sink_connector} stopped for the re-load")
            try:
                result.copied = copy_tables(plan.source, plan.target, jobs, specs_dir, parallelism=spec.options.parallelism,
                                            log=log, batch_size=spec.options.batch_size)  # fmt: skip
            finally:
                # A failed copy left every target table as it was (PostgreSQL: one transaction;
                # MySQL/MariaDB: a shadow table swapped in only on success), so the sink resumes
                # either way; the copy's own error is what the run reports.
                if sink_exists:
                    connect.resume(names.sink_connector)
                    log(f"sink {names.sink_connector} resumed")
            if sink_exists:
                connect.wait_running(names.sink_connector)
            if added and sink_exists and plan.sink_config is not None:
                # only now, after their copy, does the sink read the added tables' topics
                result.connectors["sink"] = deploy_connector(connect, plan.sink_config, log)
        elif copy and spec.streams and src_kind == "postgresql":
            with handoff.exported_snapshot(plan.source, specs_dir, names.slot, names.publication, tables,
                                           recreate=True, switched=switched,
                                           extra=plan.published_extra) as snapshot:  # fmt: skip
                log(f"slot {names.slot} created; copying under exported snapshot {snapshot}")
                result.copied = copy_tables(plan.source, plan.target, jobs, specs_dir, parallelism=spec.options.parallelism,
                                            snapshot=snapshot, log=log, batch_size=spec.options.batch_size)  # fmt: skip
        elif copy and spec.streams:
            assert connect is not None and plan.source_config is not None
            result.connectors["source"] = deploy_connector(connect, plan.source_config, log)
            _wait_source_position(connect, names.source_connector)
            log(f"capture started by {names.source_connector}; copying")
            result.copied = copy_tables(plan.source, plan.target, jobs, specs_dir, parallelism=spec.options.parallelism,
                                        log=log, batch_size=spec.options.batch_size)  # fmt: skip
        elif copy:
            result.copied = copy_tables(plan.source, plan.target, jobs, specs_dir, parallelism=spec.options.parallelism,
                                        log=log, batch_size=spec.options.batch_size)  # fmt: skip

        if source and "source" not in result.connectors:
            assert connect is not None and plan.source_config is not None
            if src_kind == "postgresql":
                handoff.ensure_slot(plan.source, specs_dir, names.slot, names.publication, tables, switched,
                                    plan.published_extra)  # fmt: skip
            config = with_recorded_tables(
                plan.source_config, connect.get_config(names.source_connector), switched
            )
            result.connectors["source"] = deploy_connector(connect, config, log)
        if sink and plan.sink_config is not None:  # an S3 target has no sink connector: its writer is ours
            assert connect is not None
            result.connectors["sink"] = deploy_connector(connect, plan.sink_config, log)
    except Exception as failure:
        if fresh:
            assert connect is not None
            log(
                f"pipeline {spec.name}: deploy failed; rolling back what this run created (target data stays)"
            )
            try:
                teardown_pipeline(spec.name, connect, log, source=plan.source, specs_dir=specs_dir,
                                  kafka_bootstrap=plan.kafka_bootstrap or None, replica_identity=switched,
                                  heartbeat=plan.heartbeat)  # fmt: skip
            except Exception as rollback_failure:
                # the deploy's own error stays the cause; the rollback's is reported beside it
                raise DeployRollbackFailed(
                    f"pipeline {spec.name}: deploy failed ({type(failure).__name__}: {failure}), and rolling "
                    f"it back failed too ({type(rollback_failure).__name__}: {rollback_failure}); remove "
                    f"what is left with `cdc-platform teardown {spec.name}`"
                ) from failure
        raise
    # what later parts (the S3 writer, the drift check) read: the tables this deploy was built from
    record_deployed(spec.name, tables)
    return result
