"""The Dagster code location: every pipeline spec under the specs directory becomes assets.

Definitions are built from files only (no call to Kafka Connect at load), so the code location
loads while Connect is down. The Kafka Connect URL and Kafka bootstrap follow the local stack's
settings unless ``CDC_CONNECT_URL`` / ``CDC_KAFKA_BOOTSTRAP`` point elsewhere.
"""

import os

import dagster as dg

from cdc_platform.assets import CdcSettingsResource, build_all_assets
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.settings import load_stack_settings
from cdc_platform.specs.loader import load_specs


class TeardownConfig(dg.Config):
    pipeline: str
    delete_topics: bool = False


@dg.op(description="Delete a pipeline's connectors, replication slot and publication (topics on request); "
       "the target data stays.")  # fmt: skip
def teardown_op(context: dg.OpExecutionContext, config: TeardownConfig, kafka_connect: KafkaConnectResource,
                cdc_settings: CdcSettingsResource) -> None:  # fmt: skip
    from pathlib import Path

    from cdc_platform.pipeline.teardown import teardown_pipeline
    from cdc_platform.specs.loader import SpecErrors

    # the spec is optional: a pipeline whose spec is gone is torn down by its name alone
    source = None
    try:
        specs = load_specs(Path(cdc_settings.specs_dir))
        if config.pipeline in specs.pipelines:
            source = specs.connection(specs.pipelines[config.pipeline].spec.source)
    except SpecErrors as exc:
        context.log.warning(f"specs could not be read ({exc}); tearing {config.pipeline} down by name")
    done = teardown_pipeline(config.pipeline, kafka_connect, context.log.info, source=source,
                             specs_dir=Path(cdc_settings.specs_dir), delete_topics=config.delete_topics,
                             kafka_bootstrap=cdc_settings.kafka_bootstrap)  # fmt: skip
    context.log.info(f"teardown of {config.pipeline}: {len(done)} actions")


@dg.job(description="Tear a pipeline down: connectors, slot, publication; optionally its topics.")
def teardown_pipeline_job():
    teardown_op()


def build_definitions() -> dg.Definitions:
    stack = load_stack_settings()
    specs = load_specs()
    settings = CdcSettingsResource(
        specs_dir=str(specs.directory),
        kafka_bootstrap=os.environ.get("CDC_KAFKA_BOOTSTRAP", stack.kafka_bootstrap),
    )
    return dg.Definitions(
        assets=build_all_assets(specs),
        jobs=[teardown_pipeline_job],
        resources={
            "kafka_connect": KafkaConnectResource(url=os.environ.get("CDC_CONNECT_URL", stack.connect_url)),
            "cdc_settings": settings,
        },
    )


defs = build_definitions()
