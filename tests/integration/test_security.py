"""Security of the chain: TLS settings reach every connection, and the Connect worker resolves
config-provider references only for secrets."""

from __future__ import annotations

import pwd
import shutil
from pathlib import Path

import httpx
import pytest

from tests.pipeline_support import connection, materialize, teardown, write_specs
from tests.support import pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", ["require", "verify-full"])
def test_postgres_tls_reaches_the_copy_and_both_connectors(stack, connect, tmp_path, mode):
    tls = {"mode": mode, **({"root_cert": str(stack.postgres_ca_file)} if mode == "verify-full" else {})}
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t VALUES (1, 'copied')")
        name = unique("tls")
        specs = write_specs(
            tmp_path,
            {"src": {**connection(stack, "postgresql", src), "tls": tls},
             "tgt": {**connection(stack, "postgresql", tgt), "tls": tls}},
            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
              "tables": {"names": ["public.t"]}}],
        )  # fmt: skip
        materialize(stack, specs, name)
        try:
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t VALUES (2, 'streamed')")
            wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY id").fetchall(),
                           lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY id").fetchall())  # fmt: skip
            source_config = connect.get_config(f"{name}-source")
            assert source_config["database.sslmode"] == mode
            assert f"sslmode={mode}" in connect.get_config(f"{name}-sink")["connection.url"]
            # the connectors' live sessions (the replication walsender and the sink) are encrypted
            with pg_connect(stack) as admin:
                sessions = admin.execute(
                    "SELECT a.datname, a.backend_type, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                    "WHERE a.datname IN (%s, %s) AND a.usename = 'cdc'", (src, tgt)).fetchall()  # fmt: skip
            walsenders = [s for s in sessions if s[0] == src and s[1] == "walsender"]
            sink_sessions = [s for s in sessions if s[0] == tgt]
            assert walsenders and all(s[2] for s in walsenders), sessions
            assert sink_sessions and all(s[2] for s in sink_sessions), sessions
        finally:
            teardown(stack, connect, specs, name)


def test_a_platform_connection_with_tls_required_is_encrypted(stack, tmp_path):
    from cdc_platform.db import pg_connect as platform_connect

    with pg_database(stack, "src") as src:
        specs = write_specs(
            tmp_path, {"src": {**connection(stack, "postgresql", src), "tls": {"mode": "require"}}}, []
        )
        with platform_connect(specs.connection("src"), specs.directory) as conn:
            assert (
                conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0] is True
            )


def test_connect_resolves_file_references_only_under_the_allowed_secrets_directory(stack, connect, tmp_path):
    """Anyone who reaches the REST API could otherwise have any file the worker can read resolved.
    The same real password is offered from outside and from inside the allowed directory: only the
    inside copy is resolved (the outside one reaches PostgreSQL unresolved and fails to log in)."""
    import tempfile

    # readable by the worker's account, so only allowed.paths can keep it out
    public = Path(tempfile.mkdtemp(dir="/tmp"))
    public.chmod(0o755)
    outside = public / "elsewhere.properties"
    outside.write_text(f"postgres.password={stack.password('postgres')}\n")
    outside.chmod(0o644)
    inside = stack.secrets_file  # under .stack/secrets, the allowed directory

    def validate(reference: str) -> str:
        config = {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector", "tasks.max": "1",
            "database.hostname": stack.host, "database.port": str(stack.postgres_port), "database.user": "cdc",
            "database.dbname": "postgres", "database.password": reference, "topic.prefix": "probe",
            "plugin.name": "pgoutput", "slot.name": "probe", "snapshot.mode": "no_data",
            "publication.autocreate.mode": "disabled", "name": "probe",
        }  # fmt: skip
        response = httpx.put(f"{stack.connect_url}/connector-plugins/"
                             "io.debezium.connector.postgresql.PostgresConnector/config/validate",
                             json=config, timeout=60)  # fmt: skip
        return response.text

    try:
        assert "password authentication failed" in validate(f"${{file:{outside}:postgres.password}}")
        assert "password authentication failed" not in validate(f"${{file:{inside}:postgres.password}}")
    finally:
        shutil.rmtree(public)


def test_kafka_and_connect_do_not_run_as_root(stack):
    """The REST API is unauthenticated: a worker running as root could be made to open any file."""
    import os

    from cdc_platform.stack.prerequisites import SERVICE_USER
    from cdc_platform.stack.services import Connect, Kafka

    # as root the JVMs run as the service user; an unprivileged user's stack runs as that user
    service_uid = pwd.getpwnam(SERVICE_USER).pw_uid if os.geteuid() == 0 else os.geteuid()
    for cls in (Kafka, Connect):
        pid = cls(stack).pid_file.running_pid()
        assert pid is not None, f"{cls.name} is not running"
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert set(uids.split()[1:]) == {str(service_uid)}, (cls.name, uids)
        gids = next(line for line in status.splitlines() if line.startswith("Gid:")).split()[1:]
        groups = next(line for line in status.splitlines() if line.startswith("Groups:")).split()[1:]
        assert "0" not in gids + groups, (cls.name, gids, groups)  # not root's group either
    # the secrets stay unreadable for everyone else
    assert stack.secrets_file.stat().st_mode & 0o777 == 0o640


def test_the_worker_allows_only_secret_like_environment_variables(stack):
    from cdc_platform.stack.services import ENV_ALLOWLIST

    text = (stack.config_dir / "connect-distributed.properties").read_text()
    assert f"config.providers.env.param.allowlist.pattern={ENV_ALLOWLIST}" in text
    assert f"config.providers.file.param.allowed.paths={stack.secrets_file.parent}" in text
    import re

    allowed = re.compile(ENV_ALLOWLIST)
    assert allowed.fullmatch("ANALYTICS_PG_PASSWORD") and allowed.fullmatch("CDC_S3_SECRET")
    assert not allowed.fullmatch("HOME") and not allowed.fullmatch("PATH")


def test_the_metrics_agent_reads_on_loopback_and_refuses_writes_and_operations(stack):
    """Jolokia is JMX over unauthenticated HTTP: it may read MBeans, never set or invoke them."""
    import httpx

    version = httpx.get(f"{stack.jolokia_url}/version", timeout=5).json()
    assert version["status"] == 200
    read = httpx.post(f"{stack.jolokia_url}/", timeout=5,
                      json={"type": "read", "mbean": "java.lang:type=Memory", "attribute": "HeapMemoryUsage"})  # fmt: skip
    assert read.json()["status"] == 200
    for request in (
        {"type": "exec", "mbean": "java.lang:type=Memory", "operation": "gc"},
        {"type": "write", "mbean": "java.lang:type=Memory", "attribute": "Verbose", "value": True},
    ):
        answer = httpx.post(f"{stack.jolokia_url}/", json=request, timeout=5)
        assert answer.status_code == 403 or answer.json()["status"] == 403, (request, answer.text)
    assert stack.jolokia_url.startswith("http://127.0.0.1:")
