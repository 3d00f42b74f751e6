"""The health sensor's judgement and restart policy, on status payloads shaped like Kafka Connect's
``/connectors?expand=status&expand=info`` (built here: the real worker is exercised by the
integration tests; these cover the timing rules a worker cannot be made to follow on demand)."""

from __future__ import annotations

import dagster as dg

from cdc_platform.dagster.connect_health import (
    HealthSettings,
    WatchedConnector,
    assess,
    asset_events,
    drift,
    evaluate,
    mask,
    recovery_requests,
    worker_event,
)
from cdc_platform.dagster.health_memory import REPORT_EVERY_SECONDS, ConnectorMemory, dump_cursor, load_cursor
from cdc_platform.health.recovery import RecoveryPolicy, TaskHistory, decide, error_signature, not_retryable
from cdc_platform.kafka_connect import KafkaConnectResource

W = WatchedConnector(
    "p", "sink", "p-sink", dg.AssetKey(["p", "sink_connector"]), {"name": "p-sink", "batch.size": "10"}
)
TRACE = "org.apache.kafka.connect.errors.ConnectException: boom\n\tat x\nCaused by: org.postgresql.util.PSQLException: ERROR: blocked row 42"
POLICY = RecoveryPolicy(first_delay=30, factor=2, max_attempts=3, window=3600)


def entry(task_state: str = "RUNNING", trace: str | None = None, config: dict | None = None) -> dict:
    task = {"id": 0, "state": task_state, "worker_id": "w:1", **({"trace": trace} if trace else {})}
    return {"status": {"connector": {"state": "RUNNING", "worker_id": "w:1"}, "tasks": [task]},
            "info": {"config": config or {"name": "p-sink", "batch.size": "10"}}}  # fmt: skip


def test_backoff_doubles_then_gives_up_when_each_restart_fails_again_at_once():
    h, t0 = TaskHistory(), 1000.0
    assert decide(h, "FAILED", TRACE, t0, POLICY).action == "wait"  # first seen: wait 30 s
    assert decide(h, "FAILED", TRACE, t0 + 30, POLICY).action == "restart"
    assert decide(h, "FAILED", TRACE, t0 + 60, POLICY).action == "wait"  # next due 60 s after the restart
    assert decide(h, "FAILED", TRACE, t0 + 90, POLICY).action == "restart"
    assert decide(h, "FAILED", TRACE, t0 + 150, POLICY).action == "wait"
    assert decide(h, "FAILED", TRACE, t0 + 210, POLICY).action == "restart"
    gave_up = decide(h, "FAILED", TRACE, t0 + 1000, POLICY)
    assert gave_up.action == "gave_up" and "blocked row N" in gave_up.reason and h.gave_up
    assert "came back within 120 s of each of 3 restarts" in gave_up.reason
    # running again clears "gave up"; it ran long after the last restart, so its next failure is a
    # new incident with the whole budget
    assert decide(h, "RUNNING", None, t0 + 1100, POLICY).action == "running" and not h.gave_up
    assert decide(h, "FAILED", TRACE, t0 + 1200, POLICY).action == "wait" and h.attempts == []
    assert decide(h, "FAILED", TRACE, t0 + 1230, POLICY).action == "restart"


def test_a_target_restarted_often_for_maintenance_never_exhausts_the_budget():
    """Ten outages in an hour, each cured by one restart that then runs cleanly for minutes."""
    h, t = TaskHistory(), 1000.0
    for _ in range(10):
        assert decide(h, "FAILED", TRACE, t, POLICY).action == "wait"
        assert decide(h, "FAILED", TRACE, t + 30, POLICY).action == "restart"
        assert decide(h, "RUNNING", None, t + 60, POLICY).action == "running"
        t += 360  # the next outage, six minutes later
    assert not h.gave_up and len(h.attempts) == 1


def test_errors_a_restart_cannot_fix_are_not_retried():
    auth = (
        'Caused by: org.postgresql.util.PSQLException: FATAL: password authentication failed for user "cdc"'
    )
    assert "authentication" in not_retryable(auth)
    assert "max_event_bytes" in not_retryable("org.apache.kafka.common.errors.RecordTooLargeException: x")
    assert not_retryable(TRACE) is None
    h = TaskHistory()
    assert decide(h, "FAILED", auth, 0, POLICY).action == "not_retryable" and h.attempts == []


def test_error_signature_is_the_innermost_cause_with_numbers_blurred():
    assert error_signature(TRACE) == "org.postgresql.util.PSQLException: ERROR: blocked row N"
    assert error_signature(None) == "no trace"


