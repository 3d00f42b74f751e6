"""The `cdc-platform stack` command as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from cdc_platform.settings import PORT_VARIABLES

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "cdc_platform.cli"]


def test_status_json_reports_every_service_running(stack):
    out = subprocess.run(
        [*CLI, "stack", "status", "--json"], capture_output=True, text=True, check=True
    ).stdout
    services = {s["name"]: s for s in json.loads(out)}
    assert set(services) == {"postgres", "mariadb", "kafka", "connect", "s3"}
    for name, service in services.items():
        assert service["state"] == "running", name
        assert service["port"] == stack.port_of(name)
        assert service["url"], name
    assert services["connect"]["url"] == stack.connect_url
    assert services["s3"]["url"] == stack.s3_url


def _free_port() -> int:
    """A free port below the ephemeral range (the stack refuses ports inside it)."""
    import random

    while True:
        port = random.randint(20000, 30000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def test_up_with_a_held_port_names_the_port_and_its_variable(tmp_path, stack):
    """A second stack in a fresh state dir whose Kafka port another program holds must refuse to start."""
    env = {**os.environ, "CDC_STACK_DIR": str(tmp_path / "stack")}
    for variable, _ in PORT_VARIABLES.values():
        env[variable] = str(_free_port())
    with socket.socket() as holder:
        held = _free_port()
        holder.bind(("127.0.0.1", held))
        holder.listen(1)
        env["CDC_KAFKA_PORT"] = str(held)
        result = subprocess.run([*CLI, "stack", "up"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert f"port {held}" in result.stderr
    assert "CDC_KAFKA_PORT" in result.stderr
    assert "Traceback" not in result.stderr
    # nothing was started or created for the refused stack
    assert not (tmp_path / "stack" / "run").exists()


def test_bad_port_variable_is_a_clear_error(tmp_path):
    env = {**os.environ, "CDC_STACK_DIR": str(tmp_path), "CDC_PG_PORT": "not-a-port"}
    result = subprocess.run([*CLI, "stack", "status"], capture_output=True, text=True, env=env)
    assert result.returncode == 1
    assert "CDC_PG_PORT='not-a-port' is not a port number" in result.stderr


def test_logs_of_an_unknown_service_lists_the_known_ones():
    result = subprocess.run([*CLI, "stack", "logs", "zookeeper"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "unknown service 'zookeeper'" in result.stderr and "connect" in result.stderr


@pytest.mark.parametrize(("service", "args"), [("postgres", ["postgres", "-c", "SELECT 40 + 2 AS answer"]),
                                               ("mariadb", ["-e", "SELECT 40 + 2 AS answer"])])  # fmt: skip
def test_stack_sql_opens_a_client_without_showing_the_password(stack, service, args):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "cdc_platform.cli", "stack", "sql", service, *args],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "42" in result.stdout
    assert stack.password(service) not in result.stdout + result.stderr


def test_up_refuses_a_port_in_the_ephemeral_range(tmp_path):
    env = {**os.environ, "CDC_STACK_DIR": str(tmp_path / "stack"), "CDC_S3_PORT": "55000"}
    result = subprocess.run([*CLI, "stack", "up"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert "55000 (s3, CDC_S3_PORT)" in result.stderr and "ephemeral port range" in result.stderr
    assert not (tmp_path / "stack" / "run").exists()


@pytest.mark.serial  # changes the password every test logs in with
def test_postgres_start_restores_the_stacks_password_in_a_kept_data_directory(stack):
    """A data directory kept from an earlier checkout at the same path holds another password;
    the start sets this stack's again (injected here by changing the password behind its back)."""
    import psycopg
    from psycopg import sql

    from cdc_platform.stack.services import Postgres

    service = Postgres(stack)
    with service._local() as conn:
        conn.execute(sql.SQL("ALTER ROLE cdc PASSWORD {}").format(sql.Literal("an-earlier-stacks-password")))
    try:
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(host=stack.host, port=stack.postgres_port, user="cdc", dbname="postgres",
                            password=stack.password("postgres"), connect_timeout=5).close()  # fmt: skip
    finally:
        service.after_start()
    psycopg.connect(host=stack.host, port=stack.postgres_port, user="cdc", dbname="postgres",
                    password=stack.password("postgres"), connect_timeout=5).close()  # fmt: skip
