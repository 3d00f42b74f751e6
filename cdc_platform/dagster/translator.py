"""How pipeline parts become asset specs: the one place that decides keys, kinds, groups and metadata.

Modelled on ``DagsterSlingTranslator`` / ``DagsterDltTranslator``: the builder hands the translator
what it knows about a part (:class:`CdcAssetProps`) and gets an ``AssetSpec`` back. Subclass
:class:`CdcTranslator` and override ``get_asset_spec`` (calling ``super()`` and ``replace_attributes``)
to change keys or attributes: every other part of the code location (dependencies, checks, sensors,
jobs) takes its keys from the specs this returns (``cdc_platform/dagster/asset_specs.py``). Keys are stable
across deploys because they derive from connection, schema and table names only. The ``*_key``
methods are the defaults ``get_asset_spec`` starts from, not a second place to change keys.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Literal

import dagster as dg

# Dagster exports these metadata sets from here only (dagster-sling and dagster-dlt do the same).
from dagster._core.definitions.metadata import NamespacedMetadataSet

from cdc_platform.engines.kinds import ENGINE_KINDS
from cdc_platform.schema.model import Table
from cdc_platform.specs.models import PipelineSpec

Role = Literal[
    "source_table", "target_table", "target_schema", "source_connector", "sink_connector", "current_state"
]


class CdcMetadataSet(NamespacedMetadataSet):
    """What a CDC user looks up on an asset: which pipeline, connectors, slot and topics carry it."""

    pipeline: str | None = None
    source_connection: str | None = None
    target_connection: str | None = None
    source_connector: str | None = None
    sink_connector: str | None = None
    slot: str | None = None
    publication: str | None = None
    topic: str | None = None
    config_hash: str | None = None
    value_rules: str | None = None
    discovered_at: str | None = None

    @classmethod
    def namespace(cls) -> str:
        return "cdc"


_CDC_FIELDS = frozenset(CdcMetadataSet.model_fields)


#: Metadata values are given already wrapped: Dagster normalizes a raw value each time it reads a spec's
#: metadata (the asset's op output, its snapshot, deps by table name), about three times an asset; a
#: wrapped value passes through. 272,000 normalizations at 500 x 20, 1.2 s under the profiler.
_text = dg.MetadataValue.text


def cdc_metadata(**fields: str | None) -> dict[str, dg.MetadataValue]:
    """The entries of ``dict(CdcMetadataSet(**fields))``, as text values, without a pydantic model per asset.

    Built for thousands of assets at every code-location load, where the model's validation was a
    measurable share of the load time; ``CdcMetadataSet.extract`` still reads it back."""
    unknown = set(fields) - _CDC_FIELDS
    if unknown:
        raise TypeError(f"not CdcMetadataSet fields: {sorted(unknown)}")
    return {f"cdc/{key}": _text(value) for key, value in fields.items() if value is not None}


def table_metadata(
    table_name: str, schema: dg.TableSchema | None, lineage: dg.TableColumnLineage | None = None
) -> dict:
    """``dict(TableMetadataSet(...))`` for the keys we set, built directly for the same reason."""
    out: dict = {"dagster/table_name": _text(table_name)}
    if schema is not None:
        out["dagster/column_schema"] = dg.MetadataValue.table_schema(schema)
    if lineage is not None:
        out["dagster/column_lineage"] = dg.MetadataValue.column_lineage(lineage)
    return out


@dataclass(frozen=True)
class CdcAssetProps:
    """Everything known about one part of a pipeline when its definitions are built (no I/O)."""

    role: Role
    pipeline: PipelineSpec
    source_kind: str
    target_kind: str
    #: source ``schema.table`` for table roles
    qualified: str | None = None
    #: the table as last discovered (None when the catalog has not been refreshed yet)
    table: Table | None = None
    target_table: str | None = None
    #: DDL or connector config the materialization applies; hashed into the code version
    applies: str | None = None
    metadata: dict | None = None
    #: source ``schema.table`` names a connector carries
    source_tables: tuple[str, ...] = ()
    #: the keys the specs upstream of this one got from ``get_asset_spec`` (so an override of a key
    #: moves every dependency on it): target_table (source table, target schema); source_connector
    #: (its source tables); sink_connector (the source connector). None: the default keys.
    upstream: tuple[dg.AssetKey, ...] | None = None


def code_version(text: str | None) -> str | None:
    """A short hash of what a materialization applies: a changed spec or mapped DDL flags the asset."""
    return hashlib.sha256(text.encode()).hexdigest()[:16] if text else None


def column_schema(table: Table) -> dg.TableSchema:
    """One per table object: the source and target assets of a table share it (load time)."""
    return _column_schema(table)


@functools.lru_cache(maxsize=65_536)
def _column_schema(table: Table) -> dg.TableSchema:
    single_key = len(table.primary_key) == 1
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name,
                str(c.type),
                description=f"source type {c.native_type}"
                + (" (primary key)" if c.name in table.primary_key else ""),
                constraints=dg.TableColumnConstraints(
                    nullable=c.nullable and c.name not in table.primary_key,
                    unique=single_key and c.name in table.primary_key,
                ),
                tags={"primary_key": ""} if c.name in table.primary_key else {},
            )
            for c in table.columns
        ]
    )


def _replica_metadata(props: CdcAssetProps, upstream: dg.AssetKey) -> dict:
    """A target table's name, column schema and each column's lineage to the same column upstream."""
    p = props.pipeline
    lineage = None
    if props.table is not None:
        lineage = dg.TableColumnLineage(
            deps_by_column={
                c.name: [dg.TableColumnDep(asset_key=upstream, column_name=c.name)]
                for c in props.table.columns
            }
        )
    return table_metadata(
        f"{p.target}.{p.target_schema}.{props.target_table}",
        column_schema(props.table) if props.table else None,
        lineage,
    )


class CdcTranslator:
    """Asset keys and attributes for pipeline parts."""

    # -- keys ------------------------------------------------------------------------------------
    def source_table_key(self, pipeline: PipelineSpec, qualified: str) -> dg.AssetKey:
        schema, table = qualified.split(".")
        return dg.AssetKey([pipeline.source, schema, table])

    def target_table_key(self, pipeline: PipelineSpec, target_table: str) -> dg.AssetKey:
        return dg.AssetKey([pipeline.target, pipeline.target_schema, target_table])

    def schema_key(self, pipeline: PipelineSpec) -> dg.AssetKey:
        return dg.AssetKey([pipeline.name, "target_schema"])

    def connector_key(self, pipeline: PipelineSpec, role: str) -> dg.AssetKey:
        return dg.AssetKey([pipeline.name, f"{role}_connector"])

    def worker_key(self) -> dg.AssetKey:
        return dg.AssetKey(["kafka_connect_worker"])

    def worker_spec(self) -> dg.AssetSpec:
        """The Kafka Connect worker every pipeline deploys to. Nothing materializes it: the health
        sensor observes it (reachable, connectors, and connectors no pipeline spec owns)."""
        return dg.AssetSpec(
            self.worker_key(), group_name="cdc_platform", kinds={"kafka"},
            description="The Kafka Connect worker. Observed by the health sensor: whether it answers, how many "
            "connectors run there, and orphans (connectors no pipeline spec owns; `cdc-platform orphans`).",
        )  # fmt: skip

    # -- specs -----------------------------------------------------------------------------------
    def get_asset_spec(self, props: CdcAssetProps) -> dg.AssetSpec:
        builder = {
            "source_table": self._source_table,
            "target_table": self._target_table,
            "target_schema": self._target_schema,
            "source_connector": self._connector,
            "sink_connector": self._connector,
            "current_state": self._current_state,
        }[props.role]
        return builder(props)

    def _common(self, props: CdcAssetProps) -> dict:
        p = props.pipeline
        return {
            "group_name": p.name,
            "owners": list(p.owners),
            "tags": {**p.tags, "cdc/pipeline": p.name},
            "code_version": code_version(props.applies),
        }

    def _source_table(self, props: CdcAssetProps) -> dg.AssetSpec:
        p, qualified = props.pipeline, props.qualified or ""
        table = table_metadata(f"{p.source}.{qualified}", column_schema(props.table) if props.table else None)
        return dg.AssetSpec(
            self.source_table_key(p, qualified),
            group_name=f"{p.source}_source",
            kinds={ENGINE_KINDS[props.source_kind]},
            description=f"{qualified} on {p.source}: a source table, read by CDC pipelines (not materialized here)",
            metadata={**table, **cdc_metadata(source_connection=p.source)},
        )

    def _target_table(self, props: CdcAssetProps) -> dg.AssetSpec:
        p, qualified = props.pipeline, props.qualified or ""
        source_key, schema_key = props.upstream or (self.source_table_key(p, qualified), self.schema_key(p))
        table = _replica_metadata(props, source_key)
        copy = (
            "copies it in one consistent read (a re-load through a shadow table: a failed one keeps the old rows)"
            if p.copies
            else "creates it if missing (cdc_only: no copy)"
        )
        cdc = (
            "; then the sink applies every change. On a running pipeline: a re-copy, the sink held meanwhile, no "
            "change lost; refused while paused or stopped (cdc_resume first)"
            if p.streams
            else ""
        )
        return dg.AssetSpec(
            self.target_table_key(p, props.target_table or ""),
            deps=[source_key, schema_key],
            kinds={ENGINE_KINDS[props.target_kind]},
            description=f"{p.target_schema}.{props.target_table} on {p.target}, replicated from {p.source} "
            f"{qualified} by pipeline {p.name}. Materializing {copy}{cdc}.",
            metadata={**table, **cdc_metadata(**(props.metadata or {}))},
            **self._common(props),
        )

    def _current_state(self, props: CdcAssetProps) -> dg.AssetSpec:
        """An Iceberg target's current-state table, merged from its change log (the upstream key)."""
        p = props.pipeline
        (change_log,) = props.upstream or (self.target_table_key(p, f"{props.target_table}_changes"),)
        table = _replica_metadata(props, change_log)
        return dg.AssetSpec(
            self.target_table_key(p, props.target_table or ""),
            deps=[change_log],
            kinds={"iceberg", ENGINE_KINDS[props.target_kind]},
            description=f"Iceberg table {p.target_schema}.{props.target_table} on {p.target}: the current state of "
            f"{props.qualified} (one row per key, deletes applied), merged from its change log by pipeline {p.name}. "
            "Materializing merges only what the change log gained since the last merge; each merge is an Iceberg "
            "snapshot (time travel by snapshot id or timestamp). Kept current by an automation condition.",
            metadata={**table, **cdc_metadata(**(props.metadata or {}))},
            automation_condition=dg.AutomationCondition.eager(),
            **self._common(props),
        )

    def _target_schema(self, props: CdcAssetProps) -> dg.AssetSpec:
        p = props.pipeline
        return dg.AssetSpec(
            self.schema_key(p),
            kinds={ENGINE_KINDS[props.target_kind]},
            description=f"Schema {p.target_schema} on {p.target}. Materializing creates it and every selected "
            "table from the mapped DDL where missing; nothing is dropped or altered.",
            metadata=cdc_metadata(**(props.metadata or {})),
            **self._common(props),
        )

    def _connector(self, props: CdcAssetProps) -> dg.AssetSpec:
        p = props.pipeline
        meta = props.metadata or {}
        if props.role == "source_connector":
            return dg.AssetSpec(
                self.connector_key(p, "source"),
                deps=list(props.upstream)
                if props.upstream is not None
                else [self.source_table_key(p, q) for q in props.source_tables],
                kinds={"debezium", "kafka", ENGINE_KINDS[props.source_kind]},
                description=f"Debezium source connector {meta.get('source_connector')} reading {p.source}. "
                "Materializing creates or updates it (and the slot and publication on PostgreSQL); an "
                "unchanged config is left alone.",
                metadata=cdc_metadata(**meta),
                **self._common(props),
            )
        return dg.AssetSpec(
            self.connector_key(p, "sink"),
            deps=list(props.upstream) if props.upstream is not None else [self.connector_key(p, "source")],
            kinds={"debezium", "kafka", ENGINE_KINDS[props.target_kind]},
            description=f"Debezium JDBC sink connector {meta.get('sink_connector')} writing the pipeline's topics into "
            f"{p.target} {p.target_schema} (upserts and deletes). Materializing creates or updates it.",
            metadata=cdc_metadata(**meta),
            **self._common(props),
        )
