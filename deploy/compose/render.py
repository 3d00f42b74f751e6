"""Writes deploy/compose/nginx.conf from the same function the local stack's proxy uses
(`python deploy/compose/render.py`); tests/unit/test_compose.py fails when the file is stale."""

from __future__ import annotations

from pathlib import Path

from cdc_platform.access.users import Role
from cdc_platform.stack.proxy_config import ProxyLayout, nginx_conf

HERE = Path(__file__).resolve().parent
#: the compose proxy's paths: sockets on a volume shared with the webservers, secrets as mounted
COMPOSE_PROXY = ProxyLayout(
    host="0.0.0.0", port=443, auth_port=4180, auth_host="auth",
    sockets={role: Path(f"/cdc-sockets/webserver-{role.value}.sock") for role in Role},
    roles_file=Path("/cdc-stack/secrets/users.roles"), certificate=Path("/cdc-stack/proxy/proxy.crt"),
    key=Path("/cdc-stack/secrets/proxy.key"), temp_dir=Path("/tmp/nginx"), logs_dir=Path("/var/log/nginx"),
    pid_path=Path("/tmp/nginx.pid"), no_role_socket=Path("/tmp/nginx-no-role.sock"),
)  # fmt: skip


def render() -> str:
    return nginx_conf(COMPOSE_PROXY)


if __name__ == "__main__":
    (HERE / "nginx.conf").write_text(render())