def test_assess_running_failed_and_settling():
    settings = HealthSettings(grace_seconds=60, policy=POLICY)
    mem = ConnectorMemory()
    ok = assess(W, entry(), mem, 0, settings)
    assert ok.passed and ok.summary == "RUNNING" and ok.metadata["worker"] == "w:1"
    failed = assess(W, entry("FAILED", TRACE), mem, 10, settings)
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR and not failed.restart
    assert "blocked row" in failed.metadata["last_error"].value
    assert assess(W, entry("FAILED", TRACE), mem, 40, settings).restart
    paused = ConnectorMemory()
    assert assess(W, entry("PAUSED"), paused, 0, settings).passed  # within the grace period
    late = assess(W, entry("PAUSED"), paused, 61, settings)
    assert not late.passed and late.severity == dg.AssetCheckSeverity.WARN
    missing = assess(W, None, ConnectorMemory(), 0, settings)
    assert not missing.passed and "not on the worker" in missing.summary


def test_config_drift_is_a_warning_naming_the_keys():
    settings = HealthSettings(policy=POLICY)
    edited = assess(
        W,
        entry(config={"name": "p-sink", "batch.size": "99", "cdc.platform.x": "y"}),
        ConnectorMemory(),
        0,
        settings,
    )
    assert (
        not edited.passed and edited.severity == dg.AssetCheckSeverity.WARN and "batch.size" in edited.summary
    )
    assert drift({"a": "1", "cdc.platform.tables": "t"}, {"a": "1"}) == {}


def test_connect_down_fails_every_check_and_does_not_raise():
    unreachable = KafkaConnectResource(url="http://127.0.0.1:1", timeout_seconds=2, rebalance_retries=0)
    results = evaluate([W], unreachable, {}, 0, HealthSettings(policy=POLICY))
    assert len(results) == 1 and not results[0].passed and "Kafka Connect unreachable" in results[0].summary


def test_events_only_on_change_or_every_few_minutes_and_the_cursor_round_trips():
    settings = HealthSettings(policy=POLICY)
    memory = {W.name: ConnectorMemory()}
    first = [assess(W, entry(), memory[W.name], 0, settings)]
    assert len(asset_events(first, memory, 0)) == 2  # a check evaluation and an observation
    again = [assess(W, entry(), memory[W.name], 30, settings)]
    assert asset_events(again, memory, 30) == []
    assert len(asset_events(again, memory, 400)) == 2
    restored = load_cursor(dump_cursor(memory))
    assert restored[W.name].signature == memory[W.name].signature
    assert load_cursor("not json") == {}


def test_the_cursor_reads_as_utc_times_and_omits_what_is_not_set():
    """People read the cursor on the sensor's page: wall times, no epoch numbers, no empty fields.
    A cursor written before (epoch numbers, every field) still loads, so an upgrade forgets nothing."""
    failing = TaskHistory(failed_since=1796453049.35, attempts=[1796453079.0], error="boom")
    memory = {
        W.name: ConnectorMemory(
            reported_at=1796453049.35, restarts=1, tasks={"0": failing, "1": TaskHistory()}
        )
    }
    text = dump_cursor(memory)
    assert '"reported_at": "2026-12-05T06:44:09.350Z"' in text
    assert '"restarted_at": [\n' in text and "2026-12-05T06:44:39.000Z" in text
    assert '"1"' not in text and "gave_up" not in text and "unhealthy_since" not in text
    restored = load_cursor(text)[W.name]
    assert restored.tasks["0"] == failing and restored.restarts == 1 and restored.reported_at == 1796453049.35
    legacy = ('{"connectors": {"p-sink": {"signature": null, "reported_at": 1796453049.35, "unhealthy_since": null, '
              '"restarts": 2, "tasks": {"0": {"failed_since": 5.0, "attempts": [6.0], "error": null, '
              '"gave_up": true}}, "failed": true}}}')  # fmt: skip
    old = load_cursor(legacy)[W.name]
    assert old.restarts == 2 and old.failed and old.tasks["0"] == TaskHistory(5.0, [6.0], None, True)


def test_secrets_are_masked_in_traces():
    assert mask("url?password=hunter2&x=1 token: abc") == "url?password=******** token: ********"


