"""Pipelines become Dagster assets: one ``multi_asset`` per pipeline, built from specs with no I/O.

Per pipeline: ``<pipeline>/target_schema``, one asset per replicated target table (keyed by target
connection, schema and table, depending on an external asset for its source table so lineage reads
source -> target -> downstream), and ``<pipeline>/source_connector`` / ``<pipeline>/sink_connector``.
A :class:`CdcTranslator` decides keys, groups and kinds; subclass it to change them.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg

from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.pipeline.execute import run_pipeline
from cdc_platform.pipeline.plan import build_plan
from cdc_platform.schema.discovery import Table, discover_pipeline_tables
from cdc_platform.schema.rules import describe_rules
from cdc_platform.specs.loader import LoadedPipeline, Specs


class CdcSettingsResource(dg.ConfigurableResource):
    """Where the specs live and which Kafka the connectors' schema-history topics use."""

    specs_dir: str
    kafka_bootstrap: str


@dataclass(frozen=True)
class TableProps:
    pipeline: str
    source_connection: str
    source_schema: str
    source_table: str
    target_connection: str
    target_schema: str
    target_table: str


class CdcTranslator:
    """Asset keys and attributes for pipeline parts; keys are stable across deploys."""

    def source_table_key(self, p: TableProps) -> dg.AssetKey:
        return dg.AssetKey([p.source_connection, p.source_schema, p.source_table])

    def target_table_spec(self, p: TableProps) -> dg.AssetSpec:
        return dg.AssetSpec(
            key=dg.AssetKey([p.target_connection, p.target_schema, p.target_table]),
            deps=[self.source_table_key(p), self.schema_key(p.pipeline)],
            group_name=p.pipeline,
            kinds={"table"},
            description=f"{p.target_schema}.{p.target_table}, replicated from {p.source_connection} "
            f"{p.source_schema}.{p.source_table} by pipeline {p.pipeline}",
            metadata={"dagster/table_name": f"{p.target_connection}.{p.target_schema}.{p.target_table}"},
            tags={"cdc/pipeline": p.pipeline},
        )

    def schema_key(self, pipeline: str) -> dg.AssetKey:
        return dg.AssetKey([pipeline, "target_schema"])

    def connector_key(self, pipeline: str, role: str) -> dg.AssetKey:
        return dg.AssetKey([pipeline, f"{role}_connector"])


def _selected_names(loaded: LoadedPipeline, specs: Specs) -> list[str]:
    """Named tables come from the spec alone. A schema + pattern selection needs the source catalog:
    it is read once at load with a short timeout; if the source is unreachable the code location
    still loads, with only the named tables, and says so in the log."""
    spec = loaded.spec
    names = list(spec.tables.names)
    if spec.tables.schema_:
        try:
            from cdc_platform.db import engine_for

            source = specs.connection(spec.source)
            engine = engine_for(source, specs.directory, connect_args={"connect_timeout": 5})
            names += [t.qualified for t in discover_pipeline_tables(spec, source, specs.directory, engine)
                      if t.qualified not in names]  # fmt: skip
            engine.dispose()
        except Exception as exc:  # noqa: BLE001 - loading must survive an unreachable source
            dg.get_dagster_logger().warning(
                f"{loaded.file}: pipeline {spec.name!r}: tables of schema {spec.tables.schema_!r} could not be "
                f"discovered at load ({type(exc).__name__}); only explicitly named tables have assets"
            )
    return names


def _table_props(loaded: LoadedPipeline, specs: Specs) -> list[TableProps]:
    spec = loaded.spec
    props = []
    for qualified in _selected_names(loaded, specs):
        schema, table = qualified.split(".")
        override = spec.overrides.get(qualified)
        props.append(
            TableProps(
                spec.name,
                spec.source,
                schema,
                table,
                spec.target,
                spec.target_schema,
                override.target_name if override and override.target_name else table,
            )  # fmt: skip
        )
    return props


def _column_schema(table: Table) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name,
                str(c.type),
                description=f"source type {c.native_type}",
                constraints=dg.TableColumnConstraints(
                    nullable=c.nullable, unique=c.name in table.primary_key and len(table.primary_key) == 1
                ),
            )
            for c in table.columns
        ]  # fmt: skip
    )


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

    The table list of a schema + pattern selection was fixed when the code location loaded; a table
    created since (or missed because the source was unreachable then) would otherwise stream its
    changes without its existing rows, and one dropped since would leave an asset nothing fills.
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
            "Reload the code location (Dagster UI: Deployment > Reload, or restart `dagster dev`) so "
            "that every table the pipeline captures is copied first, then materialize again."
        )


