"""The sensor that keeps pipelines running: it reads every connector of its pipelines from Kafka
Connect in one request, reports health on the connector assets, and restarts failed tasks with
bounded backoff.

Each tick returns asset observations (state, worker, restarts, last error) and
``connector_running`` check evaluations on the connector assets; the restart history lives in the
cursor, so a restarted daemon keeps counting where it left off. The one run it launches: when a
connector runs again after a failure (or after Connect was unreachable), the pipeline's row counts
and checksums, so a recovery is followed by proof that nothing was lost or applied twice.
"""

import re
import time
from dataclasses import dataclass, field

import dagster as dg

from cdc_platform.audit import acting_as
from cdc_platform.connectors.traces import innermost_cause
from cdc_platform.dagster.check_runs import QUALITY_CHECKS_JOB, checks_request
from cdc_platform.dagster.health_memory import (
    REPORT_EVERY_SECONDS,
    TABLES_MEMORY,
    WORKER_MEMORY,
    ConnectorMemory,
    dump_cursor,
    load_cursor,
)
from cdc_platform.dagster.table_health import (
    TABLE_CHECK_NAME,
    WatchedTables,
    stream_readings,
    table_check_specs,
    table_events,
)
from cdc_platform.health.glossary import legend
from cdc_platform.health.metrics_store import MetricsStore, Sample
from cdc_platform.health.recovery import Decision, RecoveryPolicy, TaskHistory, decide
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.pipeline.lifecycle import Control, controls
from cdc_platform.pipeline.state import PipelineState, StateReading, derive_state
from cdc_platform.secrets import mask_secret_values

CHECK_NAME = "connector_running"
#: config keys the platform adds at run time (recorded replica identity): never drift
RUN_TIME_KEYS = re.compile(r"^cdc\.platform\.")


@dataclass(frozen=True)
class WatchedConnector:
    """One connector the sensor answers for, and the asset that shows its health."""

    pipeline: str
    role: str  # source | sink
    name: str
    asset_key: dg.AssetKey
    #: the config the pipeline's plan deploys (from the stored catalog); None: no drift check
    expected_config: dict[str, str] | None = None


@dataclass(frozen=True)
class HealthSettings:
    interval_seconds: int = 30
    #: PAUSED, UNASSIGNED or RESTARTING longer than this is a WARN
    grace_seconds: float = 120.0
    policy: RecoveryPolicy = field(default_factory=RecoveryPolicy)


def mask(text: str | None, limit: int = 1500) -> str | None:
    """A trace excerpt safe to store: anything that looks like a secret value is masked."""
    if text is None:
        return None
    return mask_secret_values(text)[:limit]


def cause_chain(trace: str) -> str:
    """The trace's first line and every ``Caused by`` line: the story without the stack frames."""
    lines = trace.strip().splitlines()
    return "\n".join(
        [lines[0], *(line.strip() for line in lines[1:] if line.strip().startswith("Caused by:"))]
    )


def check_specs(watched: list[WatchedConnector]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=w.asset_key,
            description=f"Kafka Connect runs connector {w.name} and all its tasks. Evaluated by the "
            "cdc_connect_health sensor every interval (failed tasks are restarted with backoff), or on demand.",
        )
        for w in watched
    ]


def drift(live: dict[str, str] | None, expected: dict[str, str] | None) -> dict[str, dict[str, str | None]]:
    """Keys whose live value differs from what the plan deploys (a hand edit, or a stale catalog)."""
    if live is None or expected is None:
        return {}
    keys = {k for k in set(live) | set(expected) if not RUN_TIME_KEYS.match(k) and k != "name"}
    return {
        k: {"live": live.get(k), "planned": expected.get(k)}
        for k in sorted(keys)
        if live.get(k) != expected.get(k)
    }


@dataclass(frozen=True)
class Assessment:
    """One connector's health at one tick."""

    watched: WatchedConnector
    passed: bool
    severity: dg.AssetCheckSeverity
    summary: str
    metadata: dict
    restart: bool = False
    #: running again after a failure: the pipeline's consistency checks are due
    recovered: bool = False


