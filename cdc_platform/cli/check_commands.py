"""Commands that test: ``test-connection`` (reachable, login, privileges and settings, each failure
with its fix) and ``check`` (a pipeline's data-quality checks now, recorded as the schedules record them)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict

import click
import dagster as dg

from cdc_platform.cli.common import UserError
from cdc_platform.cli.spec_access import read_specs, require_pipeline, specs_option
from cdc_platform.dagster.catalog import stored_catalog_path
from cdc_platform.dagster.checks_on_demand import (
    CheckSelectionError,
    ChecksRunFailed,
    pipeline_check_defs,
    run_checks,
    select_checks,
)
from cdc_platform.ops.connection_test import check_connection, record_test


@click.command("test-connection")
@click.argument("names", nargs=-1)
@specs_option
@click.option("--json", "as_json", is_flag=True, help="The results as JSON.")
def test_connection_command(names: tuple[str, ...], specs_dir: str | None, as_json: bool) -> None:
    """Test connections (default: every one the specs define): reachable, login, and the privileges and
    settings their pipelines need, each failure with its fix. Exit 6 when one fails."""
    specs = read_specs(specs_dir)
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


@click.command("check")
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
    specs = read_specs(specs_dir)
    require_pipeline(specs, pipeline)
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
