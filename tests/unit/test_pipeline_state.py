"""A pipeline's derived state for every combination the health sensor and `status` meet."""

from __future__ import annotations

import pytest

from cdc_platform.pipeline.lifecycle import Control, Intent
from cdc_platform.pipeline.state import STARTING_GRACE_SECONDS, PipelineState, derive_state

NOW = 1_000_000.0


def status(connector: str = "RUNNING", *tasks: str, trace: str | None = None) -> dict:
    return {
        "connector": {"state": connector},
        "tasks": [{"id": i, "state": s, **({"trace": trace} if s == "FAILED" and trace else {})}
                  for i, s in enumerate(tasks or ("RUNNING",))],
    }  # fmt: skip


def control(intent: Intent, at: float = NOW - 10) -> Control:
    return Control("p", intent, at, "ops@example (cli)", "maintenance window")


def state(statuses, *, control=None, deployed=True, streams=True, deployed_at=NOW - 3600, error=None):
    return derive_state(streams=streams, deployed=deployed, control=control, statuses=statuses, now=NOW,
                        last_deployed_at=deployed_at, connect_error=error)  # fmt: skip


def test_running_when_every_connector_and_task_runs():
    reading = state({"p-source": status(), "p-sink": status()})
    assert reading.state is PipelineState.RUNNING and reading.code == 0


def test_a_failed_task_is_an_error_naming_the_connector_task_and_innermost_cause():
    trace = (
        "org.apache.kafka.connect.errors.ConnectException: x\nCaused by: PSQLException: connection refused"
    )
    reading = state({"p-source": status(), "p-sink": status("RUNNING", "FAILED", trace=trace)})
    assert reading.state is PipelineState.ERROR
    assert reading.reason == "p-sink task 0 FAILED: PSQLException: connection refused"


def test_a_missing_connector_of_a_deployed_pipeline_is_an_error():
    reading = state({"p-source": status(), "p-sink": None})
    assert reading.state is PipelineState.ERROR and "p-sink not on the worker" in reading.reason


def test_never_deployed_and_full_load_only_are_stopped():
    assert state({"p-source": None, "p-sink": None}, deployed=False).state is PipelineState.STOPPED
    assert state({}, streams=False).reason == "full load only: nothing streams"


def test_connect_unreachable_is_an_error_with_the_cause():
    reading = state(None, error="ConnectError: refused")
    assert reading.state is PipelineState.ERROR and "refused" in reading.reason


def test_paused_on_purpose_says_by_whom_and_why_once_every_task_is_paused():
    both = {"p-source": status("PAUSED", "PAUSED"), "p-sink": status("PAUSED", "PAUSED")}
    reading = state(both, control=control(Intent.PAUSED))
    assert reading.state is PipelineState.PAUSED
    assert "paused by ops@example (cli)" in reading.reason and "maintenance window" in reading.reason


def test_a_pause_not_yet_carried_out_is_stopping():
    reading = state(
        {"p-source": status("PAUSED", "PAUSED"), "p-sink": status()}, control=control(Intent.PAUSED)
    )
    assert reading.state is PipelineState.STOPPING and reading.reason == "pausing: p-sink not PAUSED yet"


def test_stopped_on_purpose():
    stopped = {
        "p-source": {"connector": {"state": "STOPPED"}, "tasks": []},
        "p-sink": {"connector": {"state": "STOPPED"}, "tasks": []},
    }
    assert state(stopped, control=control(Intent.STOPPED)).state is PipelineState.STOPPED
    half = {**stopped, "p-sink": status()}
    assert state(half, control=control(Intent.STOPPED)).state is PipelineState.STOPPING


def test_a_connector_paused_by_hand_is_an_error_that_says_how_to_go_on():
    reading = state({"p-source": status(), "p-sink": status("PAUSED", "PAUSED")})
    assert reading.state is PipelineState.ERROR and "outside the platform" in reading.reason


@pytest.mark.parametrize(("age", "expected"), [(10.0, PipelineState.STARTING),
                                                (STARTING_GRACE_SECONDS + 1, PipelineState.ERROR)])  # fmt: skip
def test_tasks_not_running_yet_are_starting_for_a_grace_then_an_error(age, expected):
    resumed = control(Intent.RUNNING, at=NOW - age)
    reading = state({"p-source": status("RUNNING", "UNASSIGNED"), "p-sink": status()}, control=resumed,
                    deployed_at=NOW - 3600)  # fmt: skip
    assert reading.state is expected and "p-source" in reading.reason