def assess(
    watched: WatchedConnector,
    entry: dict | None,
    memory: ConnectorMemory,
    now: float,
    settings: HealthSettings,
    connect_error: str | None = None,
) -> Assessment:
    """Health of one connector from its ``/connectors?expand=status&expand=info`` entry."""
    base = {"connector": watched.name, "pipeline": watched.pipeline}
    if connect_error is not None:
        memory.failed = True
        return Assessment(watched, False, dg.AssetCheckSeverity.ERROR, f"Kafka Connect unreachable: {connect_error}",
                          {**base, "state": "UNKNOWN", "error": connect_error})  # fmt: skip
    if entry is None:
        return Assessment(watched, False, dg.AssetCheckSeverity.ERROR,
                          f"connector {watched.name} is not on the worker; materialize {watched.asset_key.to_user_string()} "
                          "to deploy it again", {**base, "state": "MISSING"})  # fmt: skip
    status = entry.get("status", {})
    connector_state = status.get("connector", {}).get("state", "UNKNOWN")
    tasks = {str(t.get("id")): t for t in status.get("tasks", [])}
    units = {"connector": status.get("connector", {}), **tasks}
    decisions: dict[str, Decision] = {}
    for unit_id, unit in units.items():
        history = memory.tasks.setdefault(unit_id, TaskHistory())
        decisions[unit_id] = decide(
            history, unit.get("state", "UNKNOWN"), unit.get("trace"), now, settings.policy
        )
    for gone in set(memory.tasks) - set(units):
        del memory.tasks[gone]
    failed = {k: d for k, d in decisions.items() if units[k].get("state") == "FAILED"}
    states = {k: u.get("state", "UNKNOWN") for k, u in units.items()}
    trace = next((units[k].get("trace") for k in failed), None)
    failed_tasks = sum(1 for state in states.values() if state == "FAILED")
    metadata = {
        **base,
        # the connector's own state says RUNNING while a task has FAILED: "state" is the worse of the
        # two, so the asset's overview never reads RUNNING during an outage
        "state": "FAILED" if failed_tasks else connector_state,
        "connector_state": connector_state,
        "task_states": dg.MetadataValue.json(states),
        "worker": status.get("connector", {}).get("worker_id", ""),
        "restarts": memory.restarts,
        "failed_tasks": failed_tasks,
    }
    if trace:
        metadata["last_error"] = dg.MetadataValue.text(mask(innermost_cause(trace)) or "")
        metadata["trace"] = dg.MetadataValue.text(mask(cause_chain(trace)) or "")
    live_drift = drift((entry.get("info") or {}).get("config"), watched.expected_config)
    if live_drift:
        metadata["config_drift"] = dg.MetadataValue.json(live_drift)

    if failed:
        memory.failed = True
        memory.unhealthy_since = now if memory.unhealthy_since is None else memory.unhealthy_since
        restart = any(d.action == "restart" for d in failed.values())
        worst = next((d for d in failed.values() if d.action in ("gave_up", "not_retryable")), None)
        decision = worst or next(iter(failed.values()))
        metadata["recovery"] = decision.action if not restart else "restarting"
        return Assessment(
            watched, False, dg.AssetCheckSeverity.ERROR, f"FAILED: {decision.reason}", metadata, restart
        )
    not_running = {k: s for k, s in states.items() if s != "RUNNING"}
    if not not_running and tasks:
        memory.unhealthy_since = None
        recovered, memory.failed = memory.failed, False
        if live_drift:
            return Assessment(watched, False, dg.AssetCheckSeverity.WARN,
                              f"RUNNING, but its config differs from the plan in {len(live_drift)} key(s): "
                              f"{', '.join(live_drift)}; re-materialize to apply the plan", metadata,
                              recovered=recovered)  # fmt: skip
        return Assessment(
            watched, True, dg.AssetCheckSeverity.ERROR, "RUNNING", metadata, recovered=recovered
        )
    memory.unhealthy_since = now if memory.unhealthy_since is None else memory.unhealthy_since
    waited = now - memory.unhealthy_since
    what = ", ".join(f"{k}: {s}" for k, s in sorted(not_running.items())) or "no tasks assigned"
    if waited < settings.grace_seconds:
        return Assessment(watched, True, dg.AssetCheckSeverity.WARN,
                          f"settling ({what}) for {waited:.0f} s", metadata)  # fmt: skip
    return Assessment(
        watched, False, dg.AssetCheckSeverity.WARN, f"not running for {waited:.0f} s ({what})", metadata
    )


