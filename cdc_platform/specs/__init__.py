"""Declarative connection and pipeline specs (YAML under resources/), validated with pydantic."""

from cdc_platform.specs.loader import LoadedPipeline, SpecError, SpecErrors, Specs, load_specs
from cdc_platform.specs.models import ConnectionSpec, Mode, PipelineSpec

__all__ = [
    "ConnectionSpec",
    "LoadedPipeline",
    "Mode",
    "PipelineSpec",
    "SpecError",
    "SpecErrors",
    "Specs",
    "load_specs",
]
