"""Teardown as Dagster jobs: one per pipeline (from the component) and one by name for pipelines
whose spec is gone. Both delete connectors, slot and publication (topics on request); target data stays."""

from pathlib import Path

import dagster as dg

from cdc_platform.assets import CdcSettingsResource
from cdc_platform.kafka_connect import KafkaConnectResource


class TeardownConfig(dg.Config):
    pipeline: str
    delete_topics: bool = False


@dg.op(description="Delete a pipeline's connectors, replication slot and publication (topics on request); "
       "the target data stays.")  # fmt: skip
def teardown_op(context: dg.OpExecutionContext, config: TeardownConfig, kafka_connect: KafkaConnectResource,
                cdc_settings: CdcSettingsResource) -> None:  # fmt: skip
    from cdc_platform.pipeline.teardown import teardown_pipeline
    from cdc_platform.specs.loader import SpecErrors, load_specs

    # the spec is optional: a pipeline whose spec is gone is torn down by its name alone
    source = None
    try:
        specs = load_specs(Path(cdc_settings.specs_dir))
        if config.pipeline in specs.pipelines:
            source = specs.connection(specs.pipelines[config.pipeline].spec.source)
    except SpecErrors as exc:
        context.log.warning(f"specs could not be read ({exc}); tearing {config.pipeline} down by name")
    from cdc_platform.audit import acting_as, run_actor

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


def teardown_job_for(pipeline: str) -> dg.JobDefinition:
    """``<pipeline>_teardown``: the pipeline's name is preset; ``delete_topics`` can be set in the launchpad."""
    return _teardown_graph.to_job(
        name=f"{pipeline}_teardown",
        description=f"Tear pipeline {pipeline} down: its connectors, slot and publication (topics when "
        "delete_topics is set). The target tables and their data stay.",
        config={"ops": {"teardown_op": {"config": {"pipeline": pipeline, "delete_topics": False}}}},
        tags={"cdc/pipeline": pipeline},
    )
