"""``cdc-platform stack``: the no-Docker local stack (PostgreSQL, MariaDB, Kafka, Kafka Connect with
Debezium, S3) installed and run from Debian packages and Maven Central jars in private directories."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import click

from cdc_platform.cli.common import UserError, settings
from cdc_platform.settings import PROFILES, STACK_DB_USER
from cdc_platform.stack.errors import StackError
from cdc_platform.stack.manager import down, reset, stack_services, status, up
from cdc_platform.stack.processes import tail


@click.group()
def stack() -> None:
    """The local stack: PostgreSQL, MariaDB, Kafka (KRaft), Kafka Connect + Debezium, S3 (moto, or SeaweedFS with CDC_S3_SERVER=seaweedfs)."""


@stack.command("up")
@click.option("--profile", type=click.Choice(PROFILES), default=None,
              help="local (default): the services on loopback, an open UI for one person. production: adds "
                   "Dagster on dagster-postgres (code servers, daemon with a run queue, one webserver per "
                   "role), two Connect workers and a signed-in TLS proxy; needs an admin user first. "
                   "Without it, the profile the stack last started.")  # fmt: skip
def stack_up(profile: str | None) -> None:
    """Install what is missing, then start every service and wait until each is ready."""
    try:
        up(settings(), echo=click.echo, profile=profile)
    except StackError as exc:
        raise UserError(str(exc)) from exc


@stack.command("down")
@click.option("--purge", is_flag=True, help="Also delete data directories (same as `stack reset`).")
def stack_down(purge: bool) -> None:
    """Stop every process the stack started (by pid), and nothing else."""
    (reset if purge else down)(settings(), echo=click.echo)


@stack.command("reset")
def stack_reset() -> None:
    """Stop the stack and delete its data, logs and credentials; keep downloads."""
    reset(settings(), echo=click.echo)


@stack.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per service.")
def stack_status(as_json: bool) -> None:
    """Show each service's state, address and log file."""
    rows = status(settings())
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    click.echo(f"{'SERVICE':18} {'STATE':8} {'HEALTH':10} {'PID':>8}  {'ADDRESS':40} LOG")
    for r in rows:
        address = r.url or f"{r.host}:{r.port}"
        click.echo(f"{r.name:18} {r.state:8} {r.health:10} {r.pid or '-':>8}  {address:40} {r.log}")


@stack.command("logs")
@click.argument("service")
@click.option("-n", "--lines", default=50, show_default=True, help="How many trailing lines.")
def stack_logs(service: str, lines: int) -> None:
    """Print the last lines of a service's log."""
    services = {s.name: s for s in stack_services(settings())}
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
    stack_settings = settings()
    try:
        password = stack_settings.password(service)
    except KeyError as exc:
        raise UserError(str(exc).strip("'\"")) from exc
    if service == "postgres":
        client = shutil.which("psql")
        if client is None:
            raise UserError("psql is not installed (Debian package postgresql-client)")
        cmd = [client, "-h", stack_settings.host, "-p", str(stack_settings.postgres_port), "-U", STACK_DB_USER,
               database or "postgres", *client_args]  # fmt: skip
        sys.exit(subprocess.run(cmd, env={**os.environ, "PGPASSWORD": password}).returncode)
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        raise UserError("the mariadb client is not installed (Debian package mariadb-client)")
    with tempfile.TemporaryDirectory(prefix="cdc-sql-") as private:
        defaults = os.path.join(private, "client.cnf")
        with open(os.open(defaults, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(f"[client]\npassword={password}\n")
        cmd = [client, f"--defaults-extra-file={defaults}", "-h", stack_settings.host, "-P", str(stack_settings.mariadb_port),
               "-u", STACK_DB_USER, *([database] if database else []), *client_args]  # fmt: skip
        code = subprocess.run(cmd).returncode
    sys.exit(code)
