"""docker-compose.yml cannot be run here (no Docker engine), so these tests check what can be checked
without one: the file's shape, and that it agrees with the specs it ships and its support files in
deploy/compose/ (service names, container ports, mounted paths, secrets, the Dagster instance)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from cdc_platform.settings import DEBEZIUM_VERSION, KAFKA_VERSION
from cdc_platform.specs.loader import load_specs

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
#: the keys of the Compose specification this file may use at each level
TOP_KEYS = {"services", "volumes", "secrets", "networks", "configs", "name"}
SERVICE_KEYS = {"image", "build", "command", "entrypoint", "environment", "volumes", "ports", "depends_on",
                "secrets", "healthcheck", "restart", "user", "working_dir"}  # fmt: skip
#: what each service listens on inside the compose network
CONTAINER_PORTS = {"postgres": 5432, "mariadb": 3306, "kafka": 9092, "connect": 8083, "connect-2": 8083,
                   "s3": 5000, "code-admin": 4000, "code-operator": 4000, "proxy": 443}  # fmt: skip
#: the services built from the project's Dockerfile (Dagster and the platform's code)
PLATFORM = (
    "code-admin",
    "code-operator",
    "dagster-daemon",
    "webserver-admin",
    "webserver-operator",
    "webserver-viewer",
)


def _mounts(service: str) -> dict[str, str]:
    """container path -> host path (relative to the repository) of a service's bind mounts."""
    out = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out[target] = source
    return out


def test_the_file_has_the_compose_shape():
    assert set(k for k in COMPOSE if not k.startswith("x-")) <= TOP_KEYS
    for name, service in SERVICES.items():
        assert set(service) <= SERVICE_KEYS, (name, set(service) - SERVICE_KEYS)
        assert "image" in service or "build" in service, name
        for port in service.get("ports", []):
            assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+", port), (name, port)
        for dependency in service.get("depends_on", []):
            assert dependency in SERVICES, (name, dependency)
    named = set(COMPOSE.get("volumes", {}))
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(".") or source in named, (name, volume)


def test_published_ports_are_the_local_stacks_and_reach_the_container_ports():
    published = {name: {int(p.split(":")[1]): int(p.split(":")[2]) for p in s.get("ports", [])}
                 for name, s in SERVICES.items()}  # fmt: skip
    assert published["postgres"] == {15432: 5432} and published["mariadb"] == {13306: 3306}
    assert published["connect"] == {18083: 8083} and published["s3"] == {15000: 5000}
    assert published["connect-2"] == {18084: 8083} and published["proxy"] == {18443: 443}
    # the UI is reached through the signed-in proxy only: no webserver or code server publishes a port
    assert not any(published[name] for name in (*PLATFORM, "auth"))
    assert published["kafka"] == {19092: 19092}
    assert "HOST://:19092" in SERVICES["kafka"]["environment"]["KAFKA_LISTENERS"]


def test_bind_mounted_files_exist_except_the_documented_prerequisites(tmp_path):
    prerequisites = {
        "./.stack/secrets",
        "./.stack/config/proxy.crt",
        "./connect-plugins/cdc-platform-converters/target/cdc-platform-converters-0.1.0.jar",
        "./connect-plugins/cdc-platform-sink/target/cdc-platform-sink-0.1.0.jar",
    }
    for name in SERVICES:
        for source in _mounts(name).values():
            if source not in prerequisites:
                assert (ROOT / source).exists(), (name, source)
    # the jar is what the converter's Maven build produces
    pom = (ROOT / "connect-plugins/cdc-platform-converters/pom.xml").read_text()
    assert "<artifactId>cdc-platform-converters</artifactId>" in pom and "<version>0.1.0</version>" in pom
    sink_pom = (ROOT / "connect-plugins/cdc-platform-sink/pom.xml").read_text()
    assert "<artifactId>cdc-platform-sink</artifactId>" in sink_pom and "<version>0.1.0</version>" in sink_pom
    for worker in ("connect", "connect-2"):
        assert _mounts(worker)["/kafka/connect/debezium-connector-jdbc/cdc-platform-sink.jar"].endswith(
            "cdc-platform-sink-0.1.0.jar"
        )


