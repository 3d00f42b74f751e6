"""The five services of the local stack: how each is prepared, started and proven ready.

Memory is capped everywhere (JVM heaps, shared_buffers, InnoDB buffer pool) so the stack and the
test suite fit a 2-core, 24 GiB machine together.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from cdc_platform.kafka_log import kafka_client_config
from cdc_platform.settings import STACK_DB_USER, StackSettings, worker_service
from cdc_platform.stack.class_archive import archive_flags
from cdc_platform.stack.downloads import jolokia_agent_jar, kafka_libs_dir, plugins_dir
from cdc_platform.stack.errors import StackError
from cdc_platform.stack.prerequisites import Binaries, chown_tree, database_root
from cdc_platform.stack.processes import PidFile
from cdc_platform.stack.seaweedfs import ensure_seaweedfs, weed_binary

REQUIRED_PLUGINS = (
    "io.debezium.connector.postgresql.PostgresConnector",
    "io.debezium.connector.mysql.MySqlConnector",
    "io.debezium.connector.mariadb.MariaDbConnector",
    "io.debezium.connector.sqlserver.SqlServerConnector",
    "io.debezium.connector.jdbc.JdbcSinkConnector",
    # the platform's reconnecting JDBC sink (cdc_platform/stack/converters.py builds it in)
    "io.cdcplatform.connect.ResilientJdbcSinkConnector",
)


#: how fast the Connect group moves a lost worker's share (the compose workers set the same):
#: at once for a worker that stops (no 5-minute wait for it to return), and after 6 s for one that
#: dies, the broker's minimum session instead of 10 s, heartbeats from the worker's own thread every
#: 2 s; a restarted worker's tasks also wait for its dead predecessor's session (issue 34)
WORKER_RECOVERY_SETTINGS = {
    "scheduled.rebalance.max.delay.ms": "0",
    "session.timeout.ms": "6000",
    "heartbeat.interval.ms": "2000",
}

#: the Connect worker's garbage collector (the compose workers set the same). Kafka's scripts give
#: G1 a 20 ms pause target, which kept the young generation near 30 MB: a sink draining a backlog
#: allocates about 400 MB/s (the JSON converter and Debezium's records), and collected 171 times in
#: 13 s, 2.2-2.7 s of pauses. With 100 ms the young generation grows to ~400 MB: 35 collections,
#: 0.25-1.3 s (bench/README.md, "Catch-up: where the sink's time goes"). A change waiting through a
#: pause of up to ~100 ms stays inside the latency target's p99 (bench/cdc_latency.md).
CONNECT_GC_FLAGS = ("-XX:MaxGCPauseMillis=100",)


@dataclass
class Service(ABC):
    settings: StackSettings
    binaries: Binaries | None = None
    user: str | None = None
    name: ClassVar[str] = ""
    #: seconds to wait for readiness
    timeout: ClassVar[float] = 90.0

    @property
    def port(self) -> int:
        return self.settings.port_of(self.name)

    @property
    def ports(self) -> dict[str, int]:
        """Every port the service binds, by the name of the variable that moves it."""
        return {self.name: self.port}

    @property
    def url(self) -> str | None:
        return None

    @property
    def log_file(self) -> Path:
        return self.settings.logs_dir / f"{self.name}.log"

    @property
    def pid_file(self) -> PidFile:
        return PidFile(self.settings.run_dir / f"{self.name}.pid")

    @property
    def data_path(self) -> Path:
        return self.db_root / "data" / self.name

    @property
    def db_root(self) -> Path:
        """Root of the files the service's own process writes (see ``database_root``)."""
        return database_root(self.settings.state_dir, self.run_as())

    def prepare(self) -> None:
        """One-time or per-start setup before the process starts (init data dir, write configs)."""
        return None

    @abstractmethod
    def command(self) -> list[str]: ...

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    @abstractmethod
    def ready(self) -> bool: ...

    def after_start(self) -> None:
        """Setup that needs the running service (users, grants)."""
        return None

    def run_as(self) -> str | None:
        return None

    def working_directory(self) -> Path | None:
        """Where the process starts (None: wherever `stack up` was run)."""
        return None

    def runs_as_configured(self, pid: int) -> bool:
        """Whether the running process ``pid`` is the one the settings ask for now (False: ``up``
        restarts it, e.g. moto running where ``CDC_S3_SERVER=seaweedfs`` asks for SeaweedFS)."""
        return True


