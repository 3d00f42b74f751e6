"""The production profile's services: Dagster on dagster-postgres, one webserver per role, the daemon,
the code servers, and the signed-in, TLS front door (``stack up --profile production``).

What runs, beside the local stack's services (which run two Connect workers in this profile):

- ``code-admin`` and ``code-operator``: Dagster code servers on Unix sockets. Runs are started by
  them, not by the daemon or a webserver, so restarting either loses no run. The operator's has no
  admin-only jobs (``definitions_operator.py``).
- ``dagster-daemon``: sensors, schedules and the run queue (``QueuedRunCoordinator`` with a
  concurrency limit), on the instance in ``<state>/dagster`` whose storage is the stack PostgreSQL's
  ``dagster`` database; the platform's own tables (metrics, alerts, audit) are in its
  ``cdc_platform`` database (``CDC_METRICS_URL``).
- ``webserver-admin``, ``webserver-operator``, ``webserver-viewer``: ``access/webserver.py`` on
  Unix sockets in a directory only the stack's account can enter.
- ``auth``: oauth2-proxy, the sign-in form and session cookies, against the users file.
- ``proxy``: nginx with TLS (a self-signed certificate made here), the only listening TCP port.
"""

from __future__ import annotations

import os
import pwd
import shutil
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import httpx

from cdc_platform.access.users import Role, htpasswd_file, publish, read_users, roles_file, users_file
from cdc_platform.settings import DAGSTER_DB, PLATFORM_DB, STACK_DB_USER, StackSettings
from cdc_platform.stack.errors import StackError
from cdc_platform.stack.proxy_config import ProxyLayout, nginx_conf, oauth2_proxy_args
from cdc_platform.stack.services import Service, self_signed_certificate

#: oauth2-proxy, built from the Go module proxy with the machine's Go (no release download needed)
OAUTH2_PROXY_MODULE = "github.com/oauth2-proxy/oauth2-proxy/v7"
OAUTH2_PROXY_VERSION = "v7.15.6"
#: runs the queue lets start at once: two cores also run the stack's databases, Kafka and Connect
MAX_CONCURRENT_RUNS = 3


def dagster_home(settings: StackSettings) -> Path:
    return settings.state_dir / "dagster"


def sockets_dir(settings: StackSettings) -> Path:
    """Unix sockets of the code servers and webservers: only the stack's own account enters here."""
    return settings.run_dir / "sockets"


def webserver_socket(settings: StackSettings, role: Role) -> Path:
    return sockets_dir(settings) / f"webserver-{role.value}.sock"


def code_socket(settings: StackSettings, which: str) -> Path:
    return sockets_dir(settings) / f"code-{which}.sock"


def workspace_file(settings: StackSettings, which: str) -> Path:
    return settings.config_dir / f"workspace-{which}.yaml"


def dagster_environment(settings: StackSettings) -> dict[str, str]:
    """What every Dagster process of the profile needs: the instance, its database, the platform's."""
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(dagster_home(settings)),
        DAGSTER_PG_HOST=settings.host,
        DAGSTER_PG_PORT=str(settings.postgres_port),
        DAGSTER_PG_USER=STACK_DB_USER,
        DAGSTER_PG_PASSWORD=settings.password("postgres"),
        DAGSTER_PG_DB=DAGSTER_DB,
        CDC_METRICS_URL=settings.postgres_url(PLATFORM_DB),
        CDC_STACK_DIR=str(settings.state_dir),
    )
    return env


INSTANCE_YAML = f"""# Written by `cdc-platform stack up --profile production` (cdc_platform/stack/production.py).
storage:
  postgres:
    postgres_db:
      hostname: {{env: DAGSTER_PG_HOST}}
      port: {{env: DAGSTER_PG_PORT}}
      username: {{env: DAGSTER_PG_USER}}
      password: {{env: DAGSTER_PG_PASSWORD}}
      db_name: {{env: DAGSTER_PG_DB}}
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: {MAX_CONCURRENT_RUNS}
# a run whose process died (its code server was killed) is marked failed instead of hanging
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
telemetry:
  enabled: false
nux:
  enabled: false
"""


def _workspace_yaml(socket: Path) -> str:
    return ("# Written by `cdc-platform stack up --profile production`: the code server on its socket.\n"
            f"load_from:\n  - grpc_server:\n      socket: {socket}\n      location_name: cdc_platform\n")  # fmt: skip