def test_running_again_after_a_failure_requests_the_consistency_checks_once():
    """A first deploy settling into RUNNING is not a recovery; RUNNING after FAILED (or after Connect
    was unreachable) is, once, and survives the cursor."""
    settings = HealthSettings(policy=POLICY)
    keys = {"p": [dg.AssetCheckKey(dg.AssetKey(["t"]), "row_count_parity")]}
    mem = ConnectorMemory()
    assert not assess(W, entry("UNASSIGNED"), mem, 0, settings).recovered
    assert not assess(W, entry(), mem, 5, settings).recovered  # settled: no failure before
    assess(W, entry("FAILED", TRACE), mem, 10, settings)
    mem = load_cursor(dump_cursor({W.name: mem}))[W.name]  # a daemon restart in between
    back = assess(W, entry(), mem, 50, settings)
    assert back.recovered
    (request,) = recovery_requests([back], keys, 50)
    # the checks alone, in Dagster's asset job: an asset selection of None would materialize every asset
    assert request.job_name == "__ASSET_JOB" and request.asset_check_keys == keys["p"]
    assert request.asset_selection == []
    assert request.tags["cdc/recovered"] == "p-sink"
    assert not assess(W, entry(), mem, 60, settings).recovered  # once
    assess(W, None, mem, 70, settings, connect_error="ConnectError: refused")
    assert assess(W, entry(), mem, 80, settings).recovered
    assert recovery_requests([back], {"p": []}, 50) == []  # no tables: nothing to run
    # the source is back but the sink still fails: wait, keeping the recovery for the next tick
    source = WatchedConnector("p", "source", "p-source", dg.AssetKey(["p", "source_connector"]), None)
    memory = {"p-source": ConnectorMemory(failed=True), W.name: ConnectorMemory()}
    sink_down = assess(W, entry("FAILED", TRACE), memory[W.name], 90, settings)
    source_back = assess(source, entry(), memory["p-source"], 90, settings)
    assert source_back.recovered and recovery_requests([source_back, sink_down], keys, 90, memory) == []
    assert memory["p-source"].failed


def test_every_reader_of_a_task_trace_names_the_same_innermost_cause():
    """The state's reason, the check's last_error and the restart signature read one function."""
    from cdc_platform.connectors.traces import innermost_cause
    from cdc_platform.pipeline.state import derive_state

    assert innermost_cause(TRACE) == "org.postgresql.util.PSQLException: ERROR: blocked row 42"
    assert innermost_cause("  ") == innermost_cause(None) == "no trace"
    assert error_signature(TRACE) == "org.postgresql.util.PSQLException: ERROR: blocked row N"
    failed = {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "FAILED", "trace": TRACE}]}
    reading = derive_state(streams=True, deployed=True, control=None, statuses={"sink": failed}, now=0.0)
    assert reading.reason.endswith(": org.postgresql.util.PSQLException: ERROR: blocked row 42"), reading


def test_a_failed_task_makes_the_reported_state_failed_though_the_connector_runs():
    """Connect reports the connector RUNNING while its only task has FAILED; the asset must not."""
    memory = ConnectorMemory()
    failed = assess(W, entry("FAILED", TRACE), memory, 0, HealthSettings(policy=POLICY))
    assert failed.metadata["state"] == "FAILED" and failed.metadata["connector_state"] == "RUNNING"
    assert failed.metadata["failed_tasks"] == 1 and not failed.passed
    running = assess(W, entry(), ConnectorMemory(), 0, HealthSettings(policy=POLICY))
    assert running.metadata["state"] == running.metadata["connector_state"] == "RUNNING"


def test_the_worker_is_reported_on_change_or_every_few_minutes_not_every_tick():
    key, memory = dg.AssetKey("kafka_connect_worker"), ConnectorMemory()
    first = worker_event(key, {"p-sink", "stray"}, {"p-sink"}, True, memory, now=1000.0)
    assert first is not None and first.metadata["orphans"].value == ["stray"]
    assert worker_event(key, {"p-sink", "stray"}, {"p-sink"}, True, memory, now=1010.0) is None
    changed = worker_event(key, {"p-sink"}, {"p-sink"}, True, memory, now=1020.0)
    assert changed is not None and changed.metadata["orphan_count"].value == 0
    assert (
        worker_event(key, {"p-sink"}, {"p-sink"}, True, memory, now=1020.0 + REPORT_EVERY_SECONDS - 1) is None
    )
    assert (
        worker_event(key, {"p-sink"}, {"p-sink"}, True, memory, now=1020.0 + REPORT_EVERY_SECONDS) is not None
    )
    unreachable = worker_event(key, set(), {"p-sink"}, False, memory, now=1021.0 + REPORT_EVERY_SECONDS)
    assert unreachable is not None and set(unreachable.metadata) == {"reachable"}
    assert unreachable.metadata["reachable"].value == 0.0
