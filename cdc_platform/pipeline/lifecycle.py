"""Pause, resume, stop and restart a pipeline, and the intent the platform keeps for it.

A person's choice must outlive the parts that otherwise keep a pipeline running: the health sensor
restarts failed tasks, a materialization starts connectors, the S3 writer consumes changes. So a
pause or stop is first recorded as the pipeline's *intent* in the platform's database (who, when,
why), then carried out on Kafka Connect; every part reads the intent before it acts, and only a
``resume`` (or a teardown, which forgets it) undoes it.

Kafka Connect keeps a paused or stopped connector's offsets, and a PostgreSQL slot keeps its WAL
from the confirmed position, so resuming continues exactly where the pipeline stopped: no gap, and
no change applied twice beyond what the sink's upserts already absorb.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

import sqlalchemy as sa

from cdc_platform.audit import current_actor, record
from cdc_platform.clock import utc_text
from cdc_platform.engines.kinds import target_traits
from cdc_platform.kafka_connect import KafkaConnectError, KafkaConnectResource
from cdc_platform.pipeline.plan import PipelineNames
from cdc_platform.platform_db import PIPELINE_CONTROL, platform_engine
from cdc_platform.specs.loader import Specs


class Intent(str, Enum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Control:
    """The intent last recorded for a pipeline."""

    pipeline: str
    intent: Intent
    changed_at: float
    changed_by: str
    reason: str | None = None

    @property
    def holds_still(self) -> bool:
        """Paused or stopped on purpose: nothing may start it but a resume."""
        return self.intent is not Intent.RUNNING

    def describe(self) -> str:
        when = utc_text(self.changed_at)
        why = f": {self.reason}" if self.reason else ""
        return f"{self.intent.value} by {self.changed_by} at {when} UTC{why}"


class PipelineHeld(RuntimeError):
    """Something would start a pipeline that a person paused or stopped."""


def controls(pipelines: Iterable[str] | None = None) -> dict[str, Control]:
    """The recorded intents (of ``pipelines``, or all), in one query: the sensors read this every tick."""
    query = sa.select(PIPELINE_CONTROL)
    wanted = None if pipelines is None else sorted(set(pipelines))
    if wanted is not None:
        if not wanted:
            return {}
        query = query.where(PIPELINE_CONTROL.c.pipeline.in_(wanted))
    with platform_engine().connect() as conn:
        rows = conn.execute(query).all()
    return {
        r.pipeline: Control(r.pipeline, Intent(r.intent), r.changed_at, r.changed_by, r.reason) for r in rows
    }


def control_of(pipeline: str) -> Control | None:
    return controls([pipeline]).get(pipeline)


def held(pipelines: Iterable[str]) -> dict[str, Control]:
    """The pipelines among ``pipelines`` paused or stopped on purpose; empty when the record cannot be
    read (a part that cannot see the intent acts as before rather than stopping everything)."""
    try:
        return {name: c for name, c in controls(pipelines).items() if c.holds_still}
    except sa.exc.SQLAlchemyError:
        return {}


def record_intent(pipeline: str, intent: Intent, reason: str | None = None) -> Control:
    control = Control(pipeline, intent, time.time(), current_actor(), reason)
    values = {"intent": intent.value, "changed_at": control.changed_at, "changed_by": control.changed_by,
              "reason": reason}  # fmt: skip
    with platform_engine().begin() as conn:
        updated = conn.execute(
            PIPELINE_CONTROL.update().where(PIPELINE_CONTROL.c.pipeline == pipeline).values(**values)
        ).rowcount
        if not updated:
            conn.execute(PIPELINE_CONTROL.insert().values(pipeline=pipeline, **values))
    return control


def forget_intent(pipeline: str) -> None:
    """Teardown: a pipeline created again under the same name starts with no intent recorded."""
    with platform_engine().begin() as conn:
        conn.execute(PIPELINE_CONTROL.delete().where(PIPELINE_CONTROL.c.pipeline == pipeline))


def refuse_if_held(pipeline: str) -> None:
    """What a materialization calls first: a paused or stopped pipeline is not started behind its
    operator's back; the run fails before it changes anything, saying how to go on."""
    control = control_of(pipeline)
    if control is not None and control.holds_still:
        raise PipelineHeld(
            f"pipeline {pipeline!r} is {control.describe()}. A materialization would start its connectors: "
            f"resume it first (`cdc-platform resume {pipeline}`, or the cdc_resume job), then materialize."
        )


