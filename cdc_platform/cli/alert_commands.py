"""Commands on what happened: ``audit`` (what the platform changed, who, when, the config diff) and
``alerts`` (open alerts or their history, and acknowledging one)."""

from __future__ import annotations

import json
import time

import click

from cdc_platform.alerts.history import AlertHistory
from cdc_platform.alerts.rules import seconds
from cdc_platform.audit import entries
from cdc_platform.cli.common import UserError
from cdc_platform.clock import utc_text


@click.command("audit")
@click.option("--pipeline", "pipeline", default=None, help="Only this pipeline's entries.")
@click.option("--since", "since", default="7d", show_default=True, help="How far back: 30m, 12h, 7d, ...")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry.")
def audit(pipeline: str | None, since: str, as_json: bool) -> None:
    """What the platform changed (connectors, slots, publications, DDL, restarts, acknowledgements):
    who, what, when, and the config diff with secrets masked. Newest first."""
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
        when = utc_text(e.at)
        click.echo(
            f"{when} UTC  {e.actor}  {e.action}  {e.target}" + (f"  [{e.pipeline}]" if e.pipeline else "")
        )
        if e.detail:
            click.echo("    " + e.detail.replace("\n", "\n    ")[:2000])
        for key, change in (json.loads(e.diff) if e.diff else {}).items():
            click.echo(f"    {key}: {change.get('old')!r} -> {change.get('new')!r}")


@click.group("alerts", invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Resolved alerts too (newest first).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per alert.")
@click.pass_context
def alerts(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """Open alerts (with --all, the history): id, state, severity, pipeline, rule, since when."""
    if ctx.invoked_subcommand is not None:
        return
    listed = AlertHistory().listing(include_resolved=show_all)
    if as_json:
        click.echo(json.dumps([{**a.__dict__, "state": a.state} for a in listed], indent=2))
        return
    if not listed:
        click.echo("no open alerts" if not show_all else "no alerts recorded")
        return
    for a in listed:
        since = utc_text(a.triggered_at)
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
    try:
        alert = AlertHistory().acknowledge(alert_id, by)
    except (KeyError, ValueError) as exc:
        raise UserError(str(exc).strip("'\"")) from None
    click.echo(f"alert #{alert.id} ({alert.rule}, {alert.pipeline} {alert.subject}) acknowledged by {by}")
