"""Pipelines become Dagster assets: one ``multi_asset`` per pipeline, built from specs and the stored
catalog with no I/O.

Per pipeline: ``<pipeline>/target_schema``, one asset per replicated target table (keyed by target
connection, schema and table, downstream of an external asset for its source table, so lineage
reads source -> target -> downstream), and ``<pipeline>/source_connector`` /
``<pipeline>/sink_connector`` beside them (downstream of the source tables they read). One
materialization runs the parts in the order the gap-free handoff needs, whatever the graph shows.
A :class:`~cdc_platform.translator.CdcTranslator` decides keys and attributes.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from dagster._core.definitions.metadata import TableMetadataSet

from cdc_platform.audit import acting_as, audit_table, entries, run_actor
from cdc_platform.catalog import REFRESH_HINT, PipelineCatalog, selected_tables
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.pipeline.plan import (
    PipelineNames,
    PipelinePlan,
    build_plan,
    config_hash,
    table_topic,
    target_table_name,
)
from cdc_platform.resources import CdcSettingsResource
from cdc_platform.schema.model import Table
from cdc_platform.schema.rules import describe_rules
from cdc_platform.specs.loader import LoadedPipeline, Specs
from cdc_platform.translator import CdcAssetProps, CdcTranslator, column_schema


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


def _substitution_metadata(table: Table, stats, plan: PipelinePlan) -> dict:
    """Values a pair's rule turned into NULL, per column: never silent, always on the asset."""
    rules = {
        c.name: describe_rules(plan.source.kind.value, plan.target.kind.value, c.type) for c in table.columns
    }
    covered = {name: rule for name, rule in rules.items() if rule is not None}
    if not covered:
        return {}
    metadata: dict = {"values_substituted": sum(stats.substituted.values())}
    lines = ["| column | rule | rows in this load |", "|---|---|---|"]
    for name, rule in sorted(covered.items()):
        count = stats.substituted.get(name, 0)
        metadata[f"values_substituted/{name}"] = count
        lines.append(f"| {name} | {rule} | {count:,} |")
    metadata["value_rules"] = dg.MetadataValue.md("\n".join(lines))
    return metadata


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
) -> tuple[dg.AssetsDefinition, list[dg.AssetSpec]]:
    """The pipeline's multi-asset and the external specs of its source tables. ``plan`` is the
    stored catalog's (``stored_plan``), passed by a caller that needs it too, else built here."""
    translator = translator or CdcTranslator()
    spec = loaded.spec
    source_kind = specs.connection(spec.source).kind.value
    target_kind = specs.connection(spec.target).kind.value
    names = PipelineNames(spec.name)
    plan = plan or stored_plan(specs, loaded, catalog)
    ddl_by_table = {}
    if plan is not None and plan.ddl:
        ddl_by_table = {
            t.qualified: ddl for t, ddl in zip(plan.tables, plan.ddl[1 : 1 + len(plan.tables)], strict=True)
        }
    common = {"pipeline": spec, "source_kind": source_kind, "target_kind": target_kind}
    base_meta = {"pipeline": spec.name, "source_connection": spec.source, "target_connection": spec.target}
    if catalog is not None:
        base_meta["discovered_at"] = catalog.discovered_at

    qualified_names = selected_tables(loaded, catalog)
    table_specs: dict[str, dg.AssetSpec] = {}
    externals: list[dg.AssetSpec] = []
    for qualified in qualified_names:
        table = catalog.table(qualified) if catalog else None
        tname = target_table_name(spec, qualified)
        rules = None
        if table is not None:
            described = {c.name: describe_rules(source_kind, target_kind, c.type) for c in table.columns}
            rules = "; ".join(f"{n}: {r}" for n, r in sorted(described.items()) if r) or None
        table_meta = {**base_meta, "value_rules": rules}
        if spec.streams:
            topic = table_topic(specs.connection(spec.source), names, qualified)
            table_meta.update(source_connector=names.source_connector, sink_connector=names.sink_connector,
                              topic=topic)  # fmt: skip
        props = CdcAssetProps("target_table", qualified=qualified, table=table, target_table=tname,
                              applies=ddl_by_table.get(qualified), metadata=table_meta, **common)  # fmt: skip
        table_specs[qualified] = translator.get_asset_spec(props)
        externals.append(translator.get_asset_spec(CdcAssetProps("source_table", qualified=qualified, table=table,
                                                                 **common)))  # fmt: skip
    schema_spec = translator.get_asset_spec(
        CdcAssetProps(
            "target_schema", applies="\n".join(plan.ddl) if plan else None, metadata=base_meta, **common
        )
    )
    specs_list = [schema_spec, *table_specs.values()]
    source_key = translator.connector_key(spec, "source")
    sink_key = translator.connector_key(spec, "sink")
    if spec.streams:
        connector_meta = {**base_meta, "source_connector": names.source_connector,
                          "sink_connector": names.sink_connector}  # fmt: skip
        if source_kind == "postgresql":
            connector_meta.update(slot=names.slot, publication=names.publication)
        source_applies = config_hash(plan.source_config) if plan and plan.source_config else None
        sink_applies = config_hash(plan.sink_config) if plan and plan.sink_config else None
        specs_list.append(translator.get_asset_spec(CdcAssetProps(
            "source_connector", applies=source_applies, source_tables=tuple(qualified_names),
            metadata={**connector_meta, "config_hash": source_applies}, **common,
        )))  # fmt: skip
        if target_kind != "s3":  # an S3 target's writer is the platform's own (cdc_platform/s3/sensor.py)
            specs_list.append(translator.get_asset_spec(CdcAssetProps(
                "sink_connector", applies=sink_applies, source_tables=tuple(qualified_names),
                metadata={**connector_meta, "config_hash": sink_applies}, **common,
            )))  # fmt: skip

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
        # what a run does (database drivers, Kafka and Connect clients) is imported when it runs
        from cdc_platform.pipeline.execute import run_pipeline
        from cdc_platform.schema.discovery import discover_pipeline_tables

        selected = context.selected_asset_keys
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
            yield dg.MaterializeResult(
                asset_key=schema_spec.key,
                metadata={"ddl": dg.MetadataValue.md("```sql\n" + ";\n\n".join(result.ddl) + ";\n```"),
                          "tables": len(tables)},
            )  # fmt: skip
        for table in tables:
            table_spec = table_specs.get(table.qualified)
            if table_spec is None or table_spec.key not in selected:
                continue
            stats = result.copied.get(table.qualified)
            metadata: dict = {
                **dict(TableMetadataSet(column_schema=column_schema(table),
                                        row_count=stats.rows if stats is not None else None)),
                "primary_key": ", ".join(table.primary_key),
                "declared_key": table.declared_key,
            }  # fmt: skip
            if stats is not None:
                metadata.update({
                    "rows": stats.rows, "seconds": round(stats.seconds, 3),
                    "rows_per_second": round(stats.rows_per_second, 1),
                })  # fmt: skip
                if stats.bytes is not None:
                    metadata["bytes"] = stats.bytes
                if target_kind == "s3":
                    from cdc_platform.s3.storage import TableLocation

                    where = TableLocation.of(
                        run_plan.target, spec.target_schema, target_table_name(spec, table.qualified)
                    )
                    metadata["path"] = dg.MetadataValue.path(f"s3://{where.snapshot_dir}/")
                metadata.update(_substitution_metadata(table, stats, run_plan))
            yield dg.MaterializeResult(asset_key=table_spec.key, metadata=metadata)
        for role, key in (("source", source_key), ("sink", sink_key)):
            if key in selected and role in result.connectors:
                c = result.connectors[role]
                yield dg.MaterializeResult(
                    asset_key=key,
                    metadata={
                        "connector": c.name, "action": c.action, "cdc/config_hash": c.config_hash,
                        "state": c.state or "unknown",
                        "config_diff": dg.MetadataValue.json(c.diff) if c.diff else dg.MetadataValue.text("none"),
                        "audit": dg.MetadataValue.md(audit_table(entries(target=c.name, limit=5))),
                    },
                )  # fmt: skip

    return _pipeline, externals


def build_all_assets(
    specs: Specs,
    catalogs: dict[str, PipelineCatalog],
    pipelines: list[str] | None = None,
    translator: CdcTranslator | None = None,
    plans: dict[str, PipelinePlan | None] | None = None,
) -> list:
    """Every selected pipeline's assets, each source table's external spec once."""
    assets: list = []
    seen_external: set[dg.AssetKey] = set()
    for name in pipelines if pipelines is not None else sorted(specs.pipelines):
        pipeline_assets, externals = build_pipeline_assets(
            specs.pipelines[name], specs, catalogs.get(name), translator, (plans or {}).get(name)
        )
        assets.append(pipeline_assets)
        for ext in externals:
            if ext.key not in seen_external:
                seen_external.add(ext.key)
                assets.append(ext)
    return assets
