"""``cdc-platform``: the local stack, the pipeline specs and the running pipelines from the command line.

One module per family of commands (``stack_commands``, ``spec_commands``, ``pipeline_commands``,
``check_commands``, ``alert_commands``), loaded only when one of its commands runs: ``cdc-platform
stack up`` on a fresh machine imports neither Dagster nor the database drivers.

Every user-facing failure is raised as :class:`~cdc_platform.cli.common.UserError` carrying a full
sentence; :func:`main` prints it as ``error: ...`` and exits 1, so no traceback reaches the user
without a sentence on top.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click

#: command name -> "module:attribute" under cdc_platform.cli, imported when the command is asked for
COMMANDS = {
    "stack": "stack_commands:stack",
    "validate": "spec_commands:validate",
    "plan": "spec_commands:plan",
    "discover": "spec_commands:discover",
    "refresh": "spec_commands:refresh",
    "apply-drift": "spec_commands:apply_drift",
    "teardown": "pipeline_commands:teardown",
    "status": "pipeline_commands:status",
    "orphans": "pipeline_commands:orphans",
    "pause": "pipeline_commands:pause",
    "resume": "pipeline_commands:resume",
    "stop": "pipeline_commands:stop",
    "restart": "pipeline_commands:restart",
    "test-connection": "check_commands:test_connection_command",
    "check": "check_commands:check",
    "audit": "alert_commands:audit",
    "alerts": "alert_commands:alerts",
    "users": "user_commands:users",
}


class LazyCommands(click.Group):
    """Click's documented lazy-subcommand group: a command's module is imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
        assert isinstance(command, click.Command), COMMANDS[cmd_name]
        return command


@click.group(cls=LazyCommands)
def cli() -> None:
    """Change Data Capture pipelines on Dagster, Kafka Connect and Debezium."""


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
