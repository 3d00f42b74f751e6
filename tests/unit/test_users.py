"""The users file of a shared deployment: bcrypt hashes, roles, owner-only permissions, and the CLI
that manages it (issue 33's first part; the proxy that reads the same file is not built yet)."""

from __future__ import annotations

import stat

import pytest
from click.testing import CliRunner

from cdc_platform.access.users import Role, UsersError, add_user, read_users, remove_user, set_password
from cdc_platform.cli import cli

PASSWORD = "correct horse battery"


@pytest.fixture
def users_path(tmp_path, monkeypatch):
    path = tmp_path / "secrets" / "users.htpasswd"
    monkeypatch.setenv("CDC_USERS_FILE", str(path))
    return path


def test_a_user_is_stored_as_an_htpasswd_line_with_a_bcrypt_hash_and_the_role(users_path):
    add_user("ana", Role.admin, PASSWORD)
    (line,) = users_path.read_text().splitlines()
    name, hashed, role = line.split(":")
    assert name == "ana" and hashed.startswith("$2b$12$") and role == "admin" and PASSWORD not in line
    assert stat.S_IMODE(users_path.stat().st_mode) == 0o600
    user = read_users()["ana"]
    assert user.verify(PASSWORD) and not user.verify(PASSWORD + "!")


def test_bad_input_is_refused_with_the_reason(users_path):
    with pytest.raises(UsersError, match="at least 12"):
        add_user("ana", Role.admin, "short")
    with pytest.raises(UsersError, match="lower-case"):
        add_user("Ana Smith", Role.admin, PASSWORD)
    add_user("ana", Role.admin, PASSWORD)
    with pytest.raises(UsersError, match="exists"):
        add_user("ana", Role.viewer, PASSWORD)
    users_path.write_text(users_path.read_text() + "bob:$2b$12$x:superuser\n")
    with pytest.raises(UsersError, match=r"users.htpasswd:2: expected name:bcrypt-hash:role"):
        read_users()


def test_the_last_admin_cannot_be_removed_and_a_password_change_takes_effect(users_path):
    add_user("ana", Role.admin, PASSWORD)
    add_user("olga", Role.operator, PASSWORD)
    with pytest.raises(UsersError, match="last admin"):
        remove_user("ana")
    remove_user("olga")
    set_password("ana", "another long password")
    assert read_users()["ana"].verify("another long password") and list(read_users()) == ["ana"]


def test_the_cli_adds_lists_changes_and_removes_users_without_a_password_argument(users_path):
    runner = CliRunner()
    added = runner.invoke(cli, ["users", "add", "ana", "--role", "admin"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert added.exit_code == 0 and "added as admin" in added.output, added.output
    viewer = runner.invoke(
        cli, ["users", "add", "vic", "--role", "viewer", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert viewer.exit_code == 0, viewer.output
    listed = runner.invoke(cli, ["users", "list"])
    assert listed.output.splitlines() == ["ana\tadmin", "vic\tviewer"]
    weak = runner.invoke(cli, ["users", "passwd", "vic", "--password-stdin"], input="short\n")
    assert weak.exit_code == 1 and "error: a password needs at least 12 characters" in weak.output
    assert runner.invoke(cli, ["users", "remove", "vic"]).exit_code == 0
    last = runner.invoke(cli, ["users", "remove", "ana"])
    assert last.exit_code == 1 and "last admin" in last.output
