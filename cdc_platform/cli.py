"""``cdc-platform``: the local stack and the pipeline specs from the command line.

Every user-facing failure is raised as an exception carrying a full sentence; :func:`main` prints
it as ``error: ...`` and exits 1, so no traceback reaches the user without a sentence on top.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import click

from cdc_platform.engines.kinds import target_traits
from cdc_platform.settings import load_stack_settings
from cdc_platform.stack.errors import StackError


class UserError(click.ClickException):
    def show(self, file=None) -> None:  # noqa: D102 - same contract as click's
        click.echo(f"error: {self.message}", err=True)


def _settings():
    try:
        return load_stack_settings()
    except ValueError as exc:
        raise UserError(str(exc)) from exc


@click.group()
def cli() -> None:
    """Change Data Capture pipelines on Dagster, Kafka Connect and Debezium."""


@cli.group()
def stack() -> None:
    """The local stack: PostgreSQL, MariaDB, Kafka (KRaft), Kafka Connect + Debezium, S3 (moto)."""


@stack.command("up")
def stack_up() -> None:
    """Install what is missing, then start every service and wait until each is ready."""
    from cdc_platform.stack.manager import up

    try:
        up(_settings(), echo=click.echo)
    except StackError as exc:
        raise UserError(str(exc)) from exc


@stack.command("down")
@click.option("--purge", is_flag=True, help="Also delete data directories (same as `stack reset`).")
def stack_down(purge: bool) -> None:
    """Stop every process the stack started (by pid), and nothing else."""
    from cdc_platform.stack.manager import down, reset

    (reset if purge else down)(_settings(), echo=click.echo)


@stack.command("reset")
def stack_reset() -> None:
    """Stop the stack and delete its data, logs and credentials; keep downloads."""
    from cdc_platform.stack.manager import reset

    reset(_settings(), echo=click.echo)


@stack.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per service.")
def stack_status(as_json: bool) -> None:
    """Show each service's state, address and log file."""
    from cdc_platform.stack.manager import status

    rows = status(_settings())
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    click.echo(f"{'SERVICE':10} {'STATE':8} {'PID':>8}  {'ADDRESS':40} LOG")
    for r in rows:
        click.echo(f"{r.name:10} {r.state:8} {r.pid or '-':>8}  {r.url or f'{r.host}:{r.port}':40} {r.log}")


@stack.command("logs")
@click.argument("service")
@click.option("-n", "--lines", default=50, show_default=True, help="How many trailing lines.")
def stack_logs(service: str, lines: int) -> None:
    """Print the last lines of a service's log."""
    from cdc_platform.stack.processes import tail
    from cdc_platform.stack.services import all_services

    services = {s.name: s for s in all_services(_settings())}
    if service not in services:
        raise UserError(f"unknown service {service!r}; choose one of {', '.join(services)}")
    match = services[service]
    click.echo(tail(match.log_file, lines))


