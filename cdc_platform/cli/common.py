"""What every command family shares: the user-facing error and the stack's settings (light on
purpose: the ``stack`` commands import this and nothing heavier)."""

from __future__ import annotations

import os

import click

from cdc_platform.settings import StackSettings, load_stack_settings


class UserError(click.ClickException):
    """A failure the user can act on: printed as ``error: <sentence>``, exit 1, no traceback."""

    def show(self, file=None) -> None:  # noqa: D102 - same contract as click's
        click.echo(f"error: {self.message}", err=True)


def settings() -> StackSettings:
    try:
        return load_stack_settings()
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def connect_resource():
    """Kafka Connect as the CLI reaches it: ``CDC_CONNECT_URL``, else the stack's cluster URL."""
    # lazy: the stack commands load without Dagster
    from cdc_platform.kafka_connect import KafkaConnectResource

    return KafkaConnectResource(
        url=os.environ.get("CDC_CONNECT_URL", load_stack_settings().connect_cluster_url)
    )