def ensure_databases(settings: StackSettings) -> None:
    """The Dagster instance's and the platform's databases on the stack PostgreSQL."""
    # lazy: `cdc-platform stack` starts without the drivers
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=settings.host, port=settings.postgres_port, user=STACK_DB_USER,
                         password=settings.password("postgres"), dbname="postgres", autocommit=True) as conn:  # fmt: skip
        existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        for name in (DAGSTER_DB, PLATFORM_DB):
            if name not in existing:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def require_admin(settings: StackSettings) -> None:
    """The production profile refuses to start without an admin: nobody could manage it."""
    path = users_file()
    users = read_users(path)
    if not any(u.role is Role.admin for u in users.values()):
        raise StackError(
            f"The production profile needs at least one admin user, and {path} has none. "
            "Add one first: cdc-platform users add NAME --role admin"
        )
    if not htpasswd_file(path).exists() or not roles_file(path).exists():
        publish(users, path)


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


@dataclass
class _DagsterService(Service):
    """A Dagster process of the profile; run as the account that runs the stack (it owns the checkout's
    Python environment), never as the databases' service account."""

    timeout: ClassVar[float] = 180.0

    @property
    def port(self) -> int:
        return 0

    @property
    def ports(self) -> dict[str, int]:
        return {}

    def run_as(self) -> str | None:
        return None

    def working_directory(self) -> Path:
        # `python -m` puts the working directory first on sys.path: a stray module where `stack up`
        # was run must not shadow a library (a `gql.py` there did); the instance's home holds none
        return dagster_home(self.settings)

    def environment(self) -> dict[str, str]:
        return dagster_environment(self.settings)

    def prepare(self) -> None:
        _private_dir(sockets_dir(self.settings))
        home = dagster_home(self.settings)
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text(INSTANCE_YAML)
        ensure_databases(self.settings)


@dataclass
class CodeServer(_DagsterService):
    which: str = "admin"

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"code-{self.which}"

    @property
    def socket(self) -> Path:
        return code_socket(self.settings, self.which)

    @property
    def url(self) -> str:
        return f"unix:{self.socket}"

    def prepare(self) -> None:
        super().prepare()
        self.socket.unlink(missing_ok=True)
        workspace_file(self.settings, self.which).write_text(_workspace_yaml(self.socket))

    def command(self) -> list[str]:
        module = (
            "cdc_platform.definitions_operator" if self.which == "operator" else "cdc_platform.definitions"
        )
        return [sys.executable, "-m", "dagster", "code-server", "start", "--socket", str(self.socket),
                "-m", module, "--location-name", "cdc_platform",
                "-d", str(self.settings.project_root)]  # fmt: skip

    def ready(self) -> bool:
        # lazy: Dagster takes seconds to import, and `cdc-platform stack` needs it for this probe only
        from dagster._grpc.client import DagsterGrpcClient

        return DagsterGrpcClient(socket=str(self.socket)).ping("ready") is not None


class DagsterDaemon(_DagsterService):
    name = "dagster-daemon"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dagster._daemon",
            "run",
            "-w",
            str(workspace_file(self.settings, "admin")),
        ]

    def ready(self) -> bool:
        result = subprocess.run([sys.executable, "-m", "dagster._daemon", "liveness-check"], capture_output=True,
                                env=self.environment(), timeout=60)  # fmt: skip
        return result.returncode == 0


@dataclass
class RoleWebserver(_DagsterService):
    role: Role = Role.viewer

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"webserver-{self.role.value}"

    @property
    def socket(self) -> Path:
        return webserver_socket(self.settings, self.role)

    @property
    def url(self) -> str:
        return f"unix:{self.socket}"

    def command(self) -> list[str]:
        which = "operator" if self.role is Role.operator else "admin"
        return [sys.executable, "-m", "cdc_platform.access.webserver", "--role", self.role.value,
                "--socket", str(self.socket), "--workspace", str(workspace_file(self.settings, which))]  # fmt: skip

    def ready(self) -> bool:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), timeout=5) as client:
            response = client.get(
                "http://webserver/server_info", headers={"X-Forwarded-User": "stack-status"}
            )
        return response.status_code == 200


