"""Commands on the specs: ``validate``, ``plan``, ``discover``, ``refresh`` (the stored table catalog)
and ``apply-drift`` (the target DDL the schema_drift check proposes, applied on request)."""

from __future__ import annotations

import json

import click
import sqlalchemy as sa

from cdc_platform.cli.common import UserError, connect_resource
from cdc_platform.cli.spec_access import pipeline_tables, read_specs, require_pipeline, specs_option
from cdc_platform.connectors.diff import mask
from cdc_platform.dagster.catalog import (
    CatalogRefreshError,
    discover_catalog,
    follow_catalog,
    stored_catalog_path,
    write_catalog,
)
from cdc_platform.db import engine_for
from cdc_platform.engines.kinds import target_traits
from cdc_platform.pipeline.deployed import deployed_tables
from cdc_platform.pipeline.plan import build_plan, target_name, value_rule_warnings
from cdc_platform.quality.schema_follow import apply_review, review
from cdc_platform.s3.changes import consumer_group
from cdc_platform.s3.storage import TableLocation
from cdc_platform.schema.discovery import describe_table
from cdc_platform.secrets import SecretMissing, resolve_secret
from cdc_platform.settings import load_stack_settings


@click.command("validate")
@specs_option
@click.option("--offline", is_flag=True, help="Only check the files; do not connect to sources.")
def validate(specs_dir: str | None, offline: bool) -> None:
    """Validate specs: syntax, fields, references, secrets, and (unless --offline) that every table exists."""
    specs = read_specs(specs_dir)
    problems = []
    for name, loaded in sorted(specs.pipelines.items()):
        for role in ("source", "target"):
            conn = specs.connection(getattr(loaded.spec, role))
            if conn.password is not None:
                try:
                    resolve_secret(conn.password, specs.directory)
                except SecretMissing as exc:
                    problems.append(f"{specs.connection_files[conn.name]}: pipeline {name!r}: field "
                                    f"'connections.{conn.name}.password': {exc}")  # fmt: skip
    if problems:
        raise UserError("the specs are invalid:\n" + "\n".join(problems))
    for name in sorted(specs.pipelines):
        if not offline:
            tables = pipeline_tables(specs, name)
            click.echo(f"pipeline {name}: ok ({len(tables)} tables)")
        else:
            click.echo(f"pipeline {name}: ok")
    click.echo(
        f"{len(specs.connections)} connections, {len(specs.pipelines)} pipelines valid in {specs.directory}"
    )


@click.command("plan")
@click.argument("pipeline")
@specs_option
def plan(pipeline: str, specs_dir: str | None) -> None:
    """Show the DDL and the connector configs (secrets masked) a pipeline would deploy."""
    specs = read_specs(specs_dir)
    tables = pipeline_tables(specs, pipeline)
    the_plan = build_plan(
        specs, specs.pipelines[pipeline].spec, tables, load_stack_settings().kafka_bootstrap
    )
    click.echo(
        f"-- pipeline {pipeline}: {the_plan.source.name} -> {the_plan.target.name} ({the_plan.spec.mode.value})"
    )
    for stmt in the_plan.ddl:
        click.echo(stmt + ";\n")
    if the_plan.source_setup:
        click.echo(f"-- on source {the_plan.source.name}, before capture starts (SQL Server CDC)")
        for stmt in the_plan.source_setup:
            click.echo(stmt + ";\n")
    for warning in value_rule_warnings(the_plan):
        click.echo(f"-- warning: {warning}")
    for label, config in (("source", the_plan.source_config), ("sink", the_plan.sink_config)):
        if config:
            click.echo(f"-- {label} connector")
            click.echo(json.dumps(mask(config), indent=2))
    if not target_traits(the_plan.target.kind.value).sink_connector:  # the platform's writer: where it writes
        click.echo(
            f"-- S3 writer (sensor cdc_s3_writer, consumer group {consumer_group(pipeline)}): Parquet files"
        )
        for table in the_plan.tables:
            where = TableLocation.of(
                the_plan.target, the_plan.spec.target_schema, target_name(the_plan.spec, table)
            )
            click.echo(f"--   {table.qualified} -> {where.uri} (snapshot/, changes/)")