class Postgres(Service):
    name = "postgres"

    @property
    def url(self) -> str:
        return f"postgresql://{STACK_DB_USER}@{self.settings.host}:{self.port}/postgres"

    def run_as(self) -> str | None:
        return self.user

    def prepare(self) -> None:
        assert self.binaries is not None
        data = self.data_path
        sockets = self.socket_dir
        sockets.mkdir(parents=True, exist_ok=True)
        chown_tree(sockets, self.user)
        if not (data / "PG_VERSION").exists():
            data.mkdir(parents=True, exist_ok=True)
            chown_tree(data, self.user)
            with tempfile.NamedTemporaryFile("w", delete=False, dir=sockets.parent) as pw:
                pw.write(self.settings.password("postgres") + "\n")
            try:
                chown_tree(Path(pw.name), self.user)
                result = subprocess.run(
                    [
                        str(self.binaries.pg_bin / "initdb"),
                        "-D", str(data),
                        "-U", STACK_DB_USER,
                        f"--pwfile={pw.name}",
                        "--auth-host=scram-sha-256",
                        "--auth-local=trust",
                        "--encoding=UTF8",
                        "--locale=C.UTF-8",
                    ],
                    capture_output=True, text=True, user=self.user, group=self.user,
                    extra_groups=[] if self.user else None,
                )  # fmt: skip
            finally:
                os.unlink(pw.name)
            if result.returncode != 0:
                shutil.rmtree(data, ignore_errors=True)
                raise StackError(f"initdb failed for {data}:\n{result.stdout}{result.stderr}")
            with open(data / "postgresql.conf", "a") as conf:
                conf.write("\ninclude_if_exists = 'cdc_stack.conf'\n")
        cert, key = self._ensure_certificate(data)
        # Rewritten on every start so a moved port takes effect.
        (data / "cdc_stack.conf").write_text(
            "\n".join(
                [
                    f"port = {self.port}",
                    f"listen_addresses = '{self.settings.host}'",
                    f"unix_socket_directories = '{sockets}'",
                    "wal_level = logical",
                    "max_replication_slots = 40",
                    "max_wal_senders = 40",
                    "max_connections = 200",
                    "shared_buffers = 256MB",
                    "work_mem = 16MB",
                    "maintenance_work_mem = 128MB",
                    "max_wal_size = 2GB",
                    # a slot that falls this far behind is invalidated rather than fill the disk
                    # (its pipeline then needs a new full load; the slot metrics show it coming)
                    "max_slot_wal_keep_size = 8GB",
                    "synchronous_commit = off",
                    # with asynchronous commits, logical decoding sends a change only once the WAL
                    # writer has flushed it: its default 200 ms delay was half of a change's latency
                    # (bench/latency_breakdown.py, "capture")
                    "wal_writer_delay = 10ms",
                    "logging_collector = off",
                    "log_min_messages = warning",
                    "timezone = 'UTC'",
                    # TLS is offered (clients choose): connection specs' tls settings are tested on it
                    "ssl = on",
                    f"ssl_cert_file = '{cert}'",
                    f"ssl_key_file = '{key}'",
                ]
            )
            + "\n"
        )
        chown_tree(data / "cdc_stack.conf", self.user)

    def _ensure_certificate(self, data: Path) -> tuple[Path, Path]:
        """A self-signed server certificate for 127.0.0.1/localhost, made once; its copy at
        ``settings.postgres_ca_file`` is the CA a client verifies it with."""
        cert, key = data / "server.crt", data / "server.key"
        if not cert.exists() or not key.exists():
            pem_cert, pem_key = self_signed_certificate("cdc-platform local stack PostgreSQL")
            key.write_bytes(pem_key)
            key.chmod(0o600)
            cert.write_bytes(pem_cert)
            chown_tree(key, self.user)
            chown_tree(cert, self.user)
        self.settings.postgres_ca_file.parent.mkdir(parents=True, exist_ok=True)
        self.settings.postgres_ca_file.write_bytes(cert.read_bytes())
        return cert, key

    def command(self) -> list[str]:
        assert self.binaries is not None
        return [str(self.binaries.pg_bin / "postgres"), "-D", str(self.data_path)]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PGDATA", None)
        return env

    @property
    def socket_dir(self) -> Path:
        return self.db_root / "run" / "pg-socket"

    def _local(self):
        """A connection over the Unix socket, where the `cdc` user is trusted (initdb --auth-local)."""
        # lazy: `cdc-platform stack` starts without the drivers; only this probe needs it
        import psycopg

        return psycopg.connect(host=str(self.socket_dir), port=self.port, user=STACK_DB_USER, dbname="postgres",
                               connect_timeout=2, autocommit=True)  # fmt: skip

    def ready(self) -> bool:
        # over the socket, so readiness does not depend on the password (after_start sets it)
        with self._local() as conn:
            return conn.execute("SELECT current_setting('wal_level')").fetchone()[0] == "logical"

    def after_start(self) -> None:
        """Give `cdc` this stack's password: a data directory kept from an earlier state dir at the
        same path (the /var/lib fallback of a private checkout) still holds that stack's password."""
        # lazy: `cdc-platform stack` starts without the drivers; only this probe needs it
        from psycopg import sql

        with self._local() as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(STACK_DB_USER), sql.Literal(self.settings.password("postgres"))))  # fmt: skip