def assess_held(
    watched: WatchedConnector, entry: dict | None, memory: ConnectorMemory, control: Control
) -> Assessment:
    """A connector of a pipeline paused or stopped on purpose: reported as it is, never restarted or
    resumed, and no failure (the pause is the operator's, not a fault). Its restart history starts
    afresh, so a resume is not judged by failures from before the pause."""
    memory.tasks.clear()
    memory.unhealthy_since, memory.failed = None, False
    status = (entry or {}).get("status", {})
    states = {"connector": status.get("connector", {}).get("state", "MISSING" if entry is None else "UNKNOWN"),
              **{str(t.get("id")): t.get("state", "UNKNOWN") for t in status.get("tasks", [])}}  # fmt: skip
    metadata = {"connector": watched.name, "pipeline": watched.pipeline, "state": states["connector"],
                "task_states": dg.MetadataValue.json(states), "intent": control.intent.value,
                "intent_by": control.changed_by, "restarts": memory.restarts, "failed_tasks": 0}  # fmt: skip
    summary = (f"{states['connector']}: {control.intent.value} on purpose ({control.describe()}); the sensor "
               f"neither restarts nor resumes it (`cdc-platform resume {watched.pipeline}`)")  # fmt: skip
    return Assessment(watched, True, dg.AssetCheckSeverity.WARN, summary, metadata)


def evaluate(
    watched: list[WatchedConnector],
    connect: KafkaConnectResource,
    memory: dict[str, ConnectorMemory],
    now: float,
    settings: HealthSettings,
    log=None,
    restart: bool = True,
    seen: set[str] | None = None,
    unreachable: list[str] | None = None,
    held: dict[str, Control] | None = None,
    statuses: dict[str, dict | None] | None = None,
) -> list[Assessment]:
    """One pass: read the worker once, assess every connector, restart the ones due (``restart``).
    ``seen`` receives the names of every connector on the worker; ``unreachable`` the error when the
    worker could not be read; ``statuses`` each watched connector's status (None: not on the worker).
    Connectors of ``held`` pipelines (paused or stopped on purpose) are reported, never restarted."""
    try:
        overview = connect.overview()
        error = None
        if seen is not None:
            seen.update(overview)
    except Exception as exc:  # noqa: BLE001 - Connect down is a failed check on every connector, not a crash
        overview, error = {}, f"{type(exc).__name__}: {exc}"
        if unreachable is not None:
            unreachable.append(error)
        if log:
            log.warning(f"Kafka Connect could not be read: {error}")
    results = []
    for w in watched:
        mem = memory.setdefault(w.name, ConnectorMemory())
        if statuses is not None and error is None:
            statuses[w.name] = (overview.get(w.name) or {}).get("status") if w.name in overview else None
        if held and w.pipeline in held and error is None:
            results.append(assess_held(w, overview.get(w.name), mem, held[w.pipeline]))
            continue
        result = assess(w, overview.get(w.name), mem, now, settings, error)
        if result.restart and restart:
            try:
                connect.restart(w.name, only_failed=True, include_tasks=True)
                mem.restarts += 1
                result.metadata["restarts"] = mem.restarts
                if log:
                    log.info(f"restarted the failed tasks of {w.name}: {result.summary}")
            except Exception as exc:  # noqa: BLE001 - reported on the check; the next tick tries again
                result.metadata["restart_error"] = f"{type(exc).__name__}: {exc}"
                if log:
                    log.warning(f"restarting {w.name} failed: {exc}")
        results.append(result)
    return results


def recovery_requests(results: list[Assessment], checks: dict[str, list[dg.AssetCheckKey]], now: float,
                      memory: dict[str, ConnectorMemory] | None = None) -> list[dg.RunRequest]:  # fmt: skip
    """One run per recovered pipeline, its tables' counts and checksums (the seed's consistency
    checks after recovery), once all its connectors run again: a recovery of one connector while
    the other is still down waits (in ``memory``) for the next tick."""
    recovered: dict[str, list[str]] = {}
    for r in results:
        if r.recovered and checks.get(r.watched.pipeline):
            recovered.setdefault(r.watched.pipeline, []).append(r.watched.name)
    requests = []
    for pipeline, names in sorted(recovered.items()):
        if not all(r.passed for r in results if r.watched.pipeline == pipeline):
            for name in names:
                if memory is not None and name in memory:
                    memory[name].failed = True
            continue
        requests.append(checks_request(checks[pipeline], {"cdc/recovered": ",".join(names), "cdc/pipeline": pipeline},
                                       run_key=f"recovery-{pipeline}-{now:.0f}"))  # fmt: skip
    return requests


