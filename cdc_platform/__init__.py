"""Change Data Capture pipelines (Debezium on Kafka Connect) expressed as Dagster assets."""

from cdc_platform.dagster.component import CdcPipelineComponent
from cdc_platform.dagster.translator import CdcAssetProps, CdcTranslator

__all__ = ["CdcAssetProps", "CdcPipelineComponent", "CdcTranslator"]