def self_signed_certificate(common_name: str) -> tuple[bytes, bytes]:
    """(certificate, private key) in PEM, valid ten years for 127.0.0.1 and localhost."""

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption()),
    )  # fmt: skip


class MariaDB(Service):
    name = "mariadb"

    @property
    def url(self) -> str:
        return f"mysql://{STACK_DB_USER}@{self.settings.host}:{self.port}/"

    @property
    def socket(self) -> Path:
        return self.db_root / "run" / "mariadb.sock"

    @property
    def config_file(self) -> Path:
        return self.db_root / "config" / "mariadb.cnf"

    def run_as(self) -> str | None:
        return self.user

    def prepare(self) -> None:
        assert self.binaries is not None
        for sub in ("config", "run", "logs"):
            (self.db_root / sub).mkdir(parents=True, exist_ok=True)
        data = self.data_path
        self.config_file.write_text(
            "\n".join(
                [
                    "[mariadbd]",
                    f"datadir = {data}",
                    f"port = {self.port}",
                    f"bind-address = {self.settings.host}",
                    f"socket = {self.socket}",
                    f"pid-file = {self.db_root / 'run' / 'mariadb.server.pid'}",
                    f"log-error = {self.db_root / 'logs' / 'mariadb-server.err'}",
                    f"log-bin = {data / 'binlog'}",
                    "server-id = 1",
                    "binlog_format = ROW",
                    "binlog_row_image = FULL",
                    "expire_logs_days = 2",
                    "innodb_buffer_pool_size = 256M",
                    "innodb_log_file_size = 256M",
                    "innodb_flush_log_at_trx_commit = 2",
                    "max_connections = 200",
                    "max_allowed_packet = 256M",
                    "local_infile = 1",
                    "skip-name-resolve",
                    "character-set-server = utf8mb4",
                    "collation-server = utf8mb4_unicode_ci",
                    "default-time-zone = '+00:00'",
                ]
            )
            + "\n"
        )
        for sub in ("config", "run", "logs"):
            chown_tree(self.db_root / sub, self.user)
        if not (data / "mysql").is_dir():
            data.mkdir(parents=True, exist_ok=True)
            chown_tree(data, self.user)
            result = subprocess.run(
                [
                    str(self.binaries.mariadb_install_db),
                    f"--defaults-file={self.config_file}",
                    f"--datadir={data}",
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                    *([f"--user={self.user}"] if self.user else []),
                ],
                capture_output=True, text=True,
            )  # fmt: skip
            if result.returncode != 0:
                shutil.rmtree(data, ignore_errors=True)
                raise StackError(f"mariadb-install-db failed for {data}:\n{result.stdout}{result.stderr}")
            chown_tree(data, self.user)

    def command(self) -> list[str]:
        assert self.binaries is not None
        cmd = [str(self.binaries.mariadbd), f"--defaults-file={self.config_file}"]
        return cmd

    def ready(self) -> bool:
        # lazy: `cdc-platform stack` starts without the drivers; only this probe needs it
        import pymysql

        conn = pymysql.connect(unix_socket=str(self.socket), user=self._socket_user(), connect_timeout=2)
        conn.close()
        return True

    def _socket_user(self) -> str:
        # unix_socket authentication maps the OS account to the MariaDB account of the same name.

        return pwd.getpwuid(os.geteuid()).pw_name

    def after_start(self) -> None:
        # lazy: `cdc-platform stack` starts without the drivers; only this probe needs it
        import pymysql

        password = self.settings.password("mariadb")
        conn = pymysql.connect(unix_socket=str(self.socket), user=self._socket_user(), autocommit=True)
        try:
            with conn.cursor() as cur:
                for host in ("127.0.0.1", "localhost", "%"):
                    account = (STACK_DB_USER, host)
                    cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (*account, password))
                    cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (*account, password))
                    cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", account)
        finally:
            conn.close()


