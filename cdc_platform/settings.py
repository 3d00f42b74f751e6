"""Where the local stack lives and how to reach it: the one place every consumer reads.

The stack CLI, the tests, the demo and the Dagster resources all resolve hosts, ports, paths and
credentials through :func:`load_stack_settings`, so moving a port with an environment variable moves
it everywhere at once.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"

#: service name -> (environment variable that moves its port, default port)
PORT_VARIABLES: dict[str, tuple[str, int]] = {
    "postgres": ("CDC_PG_PORT", 15432),
    "mariadb": ("CDC_MARIADB_PORT", 13306),
    "kafka": ("CDC_KAFKA_PORT", 19092),
    "kafka-controller": ("CDC_KAFKA_CONTROLLER_PORT", 19093),
    "connect": ("CDC_CONNECT_PORT", 18083),
    "s3": ("CDC_S3_PORT", 15000),
    #: Jolokia's HTTP agent in the Connect JVM (loopback, read-only): Debezium's and Connect's JMX metrics
    "jolokia": ("CDC_JOLOKIA_PORT", 18778),
    #: the optional second Connect cluster for busy pipelines (``CDC_CONNECT_BULK``) and its agent
    "connect-bulk": ("CDC_CONNECT_BULK_PORT", 18093),
    "jolokia-bulk": ("CDC_JOLOKIA_BULK_PORT", 18788),
    #: the production profile's HTTPS entry point (nginx) and its sign-in service (oauth2-proxy)
    "proxy": ("CDC_PROXY_PORT", 18443),
    "auth": ("CDC_AUTH_PORT", 14180),
}

#: ``stack up --profile``: ``local`` (the default) or ``production``; ``up`` records it in the state
#: dir so every later command (``status``, ``down``, the users CLI) sees the same services
PROFILES = ("local", "production")
PROFILE_FILE_NAME = "profile"
#: the production profile's databases on the stack PostgreSQL: Dagster's instance, the platform's tables
DAGSTER_DB = "dagster"
PLATFORM_DB = "cdc_platform"

#: Debezium release and the Kafka release it is built against (see resources/stack/kafka-pom.xml).
DEBEZIUM_VERSION = "3.5.0.Final"
KAFKA_VERSION = "4.1.1"
#: org.jolokia:jolokia-agent-jvm (javaagent classifier), the JMX-over-HTTP agent in the Connect JVM
JOLOKIA_VERSION = "2.6.0"

STACK_DB_USER = "cdc"
SECRETS_FILE_NAME = "stack.properties"


def _project_root() -> Path:
    """The checkout this package runs from, when it runs from one (editable install, tests)."""
    candidate = Path(__file__).resolve().parent.parent
    if (candidate / "pyproject.toml").exists():
        return candidate
    return Path.cwd()


def _port(name: str) -> int:
    variable, default = PORT_VARIABLES[name]
    raw = os.environ.get(variable)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{variable}={raw!r} is not a port number") from exc
    if not 1 <= value <= 65535:
        raise ValueError(f"{variable}={raw!r} is outside 1..65535")
    return value


@dataclass(frozen=True)
class StackSettings:
    """Resolved locations of the local stack. Cheap to build; reads only the environment and one file."""

    state_dir: Path
    project_root: Path
    postgres_port: int
    mariadb_port: int
    kafka_port: int
    kafka_controller_port: int
    connect_port: int
    s3_port: int
    jolokia_port: int = PORT_VARIABLES["jolokia"][1]
    host: str = HOST
    #: Connect workers in the one group (``CDC_CONNECT_WORKERS``); worker k > 1 listens on the
    #: first worker's REST and Jolokia ports + k - 1
    connect_workers: int = 1
    #: a second, separate Connect cluster for busy pipelines (``CDC_CONNECT_BULK``); its JVM can run
    #: at a lower CPU priority (``CDC_CONNECT_BULK_NICE``, 0..19) on a machine short of cores
    connect_bulk: bool = False
    connect_bulk_nice: int = 0
    connect_bulk_port: int = PORT_VARIABLES["connect-bulk"][1]
    jolokia_bulk_port: int = PORT_VARIABLES["jolokia-bulk"][1]
    proxy_port: int = PORT_VARIABLES["proxy"][1]
    auth_port: int = PORT_VARIABLES["auth"][1]
    profile: str = "local"
    #: the S3 server the stack runs (``CDC_S3_SERVER``): ``moto`` (in memory) or ``seaweedfs`` (a real
    #: server on disk, built once from the Go module proxy; cdc_platform/stack/seaweedfs.py)
    s3_server: str = "moto"

    @property
    def production(self) -> bool:
        return self.profile == "production"

    # -- paths ---------------------------------------------------------------------------------
    @property
    def secrets_file(self) -> Path:
        """Java properties file holding the stack's generated passwords (mode 0600).

        Kafka Connect reads it through its FileConfigProvider, so connector configs carry
        ``${file:<this path>:postgres.password}`` instead of the password.
        """
        return self.state_dir / "secrets" / SECRETS_FILE_NAME

    @property
    def postgres_ca_file(self) -> Path:
        """The stack PostgreSQL's self-signed certificate: the CA for ``tls: {mode: verify-full}``."""
        return self.config_dir / "postgres-server.crt"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def cache_dir(self) -> Path:
        """Downloads (jars, plugin archives); kept by ``stack reset`` so the next ``up`` is warm."""
        return self.state_dir / "cache"

    @property
    def config_dir(self) -> Path:
        return self.state_dir / "config"

    def port_of(self, service: str) -> int:
        base, worker = split_worker(service)
        if worker > 1:
            return self.port_of(base) + worker - 1
        return {
            "postgres": self.postgres_port,
            "mariadb": self.mariadb_port,
            "kafka": self.kafka_port,
            "kafka-controller": self.kafka_controller_port,
            "connect": self.connect_port,
            "s3": self.s3_port,
            "jolokia": self.jolokia_port,
            "connect-bulk": self.connect_bulk_port,
            "jolokia-bulk": self.jolokia_bulk_port,
            "proxy": self.proxy_port,
            "auth": self.auth_port,
        }[service]

    # -- endpoints -----------------------------------------------------------------------------
    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def connect_url(self) -> str:
        return f"http://{self.host}:{self.connect_port}"

    @property
    def jolokia_url(self) -> str:
        """Jolokia's agent in the Connect JVM (Debezium's streaming metrics, Connect's task metrics)."""
        return f"http://{self.host}:{self.jolokia_port}/jolokia"

    @property
    def connect_cluster_url(self) -> str:
        """Every worker's REST URL, comma-separated: a client moves on to the next when one is down."""
        return ",".join(f"http://{self.host}:{self.port_of(worker_service('connect', k))}"
                        for k in range(1, self.connect_workers + 1))  # fmt: skip

    @property
    def jolokia_cluster_url(self) -> str:
        """Every worker's Jolokia agent, comma-separated: a task's MBeans live on the worker running it."""
        return ",".join(f"http://{self.host}:{self.port_of(worker_service('jolokia', k))}/jolokia"
                        for k in range(1, self.connect_workers + 1))  # fmt: skip

    @property
    def connect_bulk_url(self) -> str:
        """The bulk Connect cluster's REST URL (``CDC_CONNECT_BULK``): a code location of its own points here."""
        return f"http://{self.host}:{self.connect_bulk_port}"

    @property
    def jolokia_bulk_url(self) -> str:
        return f"http://{self.host}:{self.jolokia_bulk_port}/jolokia"

    @property
    def s3_url(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    # -- credentials ---------------------------------------------------------------------------
    def password(self, service: str) -> str:
        """The generated password of the stack's ``cdc`` user on ``postgres`` or ``mariadb``."""
        values = read_properties(self.secrets_file)
        key = f"{service}.password"
        if key not in values:
            raise KeyError(
                f"{self.secrets_file} has no {key}; run `cdc-platform stack up` to create the stack first"
            )
        return values[key]

    def postgres_url(self, database: str) -> str:
        """SQLAlchemy URL of a database on the stack PostgreSQL, as its ``cdc`` user."""
        return (f"postgresql+psycopg://{STACK_DB_USER}:{self.password('postgres')}@{self.host}:"
                f"{self.postgres_port}/{database}")  # fmt: skip

    def secret_reference(self, service: str) -> str:
        """Kafka Connect config-provider reference that resolves to the service's password on the worker."""
        return f"${{file:{self.secrets_file}:{service}.password}}"


def worker_service(base: str, worker: int) -> str:
    """``connect``/``jolokia`` for the first worker, ``connect-2``/``jolokia-2`` for the second, ..."""
    return base if worker == 1 else f"{base}-{worker}"


def split_worker(service: str) -> tuple[str, int]:
    """The inverse of :func:`worker_service`: ``connect-2`` -> (``connect``, 2)."""
    base, _, number = service.rpartition("-")
    if base in ("connect", "jolokia") and number.isdigit():
        return base, int(number)
    return service, 1


def port_variable(service: str) -> str:
    """The environment variable that moves a service's port (a later worker's moves with the first's)."""
    base, worker = split_worker(service)
    if base not in PORT_VARIABLES and base.startswith("s3-"):  # SeaweedFS's servers behind its S3 gateway
        return f"{PORT_VARIABLES['s3'][0]} ({base} moves with it)"
    variable = PORT_VARIABLES[base][0]
    return variable if worker == 1 else f"{variable} (worker {worker} uses it + {worker - 1})"


def _bounded_int(variable: str, default: int, low: int, high: int, what: str, why: str = "") -> int:
    """``variable``'s integer value in ``low..high``; a clear error naming the variable otherwise."""
    raw = os.environ.get(variable) or str(default)
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"{variable}={raw!r} is not {what}") from exc
    if not low <= value <= high:
        raise ValueError(f"{variable}={raw!r} is outside {low}..{high}{why}")
    return value