def _substitution_metadata(table: Table, stats, plan) -> dict:
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


def build_pipeline_assets(loaded: LoadedPipeline, specs: Specs, translator: CdcTranslator | None = None):
    translator = translator or CdcTranslator()
    spec = loaded.spec
    props = _table_props(loaded, specs)
    table_specs = {p.source_schema + "." + p.source_table: translator.target_table_spec(p) for p in props}
    schema_spec = dg.AssetSpec(
        translator.schema_key(spec.name), group_name=spec.name, kinds={spec.target},
        description=f"Target schema {spec.target_schema} on {spec.target} and its tables' DDL",
    )  # fmt: skip
    specs_list = [schema_spec, *table_specs.values()]
    source_key = translator.connector_key(spec.name, "source")
    sink_key = translator.connector_key(spec.name, "sink")
    if spec.streams:
        specs_list.append(
            dg.AssetSpec(
                source_key,
                group_name=spec.name,
                kinds={"debezium", "kafka"},
                deps=[s.key for s in table_specs.values()] or [schema_spec.key],
                description=f"Debezium source connector for pipeline {spec.name}",
            )  # fmt: skip
        )
        specs_list.append(
            dg.AssetSpec(
                sink_key,
                group_name=spec.name,
                kinds={"kafka"},
                deps=[source_key, *[s.key for s in table_specs.values()]],
                description=f"JDBC sink connector for pipeline {spec.name} (upsert + delete)",
            )  # fmt: skip
        )

    @dg.multi_asset(
        name=f"{spec.name}_pipeline",
        specs=specs_list,
        can_subset=True,
        description=spec.description
        or f"CDC pipeline {spec.name}: {spec.source} -> {spec.target} ({spec.mode.value})",
        op_tags={"cdc/pipeline": spec.name},
    )
    def _pipeline(
        context: dg.AssetExecutionContext,
        kafka_connect: KafkaConnectResource,
        cdc_settings: CdcSettingsResource,
    ) -> Iterator[dg.MaterializeResult]:
        selected = context.selected_asset_keys
        with named_errors(loaded):
            tables = discover_pipeline_tables(spec, specs.connection(spec.source), specs.directory)
            check_tables_match_assets(loaded, tables, set(table_specs))
            plan = build_plan(specs, spec, tables, cdc_settings.kafka_bootstrap)
        to_copy = {
            t.qualified
            for t in tables
            if t.qualified in table_specs and table_specs[t.qualified].key in selected
        }
        with named_errors(loaded):
            result = run_pipeline(
                plan, specs.directory, kafka_connect if spec.streams else None, context.log.info,
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
            metadata = {
                "dagster/column_schema": _column_schema(table),
                "primary_key": ", ".join(table.primary_key),
                "declared_key": table.declared_key,
            }
            if stats is not None:
                metadata.update({
                    "dagster/row_count": stats.rows, "rows": stats.rows,
                    "seconds": round(stats.seconds, 3), "rows_per_second": round(stats.rows_per_second, 1),
                })  # fmt: skip
                if stats.bytes is not None:
                    metadata["bytes"] = stats.bytes
                metadata.update(_substitution_metadata(table, stats, plan))
            yield dg.MaterializeResult(asset_key=table_spec.key, metadata=metadata)
        for role, key in (("source", source_key), ("sink", sink_key)):
            if key in selected and role in result.connectors:
                c = result.connectors[role]
                yield dg.MaterializeResult(
                    asset_key=key,
                    metadata={
                        "connector": c.name, "action": c.action, "config_hash": c.config_hash,
                        "state": c.state or "unknown",
                        "config_diff": dg.MetadataValue.json(c.diff) if c.diff else dg.MetadataValue.text("none"),
                    },
                )  # fmt: skip

    externals = [
        dg.AssetSpec(
            translator.source_table_key(p),
            group_name=f"{p.source_connection}_source",
            kinds={"source"},
            description=f"{p.source_schema}.{p.source_table} on {p.source_connection}",
        )  # fmt: skip
        for p in props
    ]
    return _pipeline, externals


def build_all_assets(specs: Specs, translator: CdcTranslator | None = None) -> list:
    assets: list = []
    seen_external: set[dg.AssetKey] = set()
    for loaded in specs.pipelines.values():
        pipeline_assets, externals = build_pipeline_assets(loaded, specs, translator)
        assets.append(pipeline_assets)
        for ext in externals:
            if ext.key not in seen_external:
                seen_external.add(ext.key)
                assets.append(ext)
    return assets
