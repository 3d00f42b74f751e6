"""The users of a shared deployment, each with a role, in one htpasswd file.

Each line is ``name:bcrypt-hash:role``. Every change also writes the two files the proxy reads
(``publish``): ``<file>.htpasswd``, a standard two-field htpasswd file that oauth2-proxy checks
passwords against (and re-reads when it changes), and ``<file>.roles``, nginx ``map`` lines that
send each signed-in user to their role's webserver. Nothing else stores a password: the files are
written atomically, readable by their owner only (0600), and live outside git (the stack's secrets
directory, or ``CDC_USERS_FILE``).

Roles:

- ``admin``: everything, including users and connections;
- ``operator``: pipeline management (materialize, re-load, pause/resume/restart, checks, alerts);
- ``viewer``: read-only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import bcrypt

from cdc_platform.settings import load_stack_settings

NAME = re.compile(r"[a-z][a-z0-9._-]{0,63}")
#: words nginx's ``map`` block reads as its own keywords: a user so named would break the roles map
RESERVED_NAMES = frozenset({"default", "hostnames", "include", "volatile"})
MIN_PASSWORD = 12
#: bcrypt's cost: about a quarter second per check on this machine kind, which also slows guessing
ROUNDS = 12


class Role(str, Enum):
    admin = "admin"
    operator = "operator"
    viewer = "viewer"


class UsersError(ValueError):
    """A user request that cannot be carried out, with the reason in words."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str

    def line(self) -> str:
        return f"{self.name}:{self.password_hash}:{self.role.value}"

    def verify(self, password: str) -> bool:
        return bcrypt.checkpw(password.encode(), self.password_hash.encode())


def users_file() -> Path:
    configured = os.environ.get("CDC_USERS_FILE")
    if configured:
        return Path(configured)
    return load_stack_settings().secrets_file.parent / "users"


def htpasswd_file(path: Path | None = None) -> Path:
    path = path or users_file()
    return path.with_name(path.name + ".htpasswd")


def roles_file(path: Path | None = None) -> Path:
    path = path or users_file()
    return path.with_name(path.name + ".roles")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UsersError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password.encode()) > 72:
        raise UsersError("a password may have at most 72 bytes (bcrypt reads no further)")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(ROUNDS)).decode()


def read_users(path: Path | None = None) -> dict[str, User]:
    path = path or users_file()
    if not path.exists():
        return {}
    users = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        if not raw.strip() or raw.startswith("#"):
            continue
        parts = raw.split(":")
        if len(parts) != 3 or parts[2] not in Role.__members__:
            raise UsersError(f"{path}:{number}: expected name:bcrypt-hash:role (admin, operator or viewer)")
        users[parts[0]] = User(parts[0], Role(parts[2]), parts[1])
    return users


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def publish(users: dict[str, User], path: Path) -> None:
    """The proxy's two files, from ``users``: password hashes, and each user's role for nginx."""
    ordered = sorted(users.values(), key=lambda u: u.name)
    # roles first: a new user's password never works before their role is known
    _write_private(roles_file(path), "".join(f"{u.name} {u.role.value};\n" for u in ordered))
    _write_private(htpasswd_file(path), "".join(f"{u.name}:{u.password_hash}\n" for u in ordered))


def _write(users: dict[str, User], path: Path) -> None:
    ordered = sorted(users.values(), key=lambda u: u.name)
    _write_private(path, "".join(u.line() + "\n" for u in ordered))
    publish(users, path)


def add_user(name: str, role: Role, password: str, path: Path | None = None) -> User:
    path = path or users_file()
    if not NAME.fullmatch(name):
        raise UsersError(f"user name {name!r}: lower-case letters, digits, . _ -, starting with a letter")
    if name in RESERVED_NAMES:
        raise UsersError(
            f"user name {name!r} is reserved ({', '.join(sorted(RESERVED_NAMES))}); choose another"
        )
    users = read_users(path)
    if name in users:
        raise UsersError(f"user {name!r} exists; change the password with `cdc-platform users passwd {name}`")
    users[name] = User(name, role, hash_password(password))
    _write(users, path)
    return users[name]


def set_password(name: str, password: str, path: Path | None = None) -> None:
    path = path or users_file()
    users = read_users(path)
    if name not in users:
        raise UsersError(f"no user {name!r}")
    users[name] = User(name, users[name].role, hash_password(password))
    _write(users, path)


def remove_user(name: str, path: Path | None = None) -> None:
    path = path or users_file()
    users = read_users(path)
    if name not in users:
        raise UsersError(f"no user {name!r}")
    admins = [u for u in users.values() if u.role is Role.admin]
    if users[name].role is Role.admin and len(admins) == 1:
        raise UsersError(f"{name!r} is the last admin: add another admin first")
    del users[name]
    _write(users, path)
