"""Executing a plan: target schema, copy with handoff, connectors; and tearing a pipeline down.

The order honours the handoff invariant (see :mod:`cdc_platform.pipeline.handoff`) and the rule
that the sink starts only after every table is copied. Functions return plain results that the
Dagster assets turn into metadata, so the same steps also serve the CLI and the tests.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa
from confluent_kafka import Consumer, TopicPartition

from cdc_platform.audit import record
from cdc_platform.connectors.diff import config_diff, config_hash
from cdc_platform.connectors.source import SOURCE_CLASSES
from cdc_platform.db import engine_for, mysql_connect, pg_connect
from cdc_platform.engines.kinds import target_traits
from cdc_platform.kafka_admin import ensure_topics
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.kafka_log import kafka_client_config
from cdc_platform.pipeline import handoff
from cdc_platform.pipeline.deployed import record_deployed
from cdc_platform.pipeline.full_load import CopyStats, copy_tables
from cdc_platform.pipeline.plan import PipelinePlan, table_topic
from cdc_platform.pipeline.sqlserver_capture import ensure_capture
from cdc_platform.pipeline.steps import CLEANUP, PREPARATION, RunFacts, RunRequest, Step, plan_steps
from cdc_platform.pipeline.teardown import teardown_pipeline, with_recorded_tables
from cdc_platform.s3.storage import check_bucket, s3_filesystem

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
    if not target_traits(kind).creates_tables:  # S3: the bucket must answer; the files carry their schema
        check_bucket(s3_filesystem(plan.target, specs_dir), plan.target)
        if plan.target.table_format == "iceberg":
            log(f"bucket {plan.target.bucket} answers; each table's Iceberg change log and current state are "
                "created or evolved by its copy")  # fmt: skip
        else:
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
            connect.await_restart(name)
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
    ensure_topics(plan.kafka_bootstrap, [t for t, _ in plan.routes], plan.spec.options.max_event_bytes,
                  partitions=plan.spec.options.topic_partitions)  # fmt: skip
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

    consumer = Consumer(
        kafka_client_config(plan.kafka_bootstrap, **{"group.id": f"cdc-{plan.spec.name}-positions"})
    )
    try:
        topics = consumer.list_topics(timeout=10).topics
        out = []
        for job in jobs:
            topic = table_topic(plan.source, plan.names, job.table.qualified)
            ends = {}
            if topic in topics:
                ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                        for p in topics[topic].partitions}  # fmt: skip
            out.append(dataclasses.replace(job, since_offset=sum(ends.values()), since_offsets=ends))
        return out
    finally:
        consumer.close()


def run_pipeline(
    plan: PipelinePlan, specs_dir: Path, connect: KafkaConnectResource | None, log: Log, *,
    schema: bool = True, copy: bool = True, source: bool = True, sink: bool = True,
    only_tables: set[str] | None = None,
) -> RunResult:  # fmt: skip
    """Materialize the selected parts of a pipeline in the one order that keeps the handoff gap-free
    (the order is :func:`~cdc_platform.pipeline.steps.plan_steps`'s; this carries it out)."""
    spec, names = plan.spec, plan.names
    request = RunRequest(schema=schema, copy=copy and spec.copies, source=source and spec.streams,
                         sink=sink and spec.streams)  # fmt: skip
    if (request.source or request.sink) and connect is None:
        raise ValueError(f"pipeline {spec.name} streams but no Kafka Connect resource was given")
    streams = bool(connect and spec.streams)
    facts = RunFacts(
        source_kind=plan.source.kind.value,
        streams=spec.streams, has_routes=bool(plan.routes), has_sink_config=plan.sink_config is not None,
        deployed=streams and connect.get_config(names.source_connector) is not None,  # type: ignore[union-attr]
        sink_exists=streams and connect.get_config(names.sink_connector) is not None,  # type: ignore[union-attr]
    )  # fmt: skip
    run = _Run(plan, specs_dir, connect, log, only_tables, request)
    failed: Exception | None = None
    failed_at: Step | None = None
    for step in plan_steps(request, facts):
        if failed is not None and step not in CLEANUP:
            continue
        try:
            getattr(run, step.name.lower())()
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the cleanup steps
            if failed is None:
                failed, failed_at = exc, step
    if failed is not None:
        if facts.fresh and connect is not None and failed_at not in PREPARATION | {Step.RECORD_DEPLOYED}:
            # A first deploy that fails anywhere is rolled back (connectors, slot, publication), so it
            # never stays half-deployed: a plugin's validate endpoint does not catch every bad value.
            run.roll_back(failed)
        raise failed
    return run.result


class _Run:
    """One run's state and the body of each step (the order is not decided here)."""

    def __init__(self, plan: PipelinePlan, specs_dir: Path, connect: KafkaConnectResource | None, log: Log,
                 only_tables: set[str] | None, request: RunRequest):  # fmt: skip
        self.plan, self.specs_dir, self.connect, self.log, self.request = (
            plan,
            specs_dir,
            connect,
            log,
            request,
        )
        self.names = plan.names
        self.result = RunResult()
        # the connectors always cover every table; ``only_tables`` narrows the copy (re-load of some tables)
        self.jobs = [j for j in plan.jobs if only_tables is None or j.table.qualified in only_tables]
        if request.copy and target_traits(plan.target.kind.value).copy_needs_topic_positions and plan.routes:
            self.jobs = with_topic_positions(plan, self.jobs)
        #: tables this run moves to REPLICA IDENTITY FULL; recorded in the source connector's config
        self.switched: set[str] = set()
        #: tables a re-load added to a running capture
        self.added: list[str] = []
        self.sink_stopped = False

    @property
    def _connect(self) -> KafkaConnectResource:
        assert self.connect is not None
        return self.connect

    def _copy(self, snapshot: str | None = None) -> None:
        options = self.plan.spec.options
        self.result.copied = copy_tables(self.plan.source, self.plan.target, self.jobs, self.specs_dir,
                                         parallelism=options.parallelism, snapshot=snapshot, log=self.log,
                                         batch_size=options.batch_size)  # fmt: skip

    def validate_configs(self) -> None:
        # Both configs are checked by their plugins before any DDL, copy or deploy: a config the
        # worker would reject must not leave the pipeline half-deployed.
        if self.connect is None:
            return
        for config in (self.plan.source_config, self.plan.sink_config):
            if config is not None:
                self.connect.validate(config)

    def apply_ddl(self) -> None:
        self.result.ddl = apply_ddl(self.plan, self.specs_dir, self.log)

    def prepare_source(self) -> None:
        # the copy's path creates the publication (PostgreSQL), which names the heartbeat table
        ensure_source_heartbeat(self.plan, self.specs_dir, self.log)
        if self.plan.source_setup:
            ensure_capture(self.plan.source, self.specs_dir, list(self.plan.source_setup), self.log)

    def ensure_topics(self) -> None:
        plan = self.plan
        self.result.topics = ensure_topics(plan.kafka_bootstrap, [t for t, _ in plan.routes],
                                           plan.spec.options.max_event_bytes,
                                           partitions=plan.spec.options.topic_partitions)  # fmt: skip
        changed = {t: a for t, a in self.result.topics.items() if a != "unchanged"}
        if changed:
            self.log(f"topics (max.message.bytes {plan.spec.options.max_event_bytes:,}): {changed}")

    def extend_capture(self) -> None:
        # Re-load of a running pipeline: changes captured meanwhile wait in Kafka and are upserted
        # after the copy, which converges.
        self.added = extend_capture(
            self.plan, self.specs_dir, self._connect, self.jobs, self.switched, self.log
        )

    def stop_sink(self) -> None:
        self._connect.stop(self.names.sink_connector)
        self.sink_stopped = True
        self.log(f"sink {self.names.sink_connector} stopped for the re-load")

    def copy(self) -> None:
        self._copy()

    def copy_in_exported_snapshot(self) -> None:
        plan, names = self.plan, self.names
        with handoff.exported_snapshot(plan.source, self.specs_dir, names.slot, names.publication, list(plan.tables),
                                       recreate=True, switched=self.switched,
                                       extra=plan.published_extra) as snapshot:  # fmt: skip
            self.log(f"slot {names.slot} created; copying under exported snapshot {snapshot}")
            self._copy(snapshot)

    def deploy_source_for_copy(self) -> None:
        assert self.plan.source_config is not None
        self.result.connectors["source"] = deploy_connector(self._connect, self.plan.source_config, self.log)

    def wait_source_position(self) -> None:
        _wait_source_position(self._connect, self.names.source_connector)
        self.log(f"capture started by {self.names.source_connector}; copying")

    def resume_sink(self) -> None:
        # A failed copy left every target table as it was (PostgreSQL: one transaction; MySQL/MariaDB:
        # a shadow table swapped in only on success), so the sink resumes either way; the copy's own
        # error is what the run reports.
        if not self.sink_stopped:
            return
        self._connect.resume(self.names.sink_connector)
        self.log(f"sink {self.names.sink_connector} resumed")

    def wait_sink(self) -> None:
        self._connect.wait_running(self.names.sink_connector)

    def deploy_sink_for_added(self) -> None:
        if self.added and self.plan.sink_config is not None:
            # only now, after their copy, does the sink read the added tables' topics
            self.result.connectors["sink"] = deploy_connector(self._connect, self.plan.sink_config, self.log)

    def ensure_slot(self) -> None:
        plan, names = self.plan, self.names
        handoff.ensure_slot(plan.source, self.specs_dir, names.slot, names.publication, list(plan.tables),
                            self.switched, plan.published_extra)  # fmt: skip

    def deploy_source(self) -> None:
        assert self.plan.source_config is not None
        config = with_recorded_tables(
            self.plan.source_config, self._connect.get_config(self.names.source_connector), self.switched
        )
        self.result.connectors["source"] = deploy_connector(self._connect, config, self.log)

    def deploy_sink(self) -> None:
        assert self.plan.sink_config is not None
        self.result.connectors["sink"] = deploy_connector(self._connect, self.plan.sink_config, self.log)

    def record_deployed(self) -> None:
        # what later parts (the S3 writer, the drift check) read: the tables this deploy was built from
        record_deployed(self.plan.spec.name, list(self.plan.tables))

    def roll_back(self, failure: Exception) -> None:
        plan = self.plan
        self.log(
            f"pipeline {plan.spec.name}: deploy failed; rolling back what this run created (target data stays)"
        )
        try:
            teardown_pipeline(plan.spec.name, self._connect, self.log, source=plan.source, specs_dir=self.specs_dir,
                              kafka_bootstrap=plan.kafka_bootstrap or None, replica_identity=self.switched,
                              heartbeat=plan.heartbeat)  # fmt: skip
        except Exception as rollback_failure:
            # the deploy's own error stays the cause; the rollback's is reported beside it
            raise DeployRollbackFailed(
                f"pipeline {plan.spec.name}: deploy failed ({type(failure).__name__}: {failure}), and rolling "
                f"it back failed too ({type(rollback_failure).__name__}: {rollback_failure}); remove "
                f"what is left with `cdc-platform teardown {plan.spec.name}`"
            ) from failure