def _workers() -> int:
    return _bounded_int("CDC_CONNECT_WORKERS", 1, 1, 4, "a number of workers",
                        " (the local stack runs up to 4 workers)")  # fmt: skip


def _bulk() -> bool:
    raw = (os.environ.get("CDC_CONNECT_BULK") or "0").strip().lower()
    if raw not in ("0", "1", "true", "false", "yes", "no"):
        raise ValueError(f"CDC_CONNECT_BULK={raw!r} is not one of 1/0, true/false, yes/no")
    return raw in ("1", "true", "yes")


#: ``CDC_S3_SERVER``'s values
S3_SERVERS = ("moto", "seaweedfs")


def _s3_server() -> str:
    raw = (os.environ.get("CDC_S3_SERVER") or "moto").strip().lower()
    if raw not in S3_SERVERS:
        raise ValueError(f"CDC_S3_SERVER={raw!r} is not one of {', '.join(S3_SERVERS)}")
    return raw


def _bulk_nice() -> int:
    return _bounded_int("CDC_CONNECT_BULK_NICE", 0, 0, 19, "a niceness (0..19)")


def recorded_profile(state_dir: Path) -> str:
    """The profile ``stack up`` last started in ``state_dir`` (``local`` when none was recorded)."""
    try:
        profile = (state_dir / PROFILE_FILE_NAME).read_text().strip()
    except OSError:
        return "local"
    return profile if profile in PROFILES else "local"


