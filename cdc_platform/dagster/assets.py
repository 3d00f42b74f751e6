"""Pipelines become Dagster assets: one ``multi_asset`` per pipeline, built from specs and the stored
catalog with no I/O.

Per pipeline: ``<pipeline>/target_schema``, one asset per replicated target table (keyed by target
connection, schema and table, downstream of an external asset for its source table, so lineage
reads source -> target -> downstream), and ``<pipeline>/source_connector`` /
``<pipeline>/sink_connector`` beside them (downstream of the source tables they read). One
materialization runs the parts in the order the gap-free handoff needs, whatever the graph shows.
A :class:`~cdc_platform.dagster.translator.CdcTranslator` decides keys and attributes.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from cdc_platform.audit import acting_as, run_actor
from cdc_platform.dagster.asset_specs import PipelineSpecs, pipeline_specs
from cdc_platform.dagster.catalog import REFRESH_HINT, PipelineCatalog
from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.dagster.run_metadata import connector_metadata, schema_metadata, table_metadata
from cdc_platform.dagster.translator import CdcTranslator
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.pipeline.lifecycle import PipelineHeld, refuse_if_held
from cdc_platform.pipeline.plan import (
    PipelinePlan,
    build_plan,
)
from cdc_platform.schema.discovery import discover_pipeline_tables
from cdc_platform.schema.model import Table
from cdc_platform.specs.loader import LoadedPipeline, Specs


class PipelineRunError(RuntimeError):
    """A run-time failure, named by spec file and pipeline like a load-time error."""


@contextmanager
def named_errors(loaded: LoadedPipeline) -> Iterator[None]:
    try:
        yield
    except PipelineRunError:
        raise
    except Exception as exc:
        raise PipelineRunError(f"{loaded.file}: pipeline {loaded.spec.name!r}: {exc}") from exc


def check_tables_match_assets(loaded: LoadedPipeline, tables: list[Table], asset_tables: set[str]) -> None:
    """The run captures exactly the tables it can copy: every captured table has an asset.

    The table list of a schema + pattern selection is the stored catalog's; a table created since
    would otherwise stream its changes without its existing rows, and one dropped since would leave
    an asset nothing fills.
    """
    found = {t.qualified for t in tables}
    new, gone = sorted(found - asset_tables), sorted(asset_tables - found)
    if new or gone:
        parts = []
        if new:
            parts.append(f"tables {new} are selected on the source now but have no asset")
        if gone:
            parts.append(f"tables {gone} have assets but are no longer selected on the source")
        raise PipelineRunError(
            f"{loaded.file}: pipeline {loaded.spec.name!r}: {'; '.join(parts)}. Nothing was changed. "
            f"The stored table catalog is out of date: {REFRESH_HINT} (Dagster UI: Deployment > Reload), "
            "so that every table the pipeline captures is copied first; then materialize again."
        )


def stored_plan(
    specs: Specs, loaded: LoadedPipeline, catalog: PipelineCatalog | None, kafka_bootstrap: str = "kafka"
) -> PipelinePlan | None:
    """The plan the stored catalog implies, for code versions and drift; a run builds its own from the source."""
    if catalog is None:
        return None
    try:
        return build_plan(specs, loaded.spec, list(catalog.tables), kafka_bootstrap)
    except Exception:  # noqa: BLE001 - code versions are optional; the run reports plan errors itself
        return None


def build_pipeline_assets(
    loaded: LoadedPipeline,
    specs: Specs,
    catalog: PipelineCatalog | None = None,
    translator: CdcTranslator | None = None,
    plan: PipelinePlan | None = None,
    parts: PipelineSpecs | None = None,
) -> tuple[dg.AssetsDefinition, list[dg.AssetSpec]]:
    """The pipeline's multi-asset and the external specs of its source tables. ``plan`` is the
    stored catalog's (``stored_plan``) and ``parts`` its specs, passed by a caller that needs them
    too, else built here."""
    spec = loaded.spec
    if parts is None:
        parts = pipeline_specs(loaded, specs, catalog, translator or CdcTranslator(),
                               plan or stored_plan(specs, loaded, catalog))  # fmt: skip
    table_specs, schema_spec, specs_list = parts.tables, parts.schema, parts.materialized
    externals = list(parts.externals.values())
    source_key, sink_key = parts.keys.source_connector, parts.keys.sink_connector

    @dg.multi_asset(
        name=f"{spec.name}_pipeline",
        specs=specs_list,
        can_subset=True,
        description=spec.description
        or f"CDC pipeline {spec.name}: {spec.source} -> {spec.target} ({spec.mode.value})",
        op_tags={"cdc/pipeline": spec.name},
        # parallel materializations of pipelines on one source share its capacity
        pool=f"cdc_source_{spec.source}",
    )
    def _pipeline(
        context: dg.AssetExecutionContext,
        kafka_connect: KafkaConnectResource,
        cdc_settings: CdcSettingsResource,
    ) -> Iterator[dg.MaterializeResult]:
        # lazy: keeps the run's drivers (psycopg, pymysql, pyarrow) off the code location's load path
        from cdc_platform.pipeline.execute import run_pipeline

        selected = context.selected_asset_keys
        if spec.streams:
            try:
                refuse_if_held(spec.name)
            except PipelineHeld as exc:
                raise dg.Failure(description=str(exc)) from None
        with named_errors(loaded):
            tables = discover_pipeline_tables(spec, specs.connection(spec.source), specs.directory)
            check_tables_match_assets(loaded, tables, set(table_specs))
            run_plan = build_plan(specs, spec, tables, cdc_settings.kafka_bootstrap)
        to_copy = {
            t.qualified
            for t in tables
            if t.qualified in table_specs and table_specs[t.qualified].key in selected
        }
        with named_errors(loaded), acting_as(run_actor(context)):
            result = run_pipeline(
                run_plan, specs.directory, kafka_connect if spec.streams else None, context.log.info,
                schema=schema_spec.key in selected or bool(to_copy),
                copy=bool(to_copy), only_tables=to_copy,
                source=source_key in selected, sink=sink_key in selected,
            )  # fmt: skip
        if schema_spec.key in selected:
            yield dg.MaterializeResult(asset_key=schema_spec.key, metadata=schema_metadata(result, tables))
        for table in tables:
            table_spec = table_specs.get(table.qualified)
            if table_spec is None or table_spec.key not in selected:
                continue
            metadata = table_metadata(table, result.copied.get(table.qualified), run_plan)
            yield dg.MaterializeResult(asset_key=table_spec.key, metadata=metadata)
        for role, key in (("source", source_key), ("sink", sink_key)):
            if key in selected and role in result.connectors:
                yield dg.MaterializeResult(
                    asset_key=key, metadata=connector_metadata(result.connectors[role])
                )

    return _pipeline, externals


def build_all_assets(
    specs: Specs,
    catalogs: dict[str, PipelineCatalog],
    pipelines: list[str] | None = None,
    translator: CdcTranslator | None = None,
    plans: dict[str, PipelinePlan | None] | None = None,
    parts: dict[str, PipelineSpecs] | None = None,
) -> list:
    """Every selected pipeline's assets, each source table's external spec once."""
    assets: list = []
    seen_external: set[dg.AssetKey] = set()
    for name in pipelines if pipelines is not None else sorted(specs.pipelines):
        pipeline_assets, externals = build_pipeline_assets(
            specs.pipelines[name], specs, catalogs.get(name), translator, (plans or {}).get(name),
            (parts or {}).get(name),
        )  # fmt: skip
        assets.append(pipeline_assets)
        for ext in externals:
            if ext.key not in seen_external:
                seen_external.add(ext.key)
                assets.append(ext)
    return assets
