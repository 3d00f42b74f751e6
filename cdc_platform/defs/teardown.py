"""Teardown by name, for a pipeline whose spec is already gone (``cdc-platform teardown NAME`` in the UI)."""

from cdc_platform.dagster.teardown_job import teardown_pipeline_job

__all__ = ["teardown_pipeline_job"]
