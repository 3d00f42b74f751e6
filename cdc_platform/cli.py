"""``cdc-platform``: the local stack and the pipeline specs from the command line.

Every user-facing failure is raised as an exception carrying a full sentence; :func:`main` prints
it as ``error: ...`` and exits 1, so no traceback reaches the user without a sentence on top.
"""

from __future__ import annotations

import json
import sys
import traceback

import click

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
    from cdc_platform.stack.services import SERVICE_NAMES, all_services

    if service not in SERVICE_NAMES:
        raise UserError(f"unknown service {service!r}; choose one of {', '.join(SERVICE_NAMES)}")
    match = next(s for s in all_services(_settings()) if s.name == service)
    click.echo(tail(match.log_file, lines))


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