@stack.command("sql", context_settings={"ignore_unknown_options": True})
@click.argument("service", type=click.Choice(["postgres", "mariadb"]))
@click.argument("database", required=False)
@click.argument("client_args", nargs=-1, type=click.UNPROCESSED)
def stack_sql(service: str, database: str | None, client_args: tuple[str, ...]) -> None:
    """Open psql or the mariadb client on the stack as its `cdc` user; extra arguments go to the client.

    The password comes from the stack's secrets file and reaches the client through PGPASSWORD or
    a private defaults file, never through the command line or the terminal.
    """
    import os
    import shutil
    import subprocess
    import tempfile

    from cdc_platform.settings import STACK_DB_USER

    settings = _settings()
    try:
        password = settings.password(service)
    except KeyError as exc:
        raise UserError(str(exc).strip("'\"")) from exc
    if service == "postgres":
        client = shutil.which("psql")
        if client is None:
            raise UserError("psql is not installed (Debian package postgresql-client)")
        cmd = [client, "-h", settings.host, "-p", str(settings.postgres_port), "-U", STACK_DB_USER,
               database or "postgres", *client_args]  # fmt: skip
        sys.exit(subprocess.run(cmd, env={**os.environ, "PGPASSWORD": password}).returncode)
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        raise UserError("the mariadb client is not installed (Debian package mariadb-client)")
    with tempfile.TemporaryDirectory(prefix="cdc-sql-") as private:
        defaults = os.path.join(private, "client.cnf")
        with open(os.open(defaults, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(f"[client]\npassword={password}\n")
        cmd = [client, f"--defaults-extra-file={defaults}", "-h", settings.host, "-P", str(settings.mariadb_port),
               "-u", STACK_DB_USER, *([database] if database else []), *client_args]  # fmt: skip
        code = subprocess.run(cmd).returncode
    sys.exit(code)


# -- specs and pipelines ---------------------------------------------------------------------------
def _specs(specs_dir: str | None):
    from pathlib import Path

    from cdc_platform.specs.loader import SpecErrors, load_specs

    try:
        return load_specs(Path(specs_dir) if specs_dir else None)
    except SpecErrors as exc:
        raise UserError(f"the specs are invalid:\n{exc}") from exc


specs_option = click.option(
    "--specs", "specs_dir", envvar="CDC_SPECS_DIR", help="Specs directory (default resources/)."
)


def _require_pipeline(specs, name: str) -> None:
    if name not in specs.pipelines:
        raise UserError(f"unknown pipeline {name!r}; known: {', '.join(sorted(specs.pipelines)) or 'none'}")


def _pipeline_tables(specs, name: str):
    from cdc_platform.schema.discovery import DiscoveryError, discover_pipeline_tables
    from cdc_platform.secrets import SecretMissing

    _require_pipeline(specs, name)
    loaded = specs.pipelines[name]
    try:
        return discover_pipeline_tables(loaded.spec, specs.connection(loaded.spec.source), specs.directory)
    except (DiscoveryError, SecretMissing) as exc:
        raise UserError(f"{loaded.file}: pipeline {name!r}: field 'tables' / 'source': {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - connection failures: say which connection
        raise UserError(f"{loaded.file}: pipeline {name!r}: cannot read source {loaded.spec.source!r}: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc  # fmt: skip


@cli.command("validate")
@specs_option
@click.option("--offline", is_flag=True, help="Only check the files; do not connect to sources.")
def validate(specs_dir: str | None, offline: bool) -> None:
    """Validate specs: syntax, fields, references, secrets, and (unless --offline) that every table exists."""
    from cdc_platform.secrets import SecretMissing, resolve_secret

    specs = _specs(specs_dir)
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
            tables = _pipeline_tables(specs, name)
            click.echo(f"pipeline {name}: ok ({len(tables)} tables)")
        else:
            click.echo(f"pipeline {name}: ok")
    click.echo(
        f"{len(specs.connections)} connections, {len(specs.pipelines)} pipelines valid in {specs.directory}"
    )


@cli.command("plan")
@click.argument("pipeline")
@specs_option
def plan(pipeline: str, specs_dir: str | None) -> None:
    """Show the DDL and the connector configs (secrets masked) a pipeline would deploy."""
    from cdc_platform.connectors.diff import mask
    from cdc_platform.pipeline.plan import build_plan, value_rule_warnings

    specs = _specs(specs_dir)
    tables = _pipeline_tables(specs, pipeline)
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
        from cdc_platform.pipeline.plan import target_name
        from cdc_platform.s3.changes import consumer_group
        from cdc_platform.s3.storage import TableLocation

        click.echo(
            f"-- S3 writer (sensor cdc_s3_writer, consumer group {consumer_group(pipeline)}): Parquet files"
        )
        for table in the_plan.tables:
            where = TableLocation.of(
                the_plan.target, the_plan.spec.target_schema, target_name(the_plan.spec, table)
            )
            click.echo(f"--   {table.qualified} -> {where.uri} (snapshot/, changes/)")


@cli.command("discover")
@click.argument("connection")
@specs_option
@click.option("--schema", help="Only this schema (database for MySQL/MariaDB).")
def discover(connection: str, specs_dir: str | None, schema: str | None) -> None:
    """List schemas, tables and columns (with mapped types and keys) of a connection."""
    import sqlalchemy as sa

    from cdc_platform.db import engine_for
    from cdc_platform.schema.discovery import describe_table

    specs = _specs(specs_dir)
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


@cli.command("refresh")
@specs_option
def refresh(specs_dir: str | None) -> None:
    """Discover every pipeline's tables and store the catalog the code location loads from.

    The same as `dg utils refresh-defs-state` for this project. Run it after adding a pipeline or a
    table a schema + glob selection picks up, then reload the code location.
    """
    from cdc_platform.dagster.catalog import CatalogRefreshError, stored_catalog_path

    specs = _specs(specs_dir)
    path = stored_catalog_path(specs.directory)
    try:
        from cdc_platform.dagster.catalog import discover_catalog, write_catalog

        catalog = discover_catalog(specs)
    except CatalogRefreshError as exc:
        raise UserError(str(exc)) from exc
    write_catalog(catalog, path)
    for name, pipeline in sorted(catalog.pipelines.items()):
        click.echo(f"pipeline {name}: {len(pipeline.tables)} tables")
    click.echo(f"Stored in {path}; reload the code location (or restart `dagster dev`) to see the assets.")


@cli.command("apply-drift")
@click.argument("pipeline")
@specs_option
@click.option("--table", "tables", multiple=True, help="Only this source schema.table (repeatable).")
@click.option("--yes", is_flag=True, help="Run the statements; without it they are only shown.")
def apply_drift(pipeline: str, specs_dir: str | None, tables: tuple[str, ...], yes: bool) -> None:
    """Show, then on --yes apply, the target DDL the schema_drift check proposes.

    Nothing changes the target schema by itself: the check proposes, a person reviews and runs this.
    After applying, the tables are recorded as deployed with their new columns (and the stored
    catalog, if any, is refreshed), so the check passes and the new columns' values replicate (the
    sink writes every column the source sends).
    """
    from cdc_platform.dagster.catalog import (
        StoredCatalog,
        discover_catalog,
        read_catalog,
        stored_catalog_path,
        write_catalog,
    )
    from cdc_platform.pipeline.deployed import deployed_tables, update_deployed
    from cdc_platform.pipeline.plan import target_table_name
    from cdc_platform.quality.drift import apply_ddl, measure_drift

    specs = _specs(specs_dir)
    _require_pipeline(specs, pipeline)
    spec = specs.pipelines[pipeline].spec
    path = stored_catalog_path(specs.directory)
    stored = read_catalog(path)
    catalog = stored.pipelines.get(pipeline) if stored else None
    baseline = {t.qualified: t for t in catalog.tables} if catalog else {}
    baseline.update(deployed_tables(pipeline))  # what was deployed wins over the catalog
    if not baseline:
        raise UserError(
            f"pipeline {pipeline!r} has not been deployed: materialize it first (there is nothing to compare with)"
        )
    unknown = sorted(set(tables) - set(baseline))
    if unknown:
        raise UserError(f"pipeline {pipeline!r} does not replicate {', '.join(unknown)}")
    statements: list[str] = []
    #: tables whose drift this run settles: DDL to apply, or only warnings (a dropped column)
    touched: list[str] = []
    for qualified_name, table in sorted(baseline.items()):
        if tables and qualified_name not in tables:
            continue
        drift = measure_drift(specs, spec, table, target_table_name(spec, qualified_name))
        for problem in drift.errors + drift.warnings:
            click.echo(f"-- {qualified_name}: {problem}")
        statements += drift.proposed_ddl
        if drift.proposed_ddl or (drift.warnings and not drift.errors):
            touched.append(qualified_name)
    if not touched:
        click.echo(f"pipeline {pipeline}: no DDL to apply")
        return
    for statement in statements:
        click.echo(statement + ";")
    if not yes:
        click.echo("-- not applied: review the statements, then run again with --yes")
        return
    if statements:
        try:
            apply_ddl(specs, spec, statements)
        except Exception as exc:  # noqa: BLE001 - the database's own words, and nothing half-applied on PostgreSQL
            raise UserError(
                f"applying the DDL on {spec.target!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
    refreshed = discover_catalog(specs, [pipeline]).pipelines[pipeline]
    for table in refreshed.tables:
        if table.qualified in touched:
            update_deployed(pipeline, table)
    if stored is not None and catalog is not None:
        write_catalog(StoredCatalog({**stored.pipelines, pipeline: refreshed}), path)
    click.echo(f"applied {len(statements)} statement(s); {', '.join(touched)} recorded as deployed with the "
               "source's columns now" + (" and the stored catalog refreshed (reload the code location)" if catalog else ""))  # fmt: skip


def _connect_resource():
    import os

    from cdc_platform.kafka_connect import KafkaConnectResource

    return KafkaConnectResource(
        url=os.environ.get("CDC_CONNECT_URL", load_stack_settings().connect_cluster_url)
    )


@cli.command("teardown")
@click.argument("pipeline")
@specs_option
@click.option("--delete-topics", is_flag=True, help="Also delete the pipeline's Kafka topics.")
def teardown(pipeline: str, specs_dir: str | None, delete_topics: bool) -> None:
    """Delete a pipeline's connectors, slot, publication and consumer group; keep the target data.

    Works from the pipeline's name alone: without its spec the source is read back from the source
    connector; with the source down, whatever else exists is removed and the rest is listed (exit 5).
    """
    from cdc_platform.pipeline.teardown import TeardownIncomplete, teardown_pipeline
    from cdc_platform.specs.loader import SpecErrors, default_specs_dir, load_specs

    source, directory = None, default_specs_dir() if specs_dir is None else Path(specs_dir).resolve()
    try:
        specs = load_specs(directory)
        if pipeline in specs.pipelines:
            source = specs.connection(specs.pipelines[pipeline].spec.source)
    except SpecErrors as exc:
        click.echo(
            f"note: the specs could not be read ({str(exc).splitlines()[0]}); tearing down by name", err=True
        )
    stack = load_stack_settings()
    try:
        done = teardown_pipeline(pipeline, _connect_resource(), click.echo, source=source, specs_dir=directory,
                                 delete_topics=delete_topics, kafka_bootstrap=stack.kafka_bootstrap)  # fmt: skip
    except TeardownIncomplete as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(5)
    if not done:
        click.echo(f"pipeline {pipeline}: nothing deployed")


@cli.command("status")
@click.argument("pipeline", required=False)
@specs_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per pipeline.")
def status(pipeline: str | None, specs_dir: str | None, as_json: bool) -> None:
    """Connector and task states, lag and slot WAL of one or every pipeline; a failed task is
    explained (exit 4 when one failed)."""
    from cdc_platform.dagster.connect_health import innermost_cause
    from cdc_platform.health.metrics_store import MetricsStore
    from cdc_platform.ops.diagnosis import explain, first_failed_trace
    from cdc_platform.pipeline.plan import PipelineNames, build_plan

    specs = _specs(specs_dir)
    if pipeline is not None:
        _require_pipeline(specs, pipeline)
    names = [pipeline] if pipeline else sorted(specs.pipelines)
    connect = _connect_resource()
    try:
        overview = connect.overview()
    except Exception as exc:  # noqa: BLE001 - said plainly: states unknown, metrics still shown
        overview, connect_error = None, f"{type(exc).__name__}: {exc}"
    else:
        connect_error = None
    try:
        store = MetricsStore()
    except Exception:  # noqa: BLE001 - no metrics collected yet (or the store is elsewhere)
        store = None
    report, failed = [], False
    for name in names:
        pn = PipelineNames(name)
        latest = store.latest(name) if store else {}
        row: dict = {"pipeline": name, "connectors": {}, "metrics": {}}
        for (subject, metric), (ts, value) in latest.items():
            if subject in ("sink", "source", "pipeline"):
                row["metrics"][f"{subject}.{metric}"] = value
                row["metrics_at"] = max(row.get("metrics_at", 0), ts)
        if not specs.pipelines[name].spec.streams:
            row["connectors"] = "none (full_load_only)"
        to_s3 = not target_traits(
            specs.connection(specs.pipelines[name].spec.target).kind.value
        ).sink_connector
        connectors = (pn.source_connector,) if to_s3 else (pn.source_connector, pn.sink_connector)
        for cname in connectors if specs.pipelines[name].spec.streams else ():
            if overview is None:
                row["connectors"][cname] = {"state": "UNKNOWN", "error": connect_error}
                continue
            entry = overview.get(cname)
            if entry is None:
                row["connectors"][cname] = {"state": "NOT DEPLOYED"}
                continue
            st = entry["status"]
            item = {"state": st["connector"]["state"], "tasks": [t["state"] for t in st.get("tasks", [])]}
            trace = first_failed_trace(st)
            if trace is not None:
                failed = True
                item["error"] = innermost_cause(trace)
                loaded = specs.pipelines[name]
                tables = _pipeline_tables(specs, name)
                the_plan = build_plan(specs, loaded.spec, tables, load_stack_settings().kafka_bootstrap)
                item["explanation"] = explain(the_plan, trace, specs.directory, connect).message
            row["connectors"][cname] = item
        if to_s3 and specs.pipelines[name].spec.streams:
            row["s3_writer"] = _s3_writer_state(specs, name)
        report.append(row)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for row in report:
            m = row["metrics"]
            figures = []
            if "sink.lag_messages" in m:
                figures.append(f"lag {int(m['sink.lag_messages']):,} messages")
            if "pipeline.latency_seconds" in m:
                figures.append(f"latency {m['pipeline.latency_seconds']:.2f} s "
                               f"(last heartbeat {m['pipeline.heartbeat_age_seconds']:.0f} s old)")  # fmt: skip
            if "source.source_ms_behind" in m and m["source.source_ms_behind"] >= 0:
                figures.append(f"source read {m['source.source_ms_behind'] / 1000:.1f} s behind its log")
            if m.get("source.binlog_position_available") == 0:
                figures.append("BINLOG POSITION PURGED (re-load needed)")
            elif "source.binlog_behind_bytes" in m:
                figures.append(f"binlog {m['source.binlog_behind_bytes'] / 2**20:,.1f} MiB unread")
            if m.get("sink.dlq_messages"):
                figures.append(f"{int(m['sink.dlq_messages']):,} messages in the dead-letter topic")
            if m.get("sink.failed_tasks"):
                figures.append(f"{int(m['sink.failed_tasks'])} sink task(s) failed")
            if "source.slot_retained_wal_bytes" in m:
                figures.append(f"slot retains {m['source.slot_retained_wal_bytes'] / 2**20:,.0f} MiB WAL")
                if m.get("source.slot_wal_status_ok") == 0:
                    figures.append("SLOT WAL AT RISK")
            if "metrics_at" in row:
                figures.append(f"measured {time.time() - row['metrics_at']:.0f} s ago")
            click.echo(f"pipeline {row['pipeline']}: {'; '.join(figures) or 'no metrics collected yet'}")
            if isinstance(row["connectors"], str):
                click.echo(f"  connectors: {row['connectors']}")
                continue
            for cname, item in row["connectors"].items():
                tasks = ", ".join(f"task {i} {t}" for i, t in enumerate(item.get("tasks", []))) or "no tasks"
                click.echo(f"  {cname}: {item['state']} ({tasks})")
                if "explanation" in item:
                    click.echo("    " + item["explanation"])
                elif "error" in item:
                    click.echo("    " + str(item["error"]))
            if "s3_writer" in row:
                click.echo(f"  S3 writer: {row['s3_writer']['summary']}")
    if failed:
        sys.exit(4)


def _s3_writer_state(specs, name: str) -> dict:
    """What the S3 writer (the cdc_s3_writer sensor) has to work from, in words: the tables the last run
    deployed, and how many captured changes wait for it."""
    from cdc_platform.pipeline.deployed import deployed_tables
    from cdc_platform.pipeline.plan import PipelineNames, table_topic
    from cdc_platform.s3.changes import waiting_changes

    deployed = sorted(deployed_tables(name))
    if not deployed:
        return {"deployed_tables": [], "summary": "nothing deployed yet: materialize the pipeline; the writer "
                "(sensor cdc_s3_writer, daemon running) starts with its next flush"}  # fmt: skip
    source = specs.connection(specs.pipelines[name].spec.source)
    topics = {q: table_topic(source, PipelineNames(name), q) for q in deployed}
    try:
        waiting = waiting_changes(load_stack_settings().kafka_bootstrap, name, list(topics.values()))
    except Exception as exc:  # noqa: BLE001 - said plainly; the tables are still listed
        return {"deployed_tables": deployed, "summary": f"{len(deployed)} table(s) deployed; changes waiting "
                f"unknown ({type(exc).__name__}: {exc})"}  # fmt: skip
    total = sum(waiting.values())
    return {"deployed_tables": deployed, "waiting_changes": {q: waiting[t] for q, t in topics.items()},
            "summary": f"{len(deployed)} table(s) deployed; {total:,} captured change(s) not written yet"}  # fmt: skip


@cli.command("orphans")
@specs_option
def orphans(specs_dir: str | None) -> None:
    """List connectors on the Connect cluster that no pipeline spec owns (exit 3 when there are any)."""
    from cdc_platform.pipeline.plan import PipelineNames

    specs = _specs(specs_dir)
    owned = set()
    for name in specs.pipelines:
        names = PipelineNames(name)
        owned |= {names.source_connector, names.sink_connector}
    found = sorted(set(_connect_resource().list_connectors()) - owned)
    for name in found:
        click.echo(f"orphan connector {name}: no pipeline spec owns it (delete it with the Connect REST API "
                   "or restore its spec)")  # fmt: skip
    if found:
        sys.exit(3)
    click.echo("no orphan connectors")


@cli.command("test-connection")
@click.argument("names", nargs=-1)
@specs_option
@click.option("--json", "as_json", is_flag=True, help="The results as JSON.")
def test_connection_command(names: tuple[str, ...], specs_dir: str | None, as_json: bool) -> None:
    """Test connections (default: every one the specs define): reachable, login, and the privileges and
    settings their pipelines need, each failure with its fix. Exit 6 when one fails."""
    from dataclasses import asdict

    from cdc_platform.ops.connection_test import check_connection, record_test

    specs = _specs(specs_dir)
    unknown = sorted(set(names) - set(specs.connections))
    if unknown:
        raise UserError(
            f"unknown connection(s) {', '.join(unknown)}; known: {', '.join(sorted(specs.connections))}"
        )
    results = [check_connection(specs, name) for name in (names or sorted(specs.connections))]
    for result in results:
        record_test(result)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in results], indent=2))
    else:
        for r in results:
            timing = f" ({r.response_ms:.0f} ms)" if r.response_ms is not None else ""
            click.echo(f"connection {r.connection} [{r.kind}]: {'ok' if r.ok else 'FAILED'}{timing}")
            for c in r.checks:
                click.echo(
                    f"  {'ok  ' if c.ok else 'FAIL'} {c.check}" + (f": {c.detail}" if c.detail else "")
                )
                if not c.ok and c.fix:
                    click.echo(f"       fix: {c.fix}")
    if not all(r.ok for r in results):
        sys.exit(6)


@cli.command("check")
@click.argument("pipeline")
@specs_option
@click.option("--table", "tables", multiple=True, help="Only this source table (schema.table); repeatable.")
@click.option("--check", "checks", multiple=True, help="Only this check (e.g. row_count_parity); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="The results as JSON.")
def check(pipeline: str, specs_dir: str | None, tables: tuple[str, ...], checks: tuple[str, ...],
          as_json: bool) -> None:  # fmt: skip
    """Run a pipeline's data-quality checks now (default: all of them on every table), as the
    schedules run them: recorded in DAGSTER_HOME's instance, so the UI shows them. Exit 7 when a
    check fails with severity ERROR (a failed WARN check is shown, and exits 0)."""
    import os

    import dagster as dg

    from cdc_platform.dagster.catalog import stored_catalog_path
    from cdc_platform.dagster.checks_on_demand import (
        CheckSelectionError,
        ChecksRunFailed,
        pipeline_check_defs,
        run_checks,
        select_checks,
    )

    specs = _specs(specs_dir)
    _require_pipeline(specs, pipeline)
    defs, table_keys = pipeline_check_defs(specs, pipeline, stored_catalog_path(specs.directory))
    try:
        selected = select_checks(defs, pipeline, table_keys, tables, checks)
    except CheckSelectionError as exc:
        raise UserError(str(exc)) from exc
    stored = bool(os.environ.get("DAGSTER_HOME"))
    with dg.DagsterInstance.get() if stored else dg.DagsterInstance.ephemeral() as instance:
        try:
            done = run_checks(defs, selected, instance)
        except ChecksRunFailed as exc:
            raise UserError(f"pipeline {pipeline!r}: the checks could not run: {exc}") from exc
    if as_json:
        click.echo(json.dumps({"pipeline": pipeline, "run_id": done.run_id, "recorded": stored,
                               "results": [vars(o) for o in done.outcomes]}, indent=2, default=str))  # fmt: skip
    else:
        where = "recorded in DAGSTER_HOME" if stored else "not recorded: DAGSTER_HOME is not set"
        click.echo(f"pipeline {pipeline}: {len(done.outcomes)} check(s), run {done.run_id[:8]} ({where})")
        width = max((len(o.table) for o in done.outcomes), default=0)
        for o in done.outcomes:
            verdict = "ok  " if o.passed else ("FAIL" if o.severity == "ERROR" else "WARN")
            click.echo(f"  {verdict} {o.table:<{width}}  {o.check:<24} {o.description}")
    if any(o.fails_the_command for o in done.outcomes):
        sys.exit(7)


@cli.command("audit")
@click.option("--pipeline", "pipeline", default=None, help="Only this pipeline's entries.")
@click.option("--since", "since", default="7d", show_default=True, help="How far back: 30m, 12h, 7d, ...")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry.")
def audit(pipeline: str | None, since: str, as_json: bool) -> None:
    """What the platform changed (connectors, slots, publications, DDL, restarts, acknowledgements):
    who, what, when, and the config diff with secrets masked. Newest first."""
    from cdc_platform.alerts.rules import seconds
    from cdc_platform.audit import entries

    try:
        window = seconds(since)
    except ValueError as exc:
        raise UserError(f"--since: {exc}") from None
    rows = entries(pipeline=pipeline, since=time.time() - window)
    if as_json:
        click.echo(
            json.dumps(
                [{**e.__dict__, "diff": json.loads(e.diff) if e.diff else None} for e in rows], indent=2
            )
        )
        return
    if not rows:
        click.echo(f"no audit entries in the last {since}")
    for e in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.at))
        click.echo(
            f"{when} UTC  {e.actor}  {e.action}  {e.target}" + (f"  [{e.pipeline}]" if e.pipeline else "")
        )
        if e.detail:
            click.echo("    " + e.detail.replace("\n", "\n    ")[:2000])
        for key, change in (json.loads(e.diff) if e.diff else {}).items():
            click.echo(f"    {key}: {change.get('old')!r} -> {change.get('new')!r}")


@cli.group("alerts", invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Resolved alerts too (newest first).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per alert.")
@click.pass_context
def alerts(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """Open alerts (with --all, the history): id, state, severity, pipeline, rule, since when."""
    if ctx.invoked_subcommand is not None:
        return
    from cdc_platform.alerts.history import AlertHistory

    listed = AlertHistory().listing(include_resolved=show_all)
    if as_json:
        click.echo(json.dumps([{**a.__dict__, "state": a.state} for a in listed], indent=2))
        return
    if not listed:
        click.echo("no open alerts" if not show_all else "no alerts recorded")
        return
    for a in listed:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a.triggered_at))
        extra = f", acknowledged by {a.acknowledged_by}" if a.acknowledged_by else ""
        if a.resolved_at:
            extra += f", resolved {time.strftime('%H:%M:%S', time.gmtime(a.resolved_at))}"
        click.echo(f"#{a.id} {a.state.upper():12} {a.severity:8} {a.pipeline} {a.subject}: {a.rule} "
                   f"since {since} UTC ({a.notifications_sent} sent{extra})\n    {a.message}")  # fmt: skip


@alerts.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", "by", required=True, help="Who acknowledges (recorded with the alert).")
def alerts_ack(alert_id: int, by: str) -> None:
    """Acknowledge an open alert: no reminders until it resolves."""
    from cdc_platform.alerts.history import AlertHistory

    try:
        alert = AlertHistory().acknowledge(alert_id, by)
    except (KeyError, ValueError) as exc:
        raise UserError(str(exc).strip("'\"")) from None
    click.echo(f"alert #{alert.id} ({alert.rule}, {alert.pipeline} {alert.subject}) acknowledged by {by}")


def main() -> None:
    try:
        cli.main(standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last resort: a sentence on top of any traceback
        click.echo(
            f"error: cdc-platform failed unexpectedly ({type(exc).__name__}: {exc}). "
            "This is a bug; the traceback follows.",
            err=True,
        )
        traceback.print_exc()
        sys.exit(2)


if __name__ == "__main__":
    main()
