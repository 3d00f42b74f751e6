"""Commands on running pipelines: ``status`` (connectors, tasks, lag, slot, the S3 writer, a failed
task explained), ``teardown`` (by name, even without the spec) and ``orphans``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from cdc_platform.cli.common import UserError, connect_resource
from cdc_platform.cli.spec_access import pipeline_tables, read_specs, require_pipeline, specs_option
from cdc_platform.connectors.traces import innermost_cause
from cdc_platform.engines.kinds import target_traits
from cdc_platform.health.metrics_store import MetricsStore
from cdc_platform.health.stall import sink_stall
from cdc_platform.ops.diagnosis import explain, first_failed_trace
from cdc_platform.pipeline import lifecycle
from cdc_platform.pipeline.deployed import deployed_tables, last_deployed_at
from cdc_platform.pipeline.lifecycle import connectors_of, controls
from cdc_platform.pipeline.plan import PipelineNames, build_plan, table_topic
from cdc_platform.pipeline.state import PipelineState, derive_state
from cdc_platform.pipeline.teardown import TeardownIncomplete, teardown_pipeline
from cdc_platform.s3.changes import waiting_changes
from cdc_platform.settings import load_stack_settings
from cdc_platform.specs.loader import SpecErrors, default_specs_dir, load_specs


@click.command("teardown")
@click.argument("pipeline")
@specs_option
@click.option("--delete-topics", is_flag=True, help="Also delete the pipeline's Kafka topics.")
def teardown(pipeline: str, specs_dir: str | None, delete_topics: bool) -> None:
    """Delete a pipeline's connectors, slot, publication and consumer group; keep the target data.

    Works from the pipeline's name alone: without its spec the source is read back from the source
    connector; with the source down, whatever else exists is removed and the rest is listed (exit 5).
    """
    source, directory = None, default_specs_dir() if specs_dir is None else Path(specs_dir).resolve()
    try:
        specs = load_specs(directory)
        if pipeline in specs.pipelines:
            source = specs.connection(specs.pipelines[pipeline].spec.source)
    except SpecErrors as exc:
        click.echo(
            f"note: the specs could not be read ({str(exc).splitlines()[0]}); tearing down by name", err=True
        )
    stack = load_stack_settings()
    try:
        done = teardown_pipeline(pipeline, connect_resource(), click.echo, source=source, specs_dir=directory,
                                 delete_topics=delete_topics, kafka_bootstrap=stack.kafka_bootstrap)  # fmt: skip
    except TeardownIncomplete as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(5)
    if not done:
        click.echo(f"pipeline {pipeline}: nothing deployed")


@click.command("status")
@click.argument("pipeline", required=False)
@specs_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per pipeline.")
def status(pipeline: str | None, specs_dir: str | None, as_json: bool) -> None:
    """Connector and task states, lag and slot WAL of one or every pipeline; a failed task is
    explained, a stalled sink said (exit 4 when a task failed or a sink is stalled)."""
    specs = read_specs(specs_dir)
    if pipeline is not None:
        require_pipeline(specs, pipeline)
    names = [pipeline] if pipeline else sorted(specs.pipelines)
    connect = connect_resource()
    try:
        overview = connect.overview()
    except Exception as exc:  # noqa: BLE001 - said plainly: states unknown, metrics still shown
        overview, connect_error = None, f"{type(exc).__name__}: {exc}"
    else:
        connect_error = None
    try:
        store = MetricsStore()
    except Exception:  # noqa: BLE001 - no metrics collected yet (or the store is elsewhere)
        store = None
    try:
        intents = controls(names)
    except Exception as exc:  # noqa: BLE001 - the state is then derived without the recorded intents
        intents, intents_error = {}, f"{type(exc).__name__}: {exc}"
    else:
        intents_error = None
    report, failed = [], False
    for name in names:
        pn = PipelineNames(name)
        latest = store.latest(name) if store else {}
        row: dict = {"pipeline": name, "connectors": {}, "metrics": {}}
        for (subject, metric), (ts, value) in latest.items():
            if subject in ("sink", "source", "pipeline"):
                row["metrics"][f"{subject}.{metric}"] = value
                row["metrics_at"] = max(row.get("metrics_at", 0), ts)
        if not specs.pipelines[name].spec.streams:
            row["connectors"] = "none (full_load_only)"
        to_s3 = not target_traits(
            specs.connection(specs.pipelines[name].spec.target).kind.value
        ).sink_connector
        connectors = (pn.source_connector,) if to_s3 else (pn.source_connector, pn.sink_connector)
        for cname in connectors if specs.pipelines[name].spec.streams else ():
            if overview is None:
                row["connectors"][cname] = {"state": "UNKNOWN", "error": connect_error}
                continue
            entry = overview.get(cname)
            if entry is None:
                row["connectors"][cname] = {"state": "NOT DEPLOYED"}
                continue
            st = entry["status"]
            item = {"state": st["connector"]["state"], "tasks": [t["state"] for t in st.get("tasks", [])]}
            trace = first_failed_trace(st)
            if trace is not None:
                failed = True
                item["error"] = innermost_cause(trace)
                loaded = specs.pipelines[name]
                tables = pipeline_tables(specs, name)
                the_plan = build_plan(specs, loaded.spec, tables, load_stack_settings().kafka_bootstrap)
                item["explanation"] = explain(the_plan, trace, specs.directory, connect).message
            row["connectors"][cname] = item
        if to_s3 and specs.pipelines[name].spec.streams:
            row["s3_writer"] = _s3_writer_state(specs, name)
        deployed_at = last_deployed_at(name)
        reading = derive_state(
            streams=specs.pipelines[name].spec.streams,
            deployed=deployed_at is not None,
            control=intents.get(name),
            statuses=None if overview is None else {
                c: overview[c].get("status") if c in overview else None for c in connectors_of(specs, name)
            },
            now=time.time(),
            last_deployed_at=deployed_at,
            connect_error=connect_error,
        )  # fmt: skip
        row["state"], row["state_reason"] = reading.state.value, reading.reason
        if intents_error:
            row["state_reason"] += f" (pause/stop intents unreadable: {intents_error})"
        control = intents.get(name)
        stall = sink_stall(latest, time.time(), control.changed_at if control else None)
        row["sink_stalled"] = stall is not None and reading.state is PipelineState.RUNNING
        if row["sink_stalled"]:
            failed = True
            row["stall"] = stall.describe(time.time())

        report.append(row)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for row in report:
            m = row["metrics"]
            figures = []
            if "sink.lag_messages" in m:
                figures.append(f"lag {int(m['sink.lag_messages']):,} messages")
            if "pipeline.latency_seconds" in m:
                figures.append(f"latency {m['pipeline.latency_seconds']:.2f} s "
                               f"(last heartbeat {m['pipeline.heartbeat_age_seconds']:.0f} s old)")  # fmt: skip
            if "source.source_ms_behind" in m and m["source.source_ms_behind"] >= 0:
                figures.append(f"source read {m['source.source_ms_behind'] / 1000:.1f} s behind its log")
            if m.get("source.binlog_position_available") == 0:
                figures.append("BINLOG POSITION PURGED (re-load needed)")
            elif "source.binlog_behind_bytes" in m:
                figures.append(f"binlog {m['source.binlog_behind_bytes'] / 2**20:,.1f} MiB unread")
            if m.get("sink.dlq_messages"):
                figures.append(f"{int(m['sink.dlq_messages']):,} messages in the dead-letter topic")
            if m.get("sink.failed_tasks"):
                figures.append(f"{int(m['sink.failed_tasks'])} sink task(s) failed")
            if "source.slot_retained_wal_bytes" in m:
                figures.append(f"slot retains {m['source.slot_retained_wal_bytes'] / 2**20:,.0f} MiB WAL")
                if m.get("source.slot_wal_status_ok") == 0:
                    figures.append("SLOT WAL AT RISK")
            if "metrics_at" in row:
                figures.append(f"measured {time.time() - row['metrics_at']:.0f} s ago")
            click.echo(f"pipeline {row['pipeline']}: {'; '.join(figures) or 'no metrics collected yet'}")
            click.echo(
                f"  state: {row['state']}" + (f" ({row['state_reason']})" if row["state_reason"] else "")
            )
            if row["sink_stalled"]:
                click.echo(f"  SINK STALLED: {row['stall']}")
            if isinstance(row["connectors"], str):
                click.echo(f"  connectors: {row['connectors']}")
                continue
            for cname, item in row["connectors"].items():
                tasks = ", ".join(f"task {i} {t}" for i, t in enumerate(item.get("tasks", []))) or "no tasks"
                click.echo(f"  {cname}: {item['state']} ({tasks})")
                if "explanation" in item:
                    click.echo("    " + item["explanation"])
                elif "error" in item:
                    click.echo("    " + str(item["error"]))
            if "s3_writer" in row:
                click.echo(f"  S3 writer: {row['s3_writer']['summary']}")
    if failed:
        sys.exit(4)


def _s3_writer_state(specs, name: str) -> dict:
    """What the S3 writer (the cdc_s3_writer sensor) has to work from, in words: the tables the last run
    deployed, and how many captured changes wait for it."""
    deployed = sorted(deployed_tables(name))
    if not deployed:
        return {"deployed_tables": [], "summary": "nothing deployed yet: materialize the pipeline; the writer "
                "(sensor cdc_s3_writer, daemon running) starts with its next flush"}  # fmt: skip
    source = specs.connection(specs.pipelines[name].spec.source)
    topics = {q: table_topic(source, PipelineNames(name), q) for q in deployed}
    try:
        waiting = waiting_changes(load_stack_settings().kafka_bootstrap, name, list(topics.values()))
    except Exception as exc:  # noqa: BLE001 - said plainly; the tables are still listed
        return {"deployed_tables": deployed, "summary": f"{len(deployed)} table(s) deployed; changes waiting "
                f"unknown ({type(exc).__name__}: {exc})"}  # fmt: skip
    total = sum(waiting.values())
    return {"deployed_tables": deployed, "waiting_changes": {q: waiting[t] for q, t in topics.items()},
            "summary": f"{len(deployed)} table(s) deployed; {total:,} captured change(s) not written yet"}  # fmt: skip


@click.command("orphans")
@specs_option
def orphans(specs_dir: str | None) -> None:
    """List connectors on the Connect cluster that no pipeline spec owns (exit 3 when there are any)."""
    specs = read_specs(specs_dir)
    owned = set()
    for name in specs.pipelines:
        names = PipelineNames(name)
        owned |= {names.source_connector, names.sink_connector}
    found = sorted(set(connect_resource().list_connectors()) - owned)
    for name in found:
        click.echo(f"orphan connector {name}: no pipeline spec owns it (delete it with the Connect REST API "
                   "or restore its spec)")  # fmt: skip
    if found:
        sys.exit(3)
    click.echo("no orphan connectors")


def _act(action: str, pipeline: str, specs_dir: str | None, **options) -> None:
    specs = read_specs(specs_dir)
    require_pipeline(specs, pipeline)
    if not specs.pipelines[pipeline].spec.streams:
        raise UserError(f"pipeline {pipeline!r} is full_load_only: it has no connectors to {action}")
    connectors = connectors_of(specs, pipeline)
    try:
        if action == "restart":
            result = lifecycle.restart(pipeline, connectors, connect_resource(), **options)
        else:
            result = getattr(lifecycle, action)(pipeline, connectors, connect_resource(), **options)
    except lifecycle.PipelineHeld as exc:
        raise UserError(str(exc)) from None
    click.echo(result.summary())


reason_option = click.option(
    "--reason", default=None, help="Why (recorded with the intent and in the audit log)."
)


@click.command("pause")
@click.argument("pipeline")
@specs_option
@reason_option
def pause(pipeline: str, specs_dir: str | None, reason: str | None) -> None:
    """Pause a pipeline on purpose: its connectors pause with their offsets and the slot's position
    kept; the health sensor and materializations leave it paused until `resume`."""
    _act("pause", pipeline, specs_dir, reason=reason)


@click.command("stop")
@click.argument("pipeline")
@specs_option
@reason_option
def stop(pipeline: str, specs_dir: str | None, reason: str | None) -> None:
    """Stop a pipeline on purpose: its connectors' tasks shut down (config and offsets kept)."""
    _act("stop", pipeline, specs_dir, reason=reason)


@click.command("resume")
@click.argument("pipeline")
@specs_option
@reason_option
def resume(pipeline: str, specs_dir: str | None, reason: str | None) -> None:
    """Resume a paused or stopped pipeline from where it stopped: no gap, no duplicate."""
    _act("resume", pipeline, specs_dir, reason=reason)


@click.command("restart")
@click.argument("pipeline")
@specs_option
@click.option("--all", "all_tasks", is_flag=True, help="Restart every task, not only the failed ones.")
def restart(pipeline: str, specs_dir: str | None, all_tasks: bool) -> None:
    """Restart a pipeline's failed connectors and tasks (--all: every one)."""
    _act("restart", pipeline, specs_dir, all_tasks=all_tasks)