def asset_events(
    results: list[Assessment], memory: dict[str, ConnectorMemory], now: float, reported: list | None = None
) -> list:
    """Check evaluations and observations for connectors whose health changed, or every few minutes.
    ``reported`` receives the assessments that were reported."""
    events: list = []
    for r in results:
        mem = memory[r.watched.name]
        parts = (
            r.passed,
            r.severity.value,
            r.summary.split(":")[0],
            r.metadata.get("recovery"),
            r.metadata.get("restarts"),
            r.metadata.get("pipeline_state"),
        )
        signature = "|".join(str(p) for p in parts)
        if signature == mem.signature and now - mem.reported_at < REPORT_EVERY_SECONDS:
            continue
        mem.signature, mem.reported_at = signature, now
        metadata = {**r.metadata, "summary": r.summary}
        events.append(dg.AssetCheckEvaluation(asset_key=r.watched.asset_key, check_name=CHECK_NAME, passed=r.passed,
                                              severity=r.severity, metadata=metadata, description=r.summary))  # fmt: skip
        # the observation plots the state over time (``state_code``) and reads like the check
        events.append(dg.AssetObservation(asset_key=r.watched.asset_key, metadata=metadata,
                                          description=f"{r.summary}\n\n{legend(['state_code'])}"))  # fmt: skip
        if reported is not None:
            reported.append(r)
    return events


def health_samples(reported: list[Assessment], now: float) -> list[Sample]:
    """Failures and restarts as time series (per connector, written when reported), so alert rules and
    `cdc-platform status` see them beside lag and latency."""
    samples = []
    for r in reported:
        w = r.watched
        if "intent" in r.metadata:  # paused or stopped on purpose: not a failure, no failure figures
            continue
        if r.metadata.get("state") == "UNKNOWN":
            # Connect unreachable: the connector is not known to run; its tasks are not known at all
            samples.append(Sample(now, w.pipeline, w.role, "connector_running", 0.0))
            continue
        samples += [
            Sample(now, w.pipeline, w.role, "connector_running", float(r.passed)),
            Sample(now, w.pipeline, w.role, "failed_tasks", float(r.metadata.get("failed_tasks", 0))),
            Sample(now, w.pipeline, w.role, "restarts", float(r.metadata.get("restarts", 0))),
            Sample(now, w.pipeline, w.role, "recovery_gave_up",
                   float(r.metadata.get("recovery") in ("gave_up", "not_retryable"))),
        ]  # fmt: skip
    return samples


def worker_event(
    worker_key: dg.AssetKey,
    on_worker: set[str],
    owned: set[str],
    reachable: bool,
    memory: ConnectorMemory,
    now: float,
) -> dg.AssetObservation | None:
    """The worker asset's observation: what runs there, and which connectors no pipeline spec owns
    (the `cdc-platform orphans` list, visible in the UI); written on change or every few minutes."""
    orphans = sorted(on_worker - owned)
    signature = f"{reachable}|{','.join(orphans)}|{len(on_worker)}"
    if signature == memory.signature and now - memory.reported_at < REPORT_EVERY_SECONDS:
        return None
    memory.signature, memory.reported_at = signature, now
    metadata: dict = {"reachable": float(reachable)}
    if reachable:
        metadata.update({"connectors": len(on_worker), "orphan_count": len(orphans),
                         "orphans": dg.MetadataValue.json(orphans)})  # fmt: skip
    return dg.AssetObservation(asset_key=worker_key, metadata=metadata)


