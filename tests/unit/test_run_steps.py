"""The order of a materialization, for each mode, source engine and variant, and the invariants
that reject any other order (cdc_platform/pipeline/steps.py)."""

from __future__ import annotations

import pytest

from cdc_platform.pipeline.steps import RunFacts, RunRequest, Step, StepOrderError, check_order, plan_steps

S = Step
ALL = RunRequest(schema=True, copy=True, source=True, sink=True)


def facts(source_kind="postgresql", streams=True, deployed=False, sink_exists=False, sink=True) -> RunFacts:
    return RunFacts(source_kind, streams, has_routes=streams, has_sink_config=sink, deployed=deployed,
                    sink_exists=sink_exists)  # fmt: skip


def test_first_deploy_from_postgresql_copies_under_the_slots_exported_snapshot():
    assert plan_steps(ALL, facts()) == [
        S.VALIDATE_CONFIGS, S.APPLY_DDL, S.PREPARE_SOURCE, S.ENSURE_TOPICS, S.COPY_IN_EXPORTED_SNAPSHOT,
        S.ENSURE_SLOT, S.DEPLOY_SOURCE, S.DEPLOY_SINK, S.RECORD_DEPLOYED,
    ]  # fmt: skip
    assert facts().fresh


@pytest.mark.parametrize("kind", ["mariadb", "mysql", "sqlserver"])
def test_first_deploy_from_a_binlog_source_starts_capture_before_the_copy(kind):
    assert plan_steps(ALL, facts(kind)) == [
        S.VALIDATE_CONFIGS, S.APPLY_DDL, S.PREPARE_SOURCE, S.ENSURE_TOPICS, S.DEPLOY_SOURCE_FOR_COPY,
        S.WAIT_SOURCE_POSITION, S.COPY, S.DEPLOY_SINK, S.RECORD_DEPLOYED,
    ]  # fmt: skip


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_reload_of_a_running_pipeline_extends_capture_and_keeps_the_sink_off_the_copy(kind):
    running = facts(kind, deployed=True, sink_exists=True)
    assert not running.fresh
    assert plan_steps(ALL, running) == [
        S.VALIDATE_CONFIGS, S.APPLY_DDL, S.PREPARE_SOURCE, S.ENSURE_TOPICS, S.EXTEND_CAPTURE, S.STOP_SINK, S.COPY,
        S.RESUME_SINK, S.WAIT_SINK, S.DEPLOY_SINK_FOR_ADDED,
        *([S.ENSURE_SLOT] if kind == "postgresql" else []), S.DEPLOY_SOURCE, S.DEPLOY_SINK, S.RECORD_DEPLOYED,
    ]  # fmt: skip
    # one table re-loaded from the UI: that table's asset alone is selected
    one_table = RunRequest(schema=True, copy=True, source=False, sink=False)
    assert plan_steps(one_table, running) == [
        S.VALIDATE_CONFIGS, S.APPLY_DDL, S.PREPARE_SOURCE, S.EXTEND_CAPTURE, S.STOP_SINK, S.COPY, S.RESUME_SINK,
        S.WAIT_SINK, S.DEPLOY_SINK_FOR_ADDED, S.RECORD_DEPLOYED,
    ]  # fmt: skip


def test_connectors_only_full_load_only_and_s3():
    connectors = RunRequest(schema=False, copy=False, source=True, sink=True)
    assert plan_steps(connectors, facts(deployed=True, sink_exists=True)) == [
        S.VALIDATE_CONFIGS, S.PREPARE_SOURCE, S.ENSURE_TOPICS, S.ENSURE_SLOT, S.DEPLOY_SOURCE, S.DEPLOY_SINK,
        S.RECORD_DEPLOYED,
    ]  # fmt: skip
    copy_only = RunRequest(schema=True, copy=True, source=False, sink=False)
    assert plan_steps(copy_only, facts(streams=False, sink=False)) == [S.APPLY_DDL, S.COPY, S.RECORD_DEPLOYED]
    # S3: the platform's writer instead of a sink connector
    assert S.DEPLOY_SINK not in plan_steps(ALL, facts("mariadb", sink=False))


@pytest.mark.parametrize(
    ("steps", "state", "broken"),
    [
        # a binlog copy before its capture position is recorded
        ([S.COPY, S.DEPLOY_SOURCE_FOR_COPY, S.WAIT_SOURCE_POSITION], facts("mariadb"), "capture position"),
        ([S.DEPLOY_SOURCE_FOR_COPY, S.COPY], facts("mariadb"), "capture position"),
        # a re-load whose capture is extended only after the copy
        ([S.STOP_SINK, S.COPY, S.RESUME_SINK, S.EXTEND_CAPTURE], facts(deployed=True, sink_exists=True),
         "capture position"),
        # the sink deployed while a table is still being copied
        ([S.DEPLOY_SINK, S.COPY_IN_EXPORTED_SNAPSHOT], facts(), "DEPLOY_SINK runs before a copy ends"),
        # a running sink left on during a re-load
        ([S.EXTEND_CAPTURE, S.COPY], facts(deployed=True, sink_exists=True), "not stopped around the copy"),
        ([S.EXTEND_CAPTURE, S.STOP_SINK, S.RESUME_SINK, S.COPY], facts(deployed=True, sink_exists=True),
         "RESUME_SINK runs before a copy ends"),
        # the PostgreSQL connector without its slot
        ([S.DEPLOY_SOURCE], facts(), "before its slot"),
    ],
)  # fmt: skip
def test_orders_that_break_the_handoff_are_refused(steps, state, broken):
    with pytest.raises(StepOrderError, match=broken):
        check_order(steps, state)
