"""Teardown as Dagster jobs: one per component instance, offering its pipelines by name, and one
taking any name, for pipelines whose spec is gone. Both delete connectors, slot and publication
(topics on request); target data stays."""

import hashlib
from pathlib import Path

import dagster as dg

from cdc_platform.audit import acting_as, run_actor
from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.specs.loader import SpecErrors


class TeardownConfig(dg.Config):
    pipeline: str
    delete_topics: bool = False


@dg.op(description="Delete a pipeline's connectors, replication slot and publication (topics on request); "
       "the target data stays.")  # fmt: skip
def teardown_op(context: dg.OpExecutionContext, config: TeardownConfig, kafka_connect: KafkaConnectResource,
                cdc_settings: CdcSettingsResource) -> None:  # fmt: skip
    # lazy: keeps psycopg off the code location's load path
    from cdc_platform.pipeline.teardown import teardown_pipeline

    # the spec is optional: a pipeline whose spec is gone is torn down by its name alone
    source = None
    try:
        specs = cdc_settings.specs()
        if config.pipeline in specs.pipelines:
            source = specs.connection(specs.pipelines[config.pipeline].spec.source)
    except SpecErrors as exc:
        context.log.warning(f"specs could not be read ({exc}); tearing {config.pipeline} down by name")

    with acting_as(run_actor(context)):
        done = teardown_pipeline(config.pipeline, kafka_connect, context.log.info, source=source,
                                 specs_dir=Path(cdc_settings.specs_dir), delete_topics=config.delete_topics,
                                 kafka_bootstrap=cdc_settings.kafka_bootstrap)  # fmt: skip
    context.log.info(f"teardown of {config.pipeline}: {len(done)} actions")


@dg.job(description="Tear a pipeline down by name: connectors, slot, publication; optionally its topics.")
def teardown_pipeline_job():
    teardown_op()


@dg.graph
def _teardown_graph():
    teardown_op()


def teardown_job_for(name: str, pipelines: list[str]) -> dg.JobDefinition:
    """One job for all of an instance's pipelines; the launchpad lists their names.

    One job rather than one per pipeline: a hundred pipelines made a hundred jobs, each resolved
    and snapshotted at every load, for a run nobody schedules (issue 14). The pipeline has no
    default, so tearing one down is always a choice made by name."""
    # Dagster caches config schemas by their types' names: the name carries the list it offers
    listed = hashlib.sha256("\n".join(pipelines).encode()).hexdigest()[:8]
    choices = dg.Enum(f"{name}_pipeline_{listed}", [dg.EnumValue(p) for p in pipelines])
    mapping = dg.ConfigMapping(
        config_schema={
            "pipeline": dg.Field(choices, description="The pipeline to tear down."),
            "delete_topics": dg.Field(bool, default_value=False, description="Also delete its Kafka topics."),
        },
        config_fn=lambda c: {"ops": {"teardown_op": {"config": {"pipeline": c["pipeline"],
                                                                "delete_topics": c["delete_topics"]}}}},
    )  # fmt: skip
    return _teardown_graph.to_job(
        name=name,
        description="Tear a pipeline down: its connectors, slot and publication (topics when delete_topics is "
        "set). The target tables and their data stay. Run config: `pipeline` (one of "
        + ", ".join(pipelines[:20])
        + (", ..." if len(pipelines) > 20 else "")
        + "), `delete_topics`.",
        config=mapping,
    )
