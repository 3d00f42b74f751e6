"""``cdc-platform users add|remove|list|passwd``: the admin manages who may use a shared deployment.

Passwords are read from a prompt (twice, hidden) or, for scripts, from standard input with
``--password-stdin``; never from an argument, which would land in the shell's history and in ``ps``.
"""

from __future__ import annotations

import sys

import click

from cdc_platform.access.users import (
    Role,
    UsersError,
    add_user,
    read_users,
    remove_user,
    set_password,
    users_file,
)
from cdc_platform.cli.common import UserError, settings
from cdc_platform.stack.production import Proxy


def _proxy_follows() -> None:
    """A running production proxy re-reads the roles at once: a removed user's session gets 403 from
    the next request, a new user can sign in. oauth2-proxy re-reads the password file by itself."""
    stack = settings()
    if stack.production and Proxy(stack).reload():
        click.echo("the running proxy re-read the users' roles")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("password", hide_input=True, confirmation_prompt=True)


@click.group("users")
def users() -> None:
    """Users and roles of a shared deployment (admin, operator, viewer), bcrypt-hashed in one file
    only the service user reads (``CDC_USERS_FILE``, else the stack's secrets directory)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def add(name: str, role: str, password_stdin: bool) -> None:
    try:
        user = add_user(name, Role(role), _password(password_stdin))
    except UsersError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f"user {user.name} added as {user.role.value} ({users_file()})")
    _proxy_follows()


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def passwd(name: str, password_stdin: bool) -> None:
    try:
        set_password(name, _password(password_stdin))
    except UsersError as exc:
        raise UserError(str(exc)) from exc
    click.echo(
        f"password of {name} changed (sessions already signed in last until they expire, at most 12 h)"
    )


@users.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    try:
        remove_user(name)
    except UsersError as exc:
        raise UserError(str(exc)) from exc
    click.echo(f"user {name} removed")
    _proxy_follows()


@users.command("list")
def listing() -> None:
    try:
        found = read_users()
    except UsersError as exc:
        raise UserError(str(exc)) from exc
    if not found:
        click.echo(f"no user yet ({users_file()}); add an admin: cdc-platform users add NAME --role admin")
        return
    for user in sorted(found.values(), key=lambda u: u.name):
        click.echo(f"{user.name}\t{user.role.value}")