def test_the_shipped_specs_resolve_to_compose_services_inside_the_network(monkeypatch):
    for key, value in SERVICES["dagster-daemon"]["environment"].items():
        monkeypatch.setenv(key, str(value))
    for service in PLATFORM:
        assert SERVICES[service]["environment"] == SERVICES["dagster-daemon"]["environment"], service
    specs = load_specs(ROOT / "resources")
    secrets_dir = "/cdc-stack/secrets"
    for name, conn in specs.connections.items():
        if conn.kind.value in ("postgresql", "mariadb", "mysql"):
            assert conn.host in SERVICES, (name, conn.host)
            assert conn.port == CONTAINER_PORTS[conn.host], (name, conn.port)
            # the password file: mounted where the spec says, in Dagster and in Connect (which
            # resolves the connector configs' ${file:...} references from the same path)
            path = Path(conn.password.file)
            assert str(path.parent) == secrets_dir, (name, path)
            for service in (*PLATFORM, "connect"):
                assert _mounts(service).get(secrets_dir) == "./.stack/secrets", service
    environment = SERVICES["dagster-daemon"]["environment"]
    assert environment["CDC_CONNECT_URL"] == f"http://connect:{CONTAINER_PORTS['connect']}"
    assert environment["CDC_KAFKA_BOOTSTRAP"] == f"kafka:{CONTAINER_PORTS['kafka']}"
    assert "PLAINTEXT://kafka:9092" in SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    dockerfile = (ROOT / "deploy/compose/Dockerfile").read_text()
    assert "COPY resources ./resources" in dockerfile and "WORKDIR /opt/cdc-platform" in dockerfile
    assert environment["CDC_SPECS_DIR"] == "/opt/cdc-platform/resources"


def test_the_dagster_instance_is_dagster_postgres_on_the_postgres_service():
    instance = yaml.safe_load((ROOT / "deploy/compose/dagster.yaml").read_text())
    db = instance["storage"]["postgres"]["postgres_db"]
    assert db["hostname"] == "postgres" and db["port"] == CONTAINER_PORTS["postgres"]
    assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    init = (ROOT / "deploy/compose/postgres-init.sql").read_text()
    assert f"CREATE DATABASE {db['db_name']};" in init and "CREATE DATABASE cdc_platform;" in init
    script = (ROOT / "deploy/compose/with-secrets.sh").read_text()
    assert "export DAGSTER_PG_PASSWORD" in script and "@postgres:5432/cdc_platform" in script
    for service in PLATFORM:
        assert SERVICES[service]["build"]["dockerfile"] == "deploy/compose/Dockerfile"
    assert "dagster.yaml /opt/dagster/home/dagster.yaml" in (ROOT / "deploy/compose/Dockerfile").read_text()


@pytest.mark.parametrize("database", ["postgres", "mariadb"])
def test_databases_get_their_password_and_the_platforms_grants(database):
    service = SERVICES[database]
    assert service["entrypoint"][0] == "/cdc-tools/with-secrets.sh"
    assert _mounts(database)["/cdc-tools/with-secrets.sh"] == "./deploy/compose/with-secrets.sh"
    script = (ROOT / "deploy/compose/with-secrets.sh").read_text()
    assert f"{database.upper()}_PASSWORD=" in script
    init_target = next(t for t in _mounts(database) if t.startswith("/docker-entrypoint-initdb.d/"))
    assert init_target.endswith(".sql")
    # logical decoding / the row binlog Debezium needs
    flags = " ".join(service["command"])
    if database == "postgres":
        assert "wal_level=logical" in flags
        assert {"shop", "analytics"} <= set(re.findall(r"CREATE DATABASE (\w+);", (ROOT / _mounts(database)[init_target]).read_text()))  # fmt: skip
    else:
        assert "--binlog-format=ROW" in flags and "--binlog-row-image=FULL" in flags
        assert (
            "GRANT ALL PRIVILEGES ON *.* TO 'cdc'@'%'" in (ROOT / _mounts(database)[init_target]).read_text()
        )


def test_with_secrets_exports_each_programs_password(tmp_path):
    secrets = tmp_path / "stack.properties"
    secrets.write_text("# generated\npostgres.password=pg-secret\nmariadb.password=my=secret\n")
    out = subprocess.run(["sh", str(ROOT / "deploy/compose/with-secrets.sh"), "env"], capture_output=True,
                         text=True, check=True, env={"PATH": "/usr/bin:/bin", "CDC_SECRETS_FILE": str(secrets)})  # fmt: skip
    env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert env["POSTGRES_PASSWORD"] == env["DAGSTER_PG_PASSWORD"] == "pg-secret"
    assert env["MARIADB_PASSWORD"] == env["MARIADB_ROOT_PASSWORD"] == "my=secret"
    assert env["CDC_METRICS_URL"] == "postgresql+psycopg://cdc:pg-secret@postgres:5432/cdc_platform"