def oauth2_proxy_binary(settings: StackSettings, echo=print) -> Path:
    """oauth2-proxy, built once with ``go install`` into the stack's cache (``CDC_OAUTH2_PROXY`` names
    a binary of your own instead)."""
    configured = os.environ.get("CDC_OAUTH2_PROXY")
    if configured:
        return Path(configured)
    target = settings.cache_dir / "bin" / f"oauth2-proxy-{OAUTH2_PROXY_VERSION}"
    if target.exists():
        return target
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise StackError(
            "The production profile's sign-in service, oauth2-proxy, is built with Go (1.23 or newer), "
            "which is not installed. Install Go, or set CDC_OAUTH2_PROXY to an oauth2-proxy binary."
        )
    echo(f"Building oauth2-proxy {OAUTH2_PROXY_VERSION} with {go} (once; about 2 minutes)")
    build = target.parent / "build"
    build.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([go, "install", f"{OAUTH2_PROXY_MODULE}@{OAUTH2_PROXY_VERSION}"],
                            env={**os.environ, "GOBIN": str(build)}, capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        raise StackError(f"Building oauth2-proxy failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    (build / "oauth2-proxy").replace(target)
    return target


@dataclass
class Auth(Service):
    name: ClassVar[str] = "auth"
    binary: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def cookie_secret_file(self) -> Path:
        return self.settings.secrets_file.parent / "session-cookie.secret"

    def prepare(self) -> None:
        if not self.cookie_secret_file.exists():
            fd = os.open(self.cookie_secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(os.urandom(16).hex())  # 32 characters: an AES-256 key

    def command(self) -> list[str]:
        binary = self.binary or oauth2_proxy_binary(self.settings)
        templates = self.settings.project_root / "resources" / "stack" / "oauth2-proxy"
        return [str(binary), *oauth2_proxy_args(host=self.settings.host, auth_port=self.port,
                                                htpasswd=htpasswd_file(), cookie_secret_file=self.cookie_secret_file,
                                                templates=templates)]  # fmt: skip

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/ping", timeout=3).status_code == 200


@dataclass
class Proxy(Service):
    name: ClassVar[str] = "proxy"

    @property
    def url(self) -> str:
        return f"https://{self.settings.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.settings.config_dir / "nginx.conf"

    @property
    def certificate(self) -> Path:
        """The proxy's self-signed certificate: what a browser or client must trust (or pin)."""
        return self.settings.config_dir / "proxy.crt"

    def layout(self) -> ProxyLayout:
        state = self.settings
        return ProxyLayout(
            host=state.host, port=self.port, auth_port=state.auth_port,
            sockets={role: webserver_socket(state, role) for role in Role},
            roles_file=roles_file(), certificate=self.certificate, key=state.secrets_file.parent / "proxy.key",
            temp_dir=state.data_dir / "nginx", logs_dir=state.logs_dir, pid_path=state.run_dir / "nginx-master.pid",
            no_role_socket=sockets_dir(state) / "no-role.sock",
        )  # fmt: skip

    def prepare(self) -> None:
        layout = self.layout()
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (layout.temp_dir / sub).mkdir(parents=True, exist_ok=True)
        layout.no_role_socket.unlink(missing_ok=True)
        if not self.certificate.exists() or not layout.key.exists():
            cert, key = self_signed_certificate(self.settings.host)
            fd = os.open(layout.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(key)
            self.certificate.write_bytes(cert)
        worker = None
        if os.geteuid() == 0:
            worker = pwd.getpwuid(os.geteuid()).pw_name
        self.config_file.write_text(nginx_conf(layout, worker_user=worker))

    def command(self) -> list[str]:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [nginx, "-p", str(self.settings.state_dir), "-c", str(self.config_file),
                "-e", str(self.settings.logs_dir / "proxy-error.log"), "-g", "daemon off;"]  # fmt: skip

    def ready(self) -> bool:
        trust = ssl.create_default_context(cafile=str(self.certificate))
        response = httpx.get(f"{self.url}/oauth2/sign_in", verify=trust, timeout=3)
        return response.status_code == 200

    def reload(self) -> bool:
        """Re-read the roles map (after a user change); False when the proxy is not running."""
        pid = self.pid_file.running_pid()
        if pid is None:
            return False
        os.kill(pid, 1)  # SIGHUP: nginx re-reads its configuration and the included roles map
        return True


def production_services(settings: StackSettings) -> list[Service]:
    """In start order, after the local stack's services."""
    return [
        CodeServer(settings, which="admin"),
        CodeServer(settings, which="operator"),
        DagsterDaemon(settings),
        *(RoleWebserver(settings, role=role) for role in (Role.admin, Role.operator, Role.viewer)),
        Auth(settings),
        Proxy(settings),
    ]
