"""Pause, resume, stop and restart as Dagster jobs: one of each per component instance, offering its
streaming pipelines by name in the launchpad (like the teardown job), run as the launching user.

What each does is ``pipeline/lifecycle.py``'s; the job records who ran it (the run and, where
Dagster knows it, the user) in the audit log and the pipeline's intent.
"""

import hashlib

import dagster as dg

from cdc_platform.audit import acting_as, run_actor
from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.pipeline import lifecycle

#: action -> what the job's description says it does
ACTIONS = {
    "pause": "Pause a pipeline's connectors on purpose: offsets and the replication slot's position are kept, "
    "the health sensor and materializations leave it paused, the slot and binlog alerts still watch it.",
    "resume": "Resume a paused or stopped pipeline: each connector continues from its committed offsets, "
    "with no gap and no duplicate.",
    "stop": "Stop a pipeline's connectors on purpose (their tasks shut down and free their resources); "
    "config and offsets are kept, and `resume` continues where it stopped.",
    "restart": "Restart a pipeline's failed connectors and tasks (all of them with all_tasks).",
}


def _act(action: str, context: dg.OpExecutionContext, config: dict, kafka_connect: KafkaConnectResource,
         cdc_settings: CdcSettingsResource) -> None:  # fmt: skip
    specs = cdc_settings.specs()
    pipeline = config["pipeline"]
    if pipeline not in specs.pipelines:
        raise dg.Failure(description=f"pipeline {pipeline!r} is not in the specs this code location loaded")
    connectors = lifecycle.connectors_of(specs, pipeline)
    reason = config.get("reason") or None
    with acting_as(run_actor(context)):
        try:
            if action == "restart":
                result = lifecycle.restart(pipeline, connectors, kafka_connect, all_tasks=config["all_tasks"])
            else:
                result = getattr(lifecycle, action)(pipeline, connectors, kafka_connect, reason)
        except lifecycle.PipelineHeld as exc:
            raise dg.Failure(description=str(exc)) from None
    context.log.info(result.summary())
    context.add_output_metadata({"pipeline": pipeline, "connectors": list(result.connectors),
                                 "skipped": dg.MetadataValue.json(result.skipped)})  # fmt: skip


def _op(action: str) -> dg.OpDefinition:
    @dg.op(name=f"{action}_pipeline_op", description=ACTIONS[action], config_schema=dg.Permissive())
    def _run(context: dg.OpExecutionContext, kafka_connect: KafkaConnectResource,
             cdc_settings: CdcSettingsResource) -> None:  # fmt: skip
        _act(action, context, context.op_config, kafka_connect, cdc_settings)

    return _run


def _graph_of(name: str, op: dg.OpDefinition) -> dg.GraphDefinition:
    @dg.graph(name=f"{name}_graph")
    def _graph():
        op()

    return _graph


def lifecycle_jobs_for(part_name, pipelines: list[str]) -> list[dg.JobDefinition]:
    """``part_name(action)``: the instance's job name for it, e.g. ``cdc_pause``. The pipeline has no
    default: which pipeline to act on is always a choice made by name."""
    listed = hashlib.sha256("\n".join(pipelines).encode()).hexdigest()[:8]
    jobs = []
    for action in ACTIONS:
        name = part_name(action)
        # Dagster caches config schemas by their types' names: the name carries the list it offers
        choices = dg.Enum(f"{name}_pipeline_{listed}", [dg.EnumValue(p) for p in pipelines])
        fields = {"pipeline": dg.Field(choices, description=f"The pipeline to {action}.")}
        if action == "restart":
            fields["all_tasks"] = dg.Field(bool, default_value=False, description="Restart every task, not "
                                           "only the failed ones.")  # fmt: skip
        else:
            fields["reason"] = dg.Field(str, default_value="", description="Why (recorded with the intent "
                                        "and in the audit log).")  # fmt: skip
        op = _op(action)
        op_name = op.name
        jobs.append(_graph_of(name, op).to_job(
            name=name,
            description=ACTIONS[action] + " Run config: `pipeline` (one of " + ", ".join(pipelines[:20])
            + (", ..." if len(pipelines) > 20 else "") + ").",
            config=dg.ConfigMapping(config_schema=fields,
                                    config_fn=lambda c, op_name=op_name: {"ops": {op_name: {"config": dict(c)}}}),
            tags={"cdc/action": action},
        ))  # fmt: skip
    return jobs
