"""A pipeline's asset specs, built by the translator with no I/O, and the keys every other part uses.

The translator's ``get_asset_spec`` is the one authority on keys: each spec is built once here, in
graph order, and each later spec's upstream keys are the keys the earlier specs actually got. The
checks, sensors, schedules and jobs take their keys from :class:`PipelineKeys`, so a translator
that changes a key moves everything that points at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from cdc_platform.connectors.diff import config_hash
from cdc_platform.dagster.catalog import PipelineCatalog, selected_tables
from cdc_platform.dagster.translator import CdcAssetProps, CdcTranslator
from cdc_platform.engines.kinds import target_traits
from cdc_platform.pipeline.plan import (
    PipelineNames,
    PipelinePlan,
    table_topic,
    target_table_name,
)
from cdc_platform.s3.iceberg_catalog import CHANGE_LOG_SUFFIX
from cdc_platform.schema.rules import describe_rules
from cdc_platform.specs.loader import LoadedPipeline, Specs


@dataclass(frozen=True)
class PipelineKeys:
    """Where a pipeline's parts live in the asset graph (all from the translator's specs)."""

    pipeline: str
    schema: dg.AssetKey
    #: source ``schema.table`` -> the replicated target table's key
    target_tables: dict[str, dg.AssetKey]
    #: source ``schema.table`` -> the external source table's key
    source_tables: dict[str, dg.AssetKey]
    source_connector: dg.AssetKey | None
    #: None for an S3 target (its writer is the platform's own) and for full_load_only
    sink_connector: dg.AssetKey | None
    #: source ``schema.table`` -> the current-state table's key (Iceberg targets; their
    #: ``target_tables`` are the change logs)
    current_tables: dict[str, dg.AssetKey] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineSpecs:
    """The specs one pipeline's multi-asset materializes, and the external source tables beside it."""

    schema: dg.AssetSpec
    tables: dict[str, dg.AssetSpec]
    externals: dict[str, dg.AssetSpec]
    source_connector: dg.AssetSpec | None
    sink_connector: dg.AssetSpec | None
    keys: PipelineKeys
    #: source ``schema.table`` -> its current-state table (Iceberg targets), merged by its own assets
    current: dict[str, dg.AssetSpec] = field(default_factory=dict)

    @property
    def materialized(self) -> list[dg.AssetSpec]:
        parts = [self.schema, *self.tables.values(), self.source_connector, self.sink_connector]
        return [s for s in parts if s is not None]


def _value_rules(table, source_kind: str, target_kind: str) -> str | None:
    if table is None:
        return None
    described = {c.name: describe_rules(source_kind, target_kind, c.type) for c in table.columns}
    return "; ".join(f"{n}: {r}" for n, r in sorted(described.items()) if r) or None


def pipeline_specs(
    loaded: LoadedPipeline,
    specs: Specs,
    catalog: PipelineCatalog | None,
    translator: CdcTranslator,
    plan: PipelinePlan | None,
    warn: bool = True,
) -> PipelineSpecs:
    """``plan``: the stored catalog's, for code versions (None before the first refresh)."""
    spec = loaded.spec
    source_kind = specs.connection(spec.source).kind.value
    target_kind = specs.connection(spec.target).kind.value
    names = PipelineNames(spec.name)
    common = {"pipeline": spec, "source_kind": source_kind, "target_kind": target_kind}
    base_meta = {"pipeline": spec.name, "source_connection": spec.source, "target_connection": spec.target}
    if catalog is not None:
        base_meta["discovered_at"] = catalog.discovered_at
    ddl_by_table = {}
    if plan is not None and plan.ddl:
        ddl_by_table = {
            t.qualified: ddl for t, ddl in zip(plan.tables, plan.ddl[1 : 1 + len(plan.tables)], strict=True)
        }

    schema = translator.get_asset_spec(
        CdcAssetProps(
            "target_schema", applies="\n".join(plan.ddl) if plan else None, metadata=base_meta, **common
        )
    )
    qualified_names = selected_tables(loaded, catalog, warn)
    lake = specs.connection(spec.target).table_format == "iceberg"
    externals: dict[str, dg.AssetSpec] = {}
    tables: dict[str, dg.AssetSpec] = {}
    current: dict[str, dg.AssetSpec] = {}
    for qualified in qualified_names:
        table = catalog.table(qualified) if catalog else None
        externals[qualified] = translator.get_asset_spec(
            CdcAssetProps("source_table", qualified=qualified, table=table, **common)
        )
        table_meta = {**base_meta, "value_rules": _value_rules(table, source_kind, target_kind)}
        if spec.streams:
            table_meta.update(source_connector=names.source_connector, sink_connector=names.sink_connector,
                              topic=table_topic(specs.connection(spec.source), names, qualified))  # fmt: skip
        name = target_table_name(spec, qualified)
        tables[qualified] = translator.get_asset_spec(CdcAssetProps(
            "target_table", qualified=qualified, table=table, target_table=name + CHANGE_LOG_SUFFIX if lake else name,
            applies=ddl_by_table.get(qualified), metadata=table_meta,
            upstream=(externals[qualified].key, schema.key), **common,
        ))  # fmt: skip
        if lake:
            current[qualified] = translator.get_asset_spec(CdcAssetProps(
                "current_state", qualified=qualified, table=table, target_table=name, metadata=base_meta,
                upstream=(tables[qualified].key,), **common,
            ))  # fmt: skip

    source = sink = None
    if spec.streams:
        connector_meta = {**base_meta, "source_connector": names.source_connector,
                          "sink_connector": names.sink_connector}  # fmt: skip
        if source_kind == "postgresql":
            connector_meta.update(slot=names.slot, publication=names.publication)
        source_applies = config_hash(plan.source_config) if plan and plan.source_config else None
        source = translator.get_asset_spec(CdcAssetProps(
            "source_connector", applies=source_applies, source_tables=tuple(qualified_names),
            metadata={**connector_meta, "config_hash": source_applies},
            upstream=tuple(externals[q].key for q in qualified_names), **common,
        ))  # fmt: skip
        if target_traits(
            target_kind
        ).sink_connector:  # else the platform's own writer (cdc_platform/dagster/s3_writer.py)
            sink_applies = config_hash(plan.sink_config) if plan and plan.sink_config else None
            sink = translator.get_asset_spec(CdcAssetProps(
                "sink_connector", applies=sink_applies, source_tables=tuple(qualified_names),
                metadata={**connector_meta, "config_hash": sink_applies}, upstream=(source.key,), **common,
            ))  # fmt: skip
    keys = PipelineKeys(
        spec.name, schema.key, {q: s.key for q, s in tables.items()}, {q: s.key for q, s in externals.items()},
        source.key if source else None, sink.key if sink else None, {q: c.key for q, c in current.items()},
    )  # fmt: skip
    return PipelineSpecs(schema, tables, externals, source, sink, keys, current)
