"""One role's Dagster webserver: ``python -m cdc_platform.access.webserver --role operator --socket PATH``.

It is Dagster's own webserver (the same app ``dagster-webserver`` serves), with two differences:

- its permissions are the role's (``access/roles.py``), checked by Dagster's GraphQL resolvers on
  every mutation, so a refused action is refused however the request was sent, and the UI greys the
  same buttons out;
- it listens on a Unix socket that only the stack's service user can reach, so the only way in is
  the proxy, which signs users in and sets ``X-Forwarded-User``; ``ActingUserMiddleware`` puts that
  name on every run launched (``dagster/user``).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import uvicorn
from dagster import DagsterInstance
from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._core.workspace.permissions import LOCATION_SCOPED_PERMISSIONS, PermissionResult
from dagster_webserver.app import create_app_from_workspace_process_context
from dagster_webserver.version import __version__

from cdc_platform.access.acting_user import ActingUserMiddleware
from cdc_platform.access.roles import role_permissions
from cdc_platform.access.users import Role


def _results(allowed: Mapping[str, bool], role: Role) -> dict[str, PermissionResult]:
    return {
        name: PermissionResult(
            enabled=ok, disabled_reason=None if ok else f"not allowed for the {role.value} role"
        )
        for name, ok in allowed.items()
    }


class RoleRequestContext(WorkspaceRequestContext):
    """A request's workspace with the role's permissions instead of Dagster's all-or-nothing ones."""

    role: Role = Role.viewer

    @property
    def permissions(self) -> Mapping[str, PermissionResult]:
        return _results(role_permissions(self.role), self.role)

    def permissions_for_location(self, *, location_name: str) -> Mapping[str, PermissionResult]:
        return {k: v for k, v in self.permissions.items() if k in LOCATION_SCOPED_PERMISSIONS}


class RoleProcessContext(WorkspaceProcessContext):
    def __init__(self, *args, role: Role, **kwargs) -> None:
        super().__init__(*args, read_only=role is Role.viewer, **kwargs)
        self.role = role

    def create_request_context(self, source: object | None = None) -> WorkspaceRequestContext:
        context = RoleRequestContext(
            instance=self.instance,
            current_workspace=self.get_current_workspace(),
            process_context=self,
            version=self.version,
            source=source,
            read_only=self.role is Role.viewer,
        )
        context.role = self.role
        return context


def serve(role: Role, socket: Path, workspace: Path, log_level: str = "warning") -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    socket.parent.mkdir(parents=True, exist_ok=True)
    socket.unlink(missing_ok=True)
    instance = DagsterInstance.get()
    with RoleProcessContext(
        instance, WorkspaceFileTarget(paths=[str(workspace)]), version=__version__, role=role
    ) as context:
        app = ActingUserMiddleware(create_app_from_workspace_process_context(context))
        logging.getLogger(__name__).info("%s webserver on unix:%s (pid %d)", role.value, socket, os.getpid())
        # the socket's directory keeps everyone but the service user out; the socket itself too
        os.umask(0o077)
        uvicorn.run(app, uds=str(socket), log_level=log_level)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", required=True, choices=[r.value for r in Role])
    parser.add_argument("--socket", required=True, type=Path, help="the Unix socket to listen on")
    parser.add_argument("--workspace", required=True, type=Path, help="the role's workspace.yaml")
    args = parser.parse_args(argv)
    serve(Role(args.role), args.socket, args.workspace)


if __name__ == "__main__":
    main()