class _Jvm(Service):
    """Kafka and Connect run as the service user too: whoever reaches Connect's REST API can make
    the worker open files, so the worker must not be able to open root's."""

    heap: ClassVar[str] = "512m"
    gc_flags: ClassVar[tuple[str, ...]] = ("-XX:MaxGCPauseMillis=20",)

    def run_as(self) -> str | None:
        return self.user

    def _java(
        self, main_class: str, *args: str, agents: tuple[str, ...] = (), class_archive: bool = False
    ) -> list[str]:
        """``class_archive``: the long-running service starts from its class-data-sharing archive
        (cdc_platform/stack/class_archive.py), not a one-off tool."""
        assert self.binaries is not None
        libs = kafka_libs_dir(self.settings)
        flags = ["-Xms128m", f"-Xmx{self.heap}", "-XX:+UseG1GC", *self.gc_flags, "-Djava.awt.headless=true"]
        classpath = f"{libs}/*"
        if class_archive:
            flags += archive_flags(
                cache_dir=self.settings.cache_dir / "class-archives",
                service=self.name,
                java=self.binaries.java,
                base_flags=flags,
                classpath=classpath,
                roots=(libs, *self.archive_roots()),
                owner=self.run_as(),
            )
        return [
            str(self.binaries.java),
            *flags,
            *agents,
            f"-Dlog4j2.configurationFile={self._log4j_config()}",
            "-cp",
            classpath,
            main_class,
            *args,
        ]

    def archive_roots(self) -> tuple[Path, ...]:
        """Jars beyond the class path that the service loads (Connect's plugins)."""
        return ()

    def _log4j_config(self) -> Path:
        path = self.settings.config_dir / "log4j2.properties"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "\n".join(
                [
                    "status = warn",
                    "appender.out.type = Console",
                    "appender.out.name = OUT",
                    "appender.out.layout.type = PatternLayout",
                    "appender.out.layout.pattern = [%d] %p %m (%c)%n",
                    "rootLogger.level = INFO",
                    "rootLogger.appenderRef.out.ref = OUT",
                    "logger.reflections.name = org.reflections",
                    "logger.reflections.level = ERROR",
                    "logger.kafka_clients.name = org.apache.kafka.clients",
                    "logger.kafka_clients.level = WARN",
                ]
            )
            + "\n"
        )
        return path


class Kafka(_Jvm):
    name = "kafka"
    heap = "768m"

    @property
    def ports(self) -> dict[str, int]:
        return {"kafka": self.port, "kafka-controller": self.settings.kafka_controller_port}

    @property
    def url(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def properties_file(self) -> Path:
        return self.settings.config_dir / "kafka.properties"

    def prepare(self) -> None:
        host, ctl = self.settings.host, self.settings.kafka_controller_port
        self.properties_file.parent.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{host}:{ctl}",
                    f"listeners=PLAINTEXT://{host}:{self.port},CONTROLLER://{host}:{ctl}",
                    f"advertised.listeners=PLAINTEXT://{host}:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.data_path}",
                    "num.partitions=1",
                    "default.replication.factor=1",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "log.retention.hours=168",
                    "log.segment.bytes=268435456",
                ]
            )
            + "\n"
        )
        legacy = self.settings.data_dir / self.name  # where a broker run as root kept its log
        if legacy != self.data_path and legacy.is_dir() and not self.data_path.exists():
            self.data_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(legacy), str(self.data_path))
        self.data_path.mkdir(parents=True, exist_ok=True)
        chown_tree(self.data_path, self.user)  # also a data dir written by an earlier root broker
        if not (self.data_path / "meta.properties").exists():
            cmd = self._java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                str(uuid.uuid4()).replace("-", "")[:22],
                "-c",
                str(self.properties_file),
            )
            # StorageTool calls System.exit, so it always runs in its own JVM.
            result = subprocess.run(
                cmd, capture_output=True, text=True, user=self.user, group=self.user,
                extra_groups=[] if self.user else None,
            )  # fmt: skip
            if result.returncode != 0:
                raise StackError(
                    f"Formatting Kafka storage in {self.data_path} failed:\n{result.stdout}{result.stderr}"
                )

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.properties_file), class_archive=True)

    def ready(self) -> bool:
        # lazy: `cdc-platform stack` starts without librdkafka; only this probe needs it
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(kafka_client_config(self.settings.kafka_bootstrap))
        metadata = admin.list_topics(timeout=3)
        return bool(metadata.brokers)