def load_stack_settings() -> StackSettings:
    root = _project_root()
    state = Path(os.environ.get("CDC_STACK_DIR") or root / ".stack").resolve()
    profile = recorded_profile(state)
    return StackSettings(
        state_dir=state,
        project_root=root,
        postgres_port=_port("postgres"),
        mariadb_port=_port("mariadb"),
        kafka_port=_port("kafka"),
        kafka_controller_port=_port("kafka-controller"),
        connect_port=_port("connect"),
        s3_port=_port("s3"),
        jolokia_port=_port("jolokia"),
        # the production profile runs two Connect workers in one group, so a worker can be lost
        connect_workers=max(_workers(), 2 if profile == "production" else 1),
        connect_bulk=_bulk(),
        connect_bulk_nice=_bulk_nice(),
        connect_bulk_port=_port("connect-bulk"),
        jolokia_bulk_port=_port("jolokia-bulk"),
        proxy_port=_port("proxy"),
        auth_port=_port("auth"),
        profile=profile,
        s3_server=_s3_server(),
    )


def read_properties(path: Path) -> dict[str, str]:
    """Parse the simple ``key=value`` Java properties files this project writes itself."""
    if not path.exists():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def ensure_stack_secrets(settings: StackSettings) -> dict[str, str]:
    """Create the stack's passwords once; later calls return the same ones."""
    path = settings.secrets_file
    values = read_properties(path)
    changed = False
    for service in ("postgres", "mariadb"):
        key = f"{service}.password"
        if key not in values:
            # URL-safe alphabet: the value travels in JDBC URLs and properties files unescaped.
            values[key] = secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        body = "# Generated by `cdc-platform stack up`. Local stack credentials; never commit.\n"
        body += "".join(f"{k}={v}\n" for k, v in sorted(values.items()))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(body)
        tmp.chmod(0o600)
        tmp.replace(path)
    return values
