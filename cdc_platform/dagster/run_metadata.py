"""What a materialization reports on each asset: a run's results turned into Dagster metadata.

Kept apart from the asset definitions, so the figures a user reads (rows, bytes, rows/s, values a
rule changed, DDL, connector diff and audit) are shaped in one place and testable without a run.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.metadata import TableMetadataSet

from cdc_platform.audit import audit_table, entries
from cdc_platform.dagster.translator import column_schema
from cdc_platform.pipeline.plan import PipelinePlan, target_table_name
from cdc_platform.schema.model import Table
from cdc_platform.schema.rules import describe_rules


def schema_metadata(result, tables: list[Table]) -> dict:
    return {
        "ddl": dg.MetadataValue.md("```sql\n" + ";\n\n".join(result.ddl) + ";\n```"),
        "tables": len(tables),
    }


def table_metadata(table: Table, stats, plan: PipelinePlan) -> dict:
    """A table's columns and key, and, when this run copied it, the copy's figures and value rules."""
    metadata: dict = {
        **dict(
            TableMetadataSet(
                column_schema=column_schema(table), row_count=stats.rows if stats is not None else None
            )
        ),
        "primary_key": ", ".join(table.primary_key),
        "declared_key": table.declared_key,
    }
    if stats is None:
        return metadata
    metadata["full_load"] = full_load_figures(stats)
    if plan.target.kind.value == "s3":  # where the snapshot's Parquet files are
        # lazy: keeps pyarrow and boto3 off the code location's load path
        from cdc_platform.s3.storage import TableLocation

        where = TableLocation.of(
            plan.target, plan.spec.target_schema, target_table_name(plan.spec, table.qualified)
        )
        metadata["path"] = dg.MetadataValue.path(f"s3://{where.snapshot_dir}/")
    metadata.update(substitution_metadata(table, stats, plan))
    return metadata


def full_load_figures(stats) -> dg.MetadataValue:
    """The copy's figures as one text entry, not numbers: the UI plots every numeric entry across
    materializations, and a load's duration beside the minute-by-minute metrics reads as a series
    it is not. Its row count stays numeric, as ``dagster/row_count``, which the metrics extend."""
    size = f"{stats.bytes:,} bytes" if stats.bytes is not None else "size not measured"
    return dg.MetadataValue.md(
        "| rows copied | size | seconds | rows/s |\n|---|---|---|---|\n"
        f"| {stats.rows:,} | {size} | {stats.seconds:,.3f} | {stats.rows_per_second:,.1f} |"
    )


def connector_metadata(c) -> dict:
    """A deployed connector: what the run did to it, its config hash and diff, its recent audit."""
    return {
        "connector": c.name, "action": c.action, "cdc/config_hash": c.config_hash, "state": c.state or "unknown",
        "config_diff": dg.MetadataValue.json(c.diff) if c.diff else dg.MetadataValue.text("none"),
        "audit": dg.MetadataValue.md(audit_table(entries(target=c.name, limit=5))),
    }  # fmt: skip


def substitution_metadata(table: Table, stats, plan: PipelinePlan) -> dict:
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