@click.command("discover")
@click.argument("connection")
@specs_option
@click.option("--schema", help="Only this schema (database for MySQL/MariaDB).")
def discover(connection: str, specs_dir: str | None, schema: str | None) -> None:
    """List schemas, tables and columns (with mapped types and keys) of a connection."""
    specs = read_specs(specs_dir)
    if connection not in specs.connections:
        raise UserError(f"unknown connection {connection!r}; known: {', '.join(sorted(specs.connections))}")
    conn = specs.connection(connection)
    engine = engine_for(conn, specs.directory)
    try:
        inspector = sa.inspect(engine)
        system = {"information_schema", "pg_catalog", "pg_toast", "mysql", "performance_schema", "sys"}
        schemas = [schema] if schema else [s for s in inspector.get_schema_names() if s not in system]
        for sch in schemas:
            click.echo(f"schema {sch}")
            for table in sorted(inspector.get_table_names(schema=sch)):
                t = describe_table(engine, conn.kind.value, sch, table)
                click.echo(f"  table {table}  primary key: {', '.join(t.primary_key) or 'NONE'}")
                for c in t.columns:
                    click.echo(
                        f"    {c.name:30} {c.native_type:28} -> {str(c.type):16} {'NULL' if c.nullable else 'NOT NULL'}"
                    )
    except sa.exc.OperationalError as exc:
        raise UserError(f"cannot connect to {connection!r}: {str(exc.orig).splitlines()[0]}") from exc
    finally:
        engine.dispose()


@click.command("refresh")
@specs_option
def refresh(specs_dir: str | None) -> None:
    """Discover every pipeline's tables and store the catalog the code location loads from.

    The same as `dg utils refresh-defs-state` for this project. Run it after adding a pipeline or a
    table a schema + glob selection picks up, then reload the code location.
    """
    specs = read_specs(specs_dir)
    path = stored_catalog_path(specs.directory)
    try:
        catalog = discover_catalog(specs)
    except CatalogRefreshError as exc:
        raise UserError(str(exc)) from exc
    write_catalog(catalog, path)
    for name, pipeline in sorted(catalog.pipelines.items()):
        click.echo(f"pipeline {name}: {len(pipeline.tables)} tables")
    click.echo(f"Stored in {path}; reload the code location (or restart `dg dev`) to see the assets.")


@click.command("apply-drift")
@click.argument("pipeline")
@specs_option
@click.option("--table", "tables", multiple=True, help="Only this source schema.table (repeatable).")
@click.option("--yes", is_flag=True, help="Run the statements; without it they are only shown.")
def apply_drift(pipeline: str, specs_dir: str | None, tables: tuple[str, ...], yes: bool) -> None:
    """Show, then on --yes apply, the source schema changes the platform did not apply by itself.

    Safe changes are applied by the schema_changes sensor; this is the review of the rest (a type
    change, a rename, ...), or of every change when the pipeline's policy is ``safe: review``. After
    applying, the tables are recorded as deployed with their new columns (and the stored catalog, if
    any, is refreshed), the held-change alerts resolve, and a pipeline the platform paused for the
    change resumes from where it stopped.
    """
    specs = read_specs(specs_dir)
    require_pipeline(specs, pipeline)
    if not deployed_tables(pipeline):
        raise UserError(
            f"pipeline {pipeline!r} has not been deployed: materialize it first (there is nothing to compare with)"
        )
    unknown = sorted(set(tables) - set(deployed_tables(pipeline)))
    if unknown:
        raise UserError(f"pipeline {pipeline!r} does not replicate {', '.join(unknown)}")
    reviewed = review(specs, pipeline, list(tables) or None)
    for table in reviewed.tables:
        for change in table.drift.changes:
            click.echo(f"-- {table.qualified}: {change.description}")
    if not reviewed.tables:
        click.echo(f"pipeline {pipeline}: no DDL to apply")
        return
    for statement in reviewed.statements:
        click.echo(statement + ";")
    if not yes:
        click.echo("-- not applied: review the statements, then run again with --yes")
        return
    try:
        refreshed = apply_review(specs, pipeline, connect_resource(), reviewed)
    except Exception as exc:  # noqa: BLE001 - the database's own words, and nothing half-applied on PostgreSQL
        raise UserError(f"applying the DDL for {pipeline!r} failed: {type(exc).__name__}: {exc}") from exc
    in_catalog = follow_catalog(specs, pipeline, refreshed)
    touched = ", ".join(t.qualified for t in reviewed.tables)
    click.echo(f"applied {len(reviewed.statements)} statement(s); {touched} recorded as deployed with the "
               "source's columns now" + (" and the stored catalog refreshed (reload the code location)" if in_catalog else ""))  # fmt: skip