#: environment variables a connector config may reference through ${env:...} (a full match)
ENV_ALLOWLIST = "CDC_[A-Z0-9_]+|[A-Z0-9_]*(PASSWORD|SECRET|TOKEN)[A-Z0-9_]*"


def connect_allowed_paths(settings: StackSettings) -> list[str]:
    """Directories whose files ${file:...}/${dir:...} references may read: the stack's secrets, plus
    ``CDC_CONNECT_ALLOWED_PATHS`` (comma-separated) for secrets a user keeps elsewhere."""
    extra = [p.strip() for p in os.environ.get("CDC_CONNECT_ALLOWED_PATHS", "").split(",") if p.strip()]
    return [str(settings.secrets_file.parent), *(str(Path(p).resolve()) for p in extra)]


JOLOKIA_READ_ONLY_POLICY = """<?xml version="1.0" encoding="utf-8"?>
<restrict>
  <commands>
    <command>read</command>
    <command>list</command>
    <command>search</command>
    <command>version</command>
  </commands>
</restrict>
"""


@dataclass
class Connect(_Jvm):
    """One worker of the stack's Connect group; worker 1 is ``connect``, worker k is ``connect-k``.
    All workers share the group and its config, offset and status topics, so the cluster reassigns a
    stopped worker's connectors and tasks to the others."""

    heap = "1g"
    gc_flags = CONNECT_GC_FLAGS
    timeout = 180.0
    worker: int = 1
    #: the Connect group and the prefix of its config, offset and status topics
    group: ClassVar[str] = "cdc-platform-connect"
    topics: ClassVar[str] = "_cdc_connect"

    @property
    def name(self) -> str:  # type: ignore[override]
        return worker_service("connect", self.worker)

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def jolokia_port(self) -> int:
        return self.settings.port_of(worker_service("jolokia", self.worker))

    @property
    def jolokia_url(self) -> str:
        return f"http://{self.settings.host}:{self.jolokia_port}/jolokia"

    @property
    def ports(self) -> dict[str, int]:
        return {self.name: self.port, worker_service("jolokia", self.worker): self.jolokia_port}

    @property
    def properties_file(self) -> Path:
        suffix = "" if self.worker == 1 else f"-{self.worker}"
        return self.settings.config_dir / f"connect-distributed{suffix}.properties"

    @property
    def jolokia_policy_file(self) -> Path:
        return self.settings.config_dir / "jolokia-access.xml"

    def agent_ready(self) -> bool:
        """Jolokia answers: Debezium's and Connect's MBeans can be read over HTTP."""
        try:
            return httpx.get(f"{self.jolokia_url}/version", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def prepare(self) -> None:
        host = self.settings.host
        allowed_paths = ",".join(connect_allowed_paths(self.settings))
        self.properties_file.parent.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(
            "\n".join(
                [
                    f"bootstrap.servers={self.settings.kafka_bootstrap}",
                    f"group.id={self.group}",
                    "key.converter=org.apache.kafka.connect.json.JsonConverter",
                    "value.converter=org.apache.kafka.connect.json.JsonConverter",
                    # the JDBC sink needs the schemas inside every record
                    "key.converter.schemas.enable=true",
                    "value.converter.schemas.enable=true",
                    # a NULL stays NULL in a column with a default (connectors set it too)
                    "value.converter.replace.null.with.default=false",
                    f"config.storage.topic={self.topics}_configs",
                    f"offset.storage.topic={self.topics}_offsets",
                    f"status.storage.topic={self.topics}_status",
                    "config.storage.replication.factor=1",
                    "offset.storage.replication.factor=1",
                    "status.storage.replication.factor=1",
                    "offset.storage.partitions=5",
                    "status.storage.partitions=1",
                    # also the sink's offset commit interval, which drives lag figures
                    "offset.flush.interval.ms=1000",
                    f"listeners=http://{host}:{self.port}",
                    f"rest.advertised.host.name={host}",
                    f"rest.advertised.port={self.port}",
                    f"plugin.path={plugins_dir(self.settings)}",
                    # every Debezium 3.5 plugin ships ServiceLoader manifests: skip the slow classpath scan
                    "plugin.discovery=service_load",
                    "config.providers=env,file,dir",
                    "config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider",
                    "config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider",
                    "config.providers.dir.class=org.apache.kafka.common.config.provider.DirectoryConfigProvider",
                    # whoever reaches the REST API can have any reference resolved: only secrets
                    f"config.providers.file.param.allowed.paths={allowed_paths}",
                    f"config.providers.dir.param.allowed.paths={allowed_paths}",
                    f"config.providers.env.param.allowlist.pattern={ENV_ALLOWLIST}",
                    "connector.client.config.override.policy=All",
                    *(f"{key}={value}" for key, value in WORKER_RECOVERY_SETTINGS.items()),
                    "task.shutdown.graceful.timeout.ms=10000",
                ]
            )
            + "\n"
        )

    def command(self) -> list[str]:
        # Jolokia on loopback, read-only by policy: metrics can be read, no MBean written or invoked
        self.jolokia_policy_file.write_text(JOLOKIA_READ_ONLY_POLICY)
        agent = (f"-javaagent:{jolokia_agent_jar(self.settings)}=host={self.settings.host},"
                 f"port={self.jolokia_port},policyLocation=file://{self.jolokia_policy_file},"
                 "discoveryEnabled=false")  # fmt: skip
        return self._java("org.apache.kafka.connect.cli.ConnectDistributed", str(self.properties_file),
                          agents=(agent,), class_archive=True)  # fmt: skip

    def archive_roots(self) -> tuple[Path, ...]:
        return (plugins_dir(self.settings), jolokia_agent_jar(self.settings))

    def ready(self) -> bool:
        response = httpx.get(f"{self.url}/connector-plugins", timeout=3)
        response.raise_for_status()
        classes = {p["class"] for p in response.json()}
        return all(cls in classes for cls in REQUIRED_PLUGINS) and self.agent_ready()


@dataclass
class BulkConnect(Connect):
    """A second, separate Connect cluster (``CDC_CONNECT_BULK=1``), its own group and topics, for
    pipelines much busier than the others; pipelines are placed on it by a code location of their
    own whose ``connect_url``/``jolokia_url`` point here.

    Why a cluster and not a worker: the Connect group places tasks itself, so a second worker of the
    same group cannot keep a busy pipeline's tasks away from the others, and each connector deployed
    rebalances the group. Measured on two cores (bench/README.md, "One busy pipeline beside
    another"): a 100k-change burst on the same worker took the other pipeline's p99 to 10-13 s, on
    this cluster to 0.5-0.7 s (the burst drained in 35-61 s, 30-36 s on the shared worker).
    ``connect_bulk_nice`` lowers its JVM's CPU priority for a machine the clusters share with other
    work (at 19 the burst drained half as fast, with no gain for the other pipeline here).
    """

    group: ClassVar[str] = "cdc-platform-connect-bulk"
    topics: ClassVar[str] = "_cdc_connect_bulk"

    @property
    def name(self) -> str:  # type: ignore[override]
        return "connect-bulk"

    @property
    def jolokia_port(self) -> int:
        return self.settings.port_of("jolokia-bulk")

    @property
    def ports(self) -> dict[str, int]:
        return {self.name: self.port, "jolokia-bulk": self.jolokia_port}

    @property
    def properties_file(self) -> Path:
        return self.settings.config_dir / "connect-distributed-bulk.properties"

    @property
    def jolokia_policy_file(self) -> Path:
        return self.settings.config_dir / "jolokia-access-bulk.xml"

    def command(self) -> list[str]:
        niceness = self.settings.connect_bulk_nice
        if not niceness:
            return super().command()
        return [shutil.which("nice") or "/usr/bin/nice", "-n", str(niceness), *super().command()]


class S3(Service):
    """moto's S3 server, or with ``CDC_S3_SERVER=seaweedfs`` SeaweedFS's S3 gateway (``weed server``:
    master, volume server and filer in one process, on the S3 port + ``SEAWEEDFS_OFFSETS``, each
    gRPC port 10000 above). Without identities configured the gateway accepts any key, as moto does."""

    name = "s3"
    #: SeaweedFS's own servers behind the gateway, at the S3 port + these
    SEAWEEDFS_OFFSETS: ClassVar[dict[str, int]] = {"master": 11, "volume": 12, "filer": 13}
    #: volumes of 64 MB, up to 5,000: every bucket is a collection that takes 7 volumes of its own
    #: (files grow as written, so an empty slot costs nothing). With SeaweedFS's defaults (30 GB
    #: volumes counted against free disk) a few test buckets exhausted them ("No writable volumes and
    #: no free volumes left"); 500 lasted about 70 buckets, three runs of the S3 tests on one data dir
    #: ("Not enough data nodes found")
    SEAWEEDFS_VOLUME_MB: ClassVar[int] = 64
    SEAWEEDFS_MAX_VOLUMES: ClassVar[int] = 5000

    @property
    def seaweedfs(self) -> bool:
        return self.settings.s3_server == "seaweedfs"

    @property
    def url(self) -> str:
        return self.settings.s3_url

    @property
    def ports(self) -> dict[str, int]:
        if not self.seaweedfs:
            return super().ports
        inner = {f"s3-{part}": self.port + offset for part, offset in self.SEAWEEDFS_OFFSETS.items()}
        every = {self.name: self.port, **inner}
        return {**every, **{f"{name}-grpc": port + 10000 for name, port in every.items()}}

    def prepare(self) -> None:
        if self.seaweedfs:
            ensure_seaweedfs(self.settings)
            self.data_path.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        if not self.seaweedfs:
            return [sys.executable, "-m", "moto.server", "-H", self.settings.host, "-p", str(self.port)]
        ports = self.ports
        host = self.settings.host
        return [
            str(weed_binary(self.settings)), "server", f"-dir={self.data_path}", f"-ip={host}", f"-ip.bind={host}",
            "-s3", f"-s3.port={self.port}", f"-s3.port.grpc={ports['s3-grpc']}",
            f"-master.port={ports['s3-master']}", f"-master.port.grpc={ports['s3-master-grpc']}",
            f"-master.volumeSizeLimitMB={self.SEAWEEDFS_VOLUME_MB}",
            f"-volume.port={ports['s3-volume']}", f"-volume.port.grpc={ports['s3-volume-grpc']}",
            f"-volume.max={self.SEAWEEDFS_MAX_VOLUMES}",
            "-filer", f"-filer.port={ports['s3-filer']}", f"-filer.port.grpc={ports['s3-filer-grpc']}",
        ]  # fmt: skip

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/", timeout=2).status_code == 200

    def runs_as_configured(self, pid: int) -> bool:
        try:
            program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            return True  # cannot tell: leave it running
        return (Path(program.decode(errors="replace")).name == "weed") == self.seaweedfs


#: in start order; ``down`` stops them in reverse
SERVICE_CLASSES: tuple[type[Service], ...] = (Postgres, MariaDB, Kafka, Connect, S3)


def running_extra_workers(settings: StackSettings) -> list[int]:
    """Workers beyond the configured count that still run (started with a larger
    ``CDC_CONNECT_WORKERS``): ``status`` shows them and ``down`` stops them."""
    found = []
    for pid_path in settings.run_dir.glob("connect-*.pid"):
        number = pid_path.stem.rpartition("-")[2]
        if number.isdigit() and int(number) > settings.connect_workers and PidFile(pid_path).running_pid():
            found.append(int(number))
    return sorted(found)


def all_services(
    settings: StackSettings, binaries: Binaries | None = None, user: str | None = None
) -> list[Service]:
    services: list[Service] = []
    for cls in SERVICE_CLASSES:
        if cls is Connect:
            workers = [*range(1, settings.connect_workers + 1), *running_extra_workers(settings)]
            services.extend(Connect(settings, binaries, user, worker=k) for k in workers)
            bulk = BulkConnect(settings, binaries, user)
            # started with CDC_CONNECT_BULK=1 and still running: `status` shows it, `down` stops it
            if settings.connect_bulk or bulk.pid_file.running_pid():
                services.append(bulk)
        else:
            services.append(cls(settings, binaries, user))
    return services