@dataclass(frozen=True)
class ActionResult:
    pipeline: str
    action: str
    connectors: tuple[str, ...]
    #: connector -> why it was not acted on (e.g. not deployed)
    skipped: dict[str, str]

    def summary(self) -> str:
        done = ", ".join(self.connectors) or "no connector"
        extra = "; " + "; ".join(f"{c}: {why}" for c, why in self.skipped.items()) if self.skipped else ""
        return f"pipeline {self.pipeline}: {self.action} {done}{extra}"


def _each(
    connect: KafkaConnectResource, connectors: list[str], act: Callable[[str], object]
) -> tuple[tuple[str, ...], dict[str, str]]:
    done, skipped = [], {}
    for name in connectors:
        try:
            act(name)
        except KafkaConnectError as exc:
            if exc.status_code != 404:
                raise
            skipped[name] = "not deployed"
            continue
        done.append(name)
    return tuple(done), skipped


def pause(
    pipeline: str, connectors: list[str], connect: KafkaConnectResource, reason: str | None = None
) -> ActionResult:
    """Pause every connector (tasks stay assigned, offsets and the slot's position kept). The intent
    is recorded first: a sensor tick in between already leaves the pipeline alone."""
    record_intent(pipeline, Intent.PAUSED, reason)
    done, skipped = _each(connect, connectors, connect.pause)
    record("pipeline.paused", pipeline, pipeline=pipeline, detail=reason)
    return ActionResult(pipeline, "paused", done, skipped)


def stop(
    pipeline: str, connectors: list[str], connect: KafkaConnectResource, reason: str | None = None
) -> ActionResult:
    """Stop every connector: its tasks are shut down (their resources freed), config and offsets kept."""
    record_intent(pipeline, Intent.STOPPED, reason)
    done, skipped = _each(connect, connectors, connect.stop)
    record("pipeline.stopped", pipeline, pipeline=pipeline, detail=reason)
    return ActionResult(pipeline, "stopped", done, skipped)


def resume(
    pipeline: str, connectors: list[str], connect: KafkaConnectResource, reason: str | None = None
) -> ActionResult:
    """Resume from a pause or a stop: each connector continues from its committed offsets."""
    done, skipped = _each(connect, connectors, connect.resume)
    record_intent(pipeline, Intent.RUNNING, reason)
    record("pipeline.resumed", pipeline, pipeline=pipeline, detail=reason)
    return ActionResult(pipeline, "resumed", done, skipped)


def restart(
    pipeline: str, connectors: list[str], connect: KafkaConnectResource, *, all_tasks: bool = False
) -> ActionResult:
    """Restart the failed connectors and tasks (``all_tasks``: every one). A paused or stopped
    pipeline is refused: a restart would not run it, and a resume is what the operator means."""
    control = control_of(pipeline)
    if control is not None and control.holds_still:
        raise PipelineHeld(
            f"pipeline {pipeline!r} is {control.describe()}: resume it instead of restarting it"
        )
    done, skipped = _each(
        connect, connectors, lambda name: connect.restart(name, only_failed=not all_tasks, include_tasks=True)
    )
    record(
        "pipeline.restarted", pipeline, pipeline=pipeline, detail="all tasks" if all_tasks else "failed tasks"
    )
    return ActionResult(
        pipeline, "restarted " + ("all tasks of" if all_tasks else "the failed tasks of"), done, skipped
    )


def connectors_of(specs: Specs, pipeline: str) -> list[str]:
    """The pipeline's Kafka Connect connectors, source first (an S3 target has no sink connector: the
    platform's writer honours the intent instead)."""
    spec = specs.pipelines[pipeline].spec
    if not spec.streams:
        return []
    names = PipelineNames(pipeline)
    sink = target_traits(specs.connection(spec.target).kind.value).sink_connector
    return [names.source_connector, *([names.sink_connector] if sink else [])]
