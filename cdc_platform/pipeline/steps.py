"""The order of a materialization, as data: which steps run, in which order, for a mode and a pair.

``plan_steps`` is pure: given what the run was asked to do and what already exists, it returns the
ordered list of steps; :mod:`cdc_platform.pipeline.execute` carries them out. Unit tests assert the
list for every mode, source engine and variant (first deploy, re-load, table added, connectors
only), and :func:`check_order` states the handoff's invariants once, for every list:

1. **No table streams before its copy has a fixed start.** A streaming copy starts only after its
   capture position is fixed: the slot's exported snapshot (PostgreSQL), the source connector
   running with a recorded binlog position (MySQL/MariaDB), or, on a running pipeline, capture
   extended to the tables being copied.
2. **The sink never writes a table during its copy.** The sink is deployed only after every copy,
   and on a running pipeline it is stopped before the copy and resumed after it (also when the
   copy fails: the target tables are left as they were).
3. **PostgreSQL capture has its slot and publication** before the source connector is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Step(str, Enum):
    VALIDATE_CONFIGS = "validate the connector configs with their plugins"
    APPLY_DDL = "create the target schema and tables"
    PREPARE_SOURCE = "create the heartbeat table and the source's capture setup"
    ENSURE_TOPICS = "create the table topics"
    EXTEND_CAPTURE = "extend the running capture to the tables being copied"
    STOP_SINK = "stop the sink"
    COPY_IN_EXPORTED_SNAPSHOT = "create the slot and copy under its exported snapshot"
    DEPLOY_SOURCE_FOR_COPY = "deploy the source connector before the copy"
    WAIT_SOURCE_POSITION = "wait until the source connector records its binlog position"
    COPY = "copy the tables"
    RESUME_SINK = "resume the sink"
    WAIT_SINK = "wait until the sink runs"
    DEPLOY_SINK_FOR_ADDED = "deploy the sink again when the copy added tables to capture"
    ENSURE_SLOT = "ensure the slot and publication"
    DEPLOY_SOURCE = "deploy the source connector"
    DEPLOY_SINK = "deploy the sink connector"
    RECORD_DEPLOYED = "record the tables as deployed"


#: steps that run even after an earlier step failed (they undo a temporary state)
CLEANUP = frozenset({Step.RESUME_SINK})
#: steps that create nothing capture depends on: a first deploy failing here is not rolled back
PREPARATION = frozenset({Step.VALIDATE_CONFIGS, Step.APPLY_DDL, Step.PREPARE_SOURCE, Step.ENSURE_TOPICS})
COPIES = frozenset({Step.COPY, Step.COPY_IN_EXPORTED_SNAPSHOT})


@dataclass(frozen=True)
class RunRequest:
    """What a run was asked to materialize, already narrowed by the pipeline's mode."""

    schema: bool
    copy: bool
    source: bool
    sink: bool


@dataclass(frozen=True)
class RunFacts:
    """What the run found before it started."""

    source_kind: str
    streams: bool
    #: the plan has table topics (streaming pipelines)
    has_routes: bool
    #: the target has a sink connector (S3's writer is the platform's own)
    has_sink_config: bool
    #: the source connector already exists (a running pipeline)
    deployed: bool
    sink_exists: bool

    @property
    def fresh(self) -> bool:
        """A first deploy: rolled back as a whole when any step fails."""
        return self.streams and not self.deployed and not self.sink_exists


class StepOrderError(AssertionError):
    """A list of steps that would break the handoff's invariants."""


def plan_steps(request: RunRequest, facts: RunFacts) -> list[Step]:
    steps: list[Step] = []
    if facts.streams:
        steps.append(Step.VALIDATE_CONFIGS)
    if request.schema:
        steps.append(Step.APPLY_DDL)
    if facts.streams and (request.source or request.copy):
        steps.append(Step.PREPARE_SOURCE)
    if (request.source or request.sink) and facts.has_routes:
        steps.append(Step.ENSURE_TOPICS)
    source_deployed_for_copy = False
    if request.copy and facts.deployed:
        steps.append(Step.EXTEND_CAPTURE)
        if facts.sink_exists:
            steps.append(Step.STOP_SINK)
        steps.append(Step.COPY)
        if facts.sink_exists:
            steps += [Step.RESUME_SINK, Step.WAIT_SINK]
            if facts.has_sink_config:
                steps.append(Step.DEPLOY_SINK_FOR_ADDED)
    elif request.copy and facts.streams and facts.source_kind == "postgresql":
        steps.append(Step.COPY_IN_EXPORTED_SNAPSHOT)
    elif request.copy and facts.streams:
        steps += [Step.DEPLOY_SOURCE_FOR_COPY, Step.WAIT_SOURCE_POSITION, Step.COPY]
        source_deployed_for_copy = True
    elif request.copy:
        steps.append(Step.COPY)
    if request.source and not source_deployed_for_copy:
        if facts.source_kind == "postgresql":
            steps.append(Step.ENSURE_SLOT)
        steps.append(Step.DEPLOY_SOURCE)
    if request.sink and facts.has_sink_config:
        steps.append(Step.DEPLOY_SINK)
    steps.append(Step.RECORD_DEPLOYED)
    check_order(steps, facts)
    return steps


def check_order(steps: list[Step], facts: RunFacts) -> None:
    """Raise :class:`StepOrderError` when ``steps`` would break an invariant (module docstring)."""

    def at(step: Step) -> int:
        return steps.index(step) if step in steps else -1

    copies = [i for i, s in enumerate(steps) if s in COPIES]
    first_copy = min(copies, default=-1)
    last_copy = max(copies, default=-1)
    if facts.streams and steps.count(Step.COPY) and first_copy >= 0:
        if facts.deployed:
            fixed = 0 <= at(Step.EXTEND_CAPTURE) < first_copy
        else:
            fixed = 0 <= at(Step.DEPLOY_SOURCE_FOR_COPY) < at(Step.WAIT_SOURCE_POSITION) < first_copy
        if not fixed:
            raise StepOrderError(f"a streaming copy starts before its capture position is fixed: {steps}")
    for sink_step in (Step.DEPLOY_SINK, Step.DEPLOY_SINK_FOR_ADDED, Step.RESUME_SINK):
        if last_copy >= 0 and 0 <= at(sink_step) < last_copy:
            raise StepOrderError(f"{sink_step.name} runs before a copy ends: {steps}")
    if (
        first_copy >= 0
        and facts.sink_exists
        and not (0 <= at(Step.STOP_SINK) < first_copy < at(Step.RESUME_SINK))
    ):
        raise StepOrderError(f"a running sink is not stopped around the copy: {steps}")
    if (
        Step.DEPLOY_SOURCE in steps
        and facts.source_kind == "postgresql"
        and not 0 <= at(Step.ENSURE_SLOT) < at(Step.DEPLOY_SOURCE)
    ):
        raise StepOrderError(f"the PostgreSQL source connector is deployed before its slot: {steps}")