def test_connect_matches_the_local_workers_settings():
    environment = SERVICES["connect"]["environment"]
    assert environment["CONNECT_CONNECTOR_CLIENT_CONFIG_OVERRIDE_POLICY"] == "All"  # per-connector sizes
    assert "file" in environment["CONNECT_CONFIG_PROVIDERS"].split(",")
    assert environment["CONNECT_VALUE_CONVERTER_REPLACE_NULL_WITH_DEFAULT"] == "false"
    assert SERVICES["connect"]["image"] == f"quay.io/debezium/connect:{DEBEZIUM_VERSION}"
    assert SERVICES["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"


def test_compose_runs_the_production_profiles_services_with_the_same_settings():
    """The production profile (cdc_platform/stack/production.py) and this file describe one deployment."""
    import sys

    from cdc_platform.access.users import Role
    from cdc_platform.settings import StackSettings
    from cdc_platform.stack.manager import stack_services
    from cdc_platform.stack.production import INSTANCE_YAML, OAUTH2_PROXY_VERSION
    from cdc_platform.stack.proxy_config import oauth2_proxy_args

    settings = StackSettings(state_dir=ROOT / ".stack-never-created", project_root=ROOT, postgres_port=1,
                             mariadb_port=2, kafka_port=3, kafka_controller_port=4, connect_port=5, s3_port=6,
                             connect_workers=2, profile="production")  # fmt: skip
    assert [s.name for s in stack_services(settings)] == list(SERVICES)
    # the same Dagster instance: dagster-postgres, the run queue and its limit, run monitoring
    local, compose = (
        yaml.safe_load(INSTANCE_YAML),
        yaml.safe_load((ROOT / "deploy/compose/dagster.yaml").read_text()),
    )
    for key in ("run_coordinator", "run_monitoring", "telemetry", "nux"):
        assert local[key] == compose[key], key
    assert set(local["storage"]["postgres"]["postgres_db"]) == set(
        compose["storage"]["postgres"]["postgres_db"]
    )
    # the same code servers, role webservers and workspaces
    for which, module in (
        ("admin", "cdc_platform.definitions"),
        ("operator", "cdc_platform.definitions_operator"),
    ):
        command = SERVICES[f"code-{which}"]["command"]
        assert command[command.index("-m") + 1] == module and "cdc_platform" in command
        workspace = yaml.safe_load((ROOT / f"deploy/compose/workspace-{which}.yaml").read_text())
        assert workspace["load_from"][0]["grpc_server"] == {"host": f"code-{which}", "port": 4000,
                                                            "location_name": "cdc_platform"}  # fmt: skip
    for role in Role:
        command = SERVICES[f"webserver-{role.value}"]["command"]
        assert command[:3] == ["python", "-m", "cdc_platform.access.webserver"]
        assert command[command.index("--role") + 1] == role.value
        which = "operator" if role is Role.operator else "admin"
        assert command[command.index("--workspace") + 1].endswith(f"workspace-{which}.yaml")
    local_commands = {
        s.name: s.command() for s in stack_services(settings) if s.name.startswith("webserver-")
    }
    for name, command in local_commands.items():
        assert command[0] == sys.executable and command[1:3] == SERVICES[name]["command"][1:3]
    # the same sign-in service and proxy configuration
    assert SERVICES["auth"]["command"] == oauth2_proxy_args(
        host="0.0.0.0", auth_port=4180, htpasswd=Path("/cdc-stack/secrets/users.htpasswd"),
        cookie_secret_file=Path("/cdc-stack/secrets/session-cookie.secret"), templates=Path("/templates"),
        trusted_proxy="0.0.0.0/0",
    )  # fmt: skip
    assert SERVICES["auth"]["image"].endswith(OAUTH2_PROXY_VERSION)
    import runpy

    rendered = runpy.run_path(str(ROOT / "deploy/compose/render.py"))["render"]()
    assert (ROOT / "deploy/compose/nginx.conf").read_text() == rendered, "run python deploy/compose/render.py"


def test_compose_workers_move_a_lost_workers_share_as_fast_as_the_stacks():
    """The Debezium image maps ``CONNECT_<KEY>`` to the worker property ``<key>``."""
    from cdc_platform.stack.services import WORKER_RECOVERY_SETTINGS

    for worker in ("connect", "connect-2"):
        environment = SERVICES[worker]["environment"]
        for key, value in WORKER_RECOVERY_SETTINGS.items():
            variable = "CONNECT_" + key.upper().replace(".", "_")
            assert str(environment.get(variable)) == value, (worker, variable)


def test_compose_workers_collect_garbage_as_the_stacks_worker_does():
    """kafka-run-class.sh takes KAFKA_JVM_PERFORMANCE_OPTS whole, in place of its G1 defaults."""
    from cdc_platform.stack.services import CONNECT_GC_FLAGS

    for worker in ("connect", "connect-2"):
        flags = str(SERVICES[worker]["environment"]["KAFKA_JVM_PERFORMANCE_OPTS"]).split()
        assert "-XX:+UseG1GC" in flags, worker
        for flag in CONNECT_GC_FLAGS:
            assert flag in flags, (worker, flag)