def build_connect_health_sensor(
    name: str,
    watched: list[WatchedConnector],
    settings: HealthSettings,
    worker_key: dg.AssetKey | None = None,
    recovery_checks: dict[str, list[dg.AssetCheckKey]] | None = None,
    tables: list[WatchedTables] | None = None,
) -> dg.SensorDefinition:
    """``worker_key``: this sensor answers for every pipeline of its specs, so a connector on the
    worker that none of them owns is reported, on that asset and in the tick's log."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=settings.interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Polls Kafka Connect for every connector of the pipelines, reports connector_running on the "
        "connector assets, and restarts failed tasks with bounded backoff. After a recovery it runs the "
        "pipeline's row-count and checksum checks.",
        job_name=QUALITY_CHECKS_JOB if any((recovery_checks or {}).values()) else None,
    )
    def _sensor(context: dg.SensorEvaluationContext, kafka_connect: KafkaConnectResource) -> dg.SensorResult:
        now = time.time()
        memory = load_cursor(context.cursor)
        deployed = _ever_materialized(context.instance, [w.asset_key for w in watched])
        live = [w for w in watched if w.asset_key in deployed]
        on_worker: set[str] = set()
        unreachable: list[str] = []
        statuses: dict[str, dict | None] = {}
        intents = _intents(context, {w.pipeline for w in live})
        held = {p: c for p, c in intents.items() if c.holds_still}
        with acting_as(f"sensor {name}"):
            results = evaluate(live, kafka_connect, memory, now, settings, context.log, seen=on_worker,
                               unreachable=unreachable, held=held, statuses=statuses)  # fmt: skip
        states = pipeline_states(
            live, statuses, intents, deployed, now, unreachable[0] if unreachable else None
        )
        for r in results:
            reading = states[r.watched.pipeline]
            r.metadata.update({"pipeline_state": reading.state.value, "pipeline_state_reason": reading.reason,
                               "state_code": reading.code})  # fmt: skip
        owned = {w.name for w in watched}
        orphans = sorted(on_worker - owned)
        if worker_key is not None and orphans:
            context.log.warning(f"connectors on the worker that no pipeline spec owns: {', '.join(orphans)} "
                                "(see `cdc-platform orphans`)")  # fmt: skip
        kept = {w.name for w in live} | {TABLES_MEMORY + w.pipeline for w in live} | {WORKER_MEMORY}
        for stale in set(memory) - kept:
            del memory[stale]
        reported: list[Assessment] = []
        events = asset_events(results, memory, now, reported)
        if tables:
            streams = stream_readings(context, set(states), intents, now)
            events += table_events(tables, states, streams, memory, now)
        if worker_key is not None:
            worker = worker_event(worker_key, on_worker, owned, not unreachable,
                                  memory.setdefault(WORKER_MEMORY, ConnectorMemory()), now)  # fmt: skip
            if worker is not None:
                events.append(worker)
        _store(context, health_samples(reported, now) + state_samples(states, now))
        held_now = [f"{p} {states[p]}" for p in sorted(held) if p in states]
        if held_now:
            context.log.info("held on purpose, left alone: " + "; ".join(held_now))
        unhealthy = [f"{r.watched.name}: {r.summary}" for r in results if not r.passed]
        if unhealthy:
            context.log.warning("unhealthy connectors:\n" + "\n".join(unhealthy))
        requests = recovery_requests(results, recovery_checks or {}, now, memory)
        for request in requests:
            context.log.info(f"recovered; running the consistency checks: {request.tags['cdc/recovered']}")
        seen = tick_summary(states, results, orphans if worker_key is not None else [])
        if requests:
            context.log.info(seen)
            return dg.SensorResult(asset_events=events, cursor=dump_cursor(memory), run_requests=requests)
        # no run to launch: the tick's line in the UI says what it saw instead of "empty result"
        return dg.SensorResult(asset_events=events, cursor=dump_cursor(memory), skip_reason=seen)

    return _sensor


def tick_summary(states: dict[str, StateReading], results: list[Assessment], orphans: list[str]) -> str:
    """What one tick saw, in a line per pipeline: its state, and each unhealthy connector's verdict
    (e.g. "sink: FAILED: restart 1 of 5: ...", "restart 2 of 5 due in 30 s")."""
    if not states:
        return "no pipeline materialized yet: nothing to watch"
    lines = []
    for pipeline, reading in sorted(states.items()):
        line = f"{pipeline} {reading.state.value}"
        troubles = [
            f"{r.watched.role}: {r.summary}"
            for r in results
            if r.watched.pipeline == pipeline and not r.passed
        ]
        if troubles:
            line += " - " + "; ".join(t[:300] for t in troubles)
        elif reading.reason:
            line += f" ({reading.reason[:300]})"
        lines.append(line)
    if orphans:
        lines.append(f"{len(orphans)} connector(s) no spec owns: {', '.join(orphans[:10])}")
    healthy = sum(1 for r in states.values() if r.state is PipelineState.RUNNING)
    return f"{healthy} of {len(states)} pipeline(s) RUNNING. " + " | ".join(lines)


def _store(context: dg.SensorEvaluationContext, samples: list[Sample]) -> None:
    if not samples:
        return
    try:
        MetricsStore().record(samples)
    except Exception as exc:  # noqa: BLE001 - the health report must not depend on the time series
        context.log.warning(f"could not store {len(samples)} health figures: {type(exc).__name__}: {exc}")


def _ever_materialized(instance: dg.DagsterInstance, keys: list[dg.AssetKey]) -> dict[dg.AssetKey, float]:
    """Connectors never deployed are not 'missing': a pipeline nobody materialized yet is not down.
    Each deployed connector asset -> when it was last materialized."""
    records = instance.get_asset_records(keys)
    return {
        r.asset_entry.asset_key: r.asset_entry.last_materialization_record.timestamp
        for r in records
        if r.asset_entry.last_materialization_record is not None
    }


def _intents(context: dg.SensorEvaluationContext, pipelines: set[str]) -> dict[str, Control]:
    """The recorded intents; when the platform database cannot be read, none (the sensor then keeps
    pipelines running as it did before pauses existed) and a warning."""
    try:
        return controls(pipelines)
    except Exception as exc:  # noqa: BLE001 - the health sensor must not stop on the platform database
        context.log.warning(
            f"could not read the pipelines' intents (pause/stop): {type(exc).__name__}: {exc}"
        )
        return {}


def pipeline_states(live: list[WatchedConnector], statuses: dict[str, dict | None], intents: dict[str, Control],
                    deployed: dict[dg.AssetKey, float], now: float, connect_error: str | None) -> dict[str, StateReading]:  # fmt: skip
    """Each watched pipeline's derived state, from this tick's one read of the worker."""
    by_pipeline: dict[str, list[WatchedConnector]] = {}
    for w in live:
        by_pipeline.setdefault(w.pipeline, []).append(w)
    return {
        pipeline: derive_state(
            streams=True,
            deployed=True,
            control=intents.get(pipeline),
            statuses=None if connect_error else {w.name: statuses.get(w.name) for w in ws},
            now=now,
            last_deployed_at=max(deployed.get(w.asset_key, 0.0) for w in ws) or None,
            connect_error=connect_error,
        )
        for pipeline, ws in by_pipeline.items()
    }


def state_samples(states: dict[str, StateReading], now: float) -> list[Sample]:
    """The state as a time series (``state_code``: 0 RUNNING ... 5 ERROR), one figure a tick."""
    return [Sample(now, pipeline, "pipeline", "state_code", float(r.code)) for pipeline, r in states.items()]


def build_connector_checks(
    pipeline: str, watched: list[WatchedConnector], tables: WatchedTables | None = None
) -> dg.AssetChecksDefinition:
    """``connector_running`` and the tables' ``pipeline_running`` on demand (from the UI or a job): the
    sensor's judgement, without restarts."""
    specs = check_specs(watched) + (table_check_specs([tables]) if tables else [])

    @dg.multi_asset_check(specs=specs, name=f"{pipeline}_connector_running", can_subset=True)
    def _checks(context: dg.AssetCheckExecutionContext, kafka_connect: KafkaConnectResource):
        selected = set(context.selected_asset_check_keys)
        now = time.time()
        intents = controls([pipeline]) if tables else {}
        held = {p: c for p, c in intents.items() if c.holds_still}
        statuses: dict[str, dict | None] = {}
        unreachable: list[str] = []
        results = evaluate(watched, kafka_connect, {}, now, HealthSettings(grace_seconds=0), context.log,
                           restart=False, held=held, statuses=statuses, unreachable=unreachable)  # fmt: skip
        for r in results:
            if dg.AssetCheckKey(r.watched.asset_key, CHECK_NAME) in selected:
                yield dg.AssetCheckResult(asset_key=r.watched.asset_key, check_name=CHECK_NAME, passed=r.passed,
                                          severity=r.severity, metadata={**r.metadata, "summary": r.summary},
                                          description=r.summary)  # fmt: skip
        if tables is None:
            return
        chosen = [k for k in tables.keys if dg.AssetCheckKey(k, TABLE_CHECK_NAME) in selected]
        if not chosen:
            return
        deployed = _ever_materialized(context.instance, [w.asset_key for w in watched])
        states = pipeline_states(watched, statuses, intents, deployed or {w.asset_key: now for w in watched}, now,
                                 unreachable[0] if unreachable else None)  # fmt: skip
        streams = stream_readings(context, {pipeline}, intents, now)
        for event in table_events([WatchedTables(pipeline, tuple(chosen), tables.freshness_seconds)], states,
                                  streams, {}, now):  # fmt: skip
            yield dg.AssetCheckResult(asset_key=event.asset_key, check_name=TABLE_CHECK_NAME, passed=event.passed,
                                      severity=event.severity, metadata=event.metadata,
                                      description=event.description)  # fmt: skip

    return _checks
