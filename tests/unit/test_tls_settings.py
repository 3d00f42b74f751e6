"""One TLS setting reaches the Python drivers, the Debezium sources and the JDBC sink alike."""

from __future__ import annotations

import pytest

from cdc_platform.connectors import (
    DatabaseEndpoint,
    SourceOptions,
    TableRef,
    debezium_source_config,
    jdbc_sink_config,
)
from cdc_platform.connectors.tls import psycopg_tls_kwargs, pymysql_tls_kwargs
from cdc_platform.specs.models import TlsSettings

REF = "${file:/secrets/x.properties:pw}"


def _ep(kind, mode, root=None):
    return DatabaseEndpoint(kind, "db", 5432, "d", "u", REF, tls_mode=mode, tls_root_cert=root)


def _source(kind, mode, root=None):
    options = SourceOptions(topic_prefix="p", slot_name="s", publication_name="p", server_id=7,
                            kafka_bootstrap="k:9092", schema_history_topic="h")  # fmt: skip
    return debezium_source_config("p-source", _ep(kind, mode, root), [TableRef("s", "t")], options)


def _sink_url(kind, mode, root=None):
    return jdbc_sink_config("p-sink", _ep(kind, mode, root), "r", {"p.s.t": "t"})["connection.url"]


def test_postgres_require_and_verify_full_everywhere():
    assert _source("postgresql", "require")["database.sslmode"] == "require"
    assert "sslmode=require" in _sink_url("postgresql", "require")
    cfg = _source("postgresql", "verify-full", "/ca.pem")
    assert cfg["database.sslmode"] == "verify-full" and cfg["database.sslrootcert"] == "/ca.pem"
    assert _sink_url("postgresql", "verify-full", "/ca.pem").endswith(
        "sslmode=verify-full&sslrootcert=/ca.pem"
    )
    assert psycopg_tls_kwargs("verify-ca", "/ca.pem") == {"sslmode": "verify-ca", "sslrootcert": "/ca.pem"}


@pytest.mark.parametrize(("kind", "source_mode", "jdbc"), [
    ("mariadb", "trust", "sslMode=trust"), ("mysql", "required", "sslMode=REQUIRED"),
])  # fmt: skip
def test_mysql_family_require(kind, source_mode, jdbc):
    assert _source(kind, "require")["database.ssl.mode"] == source_mode
    assert _sink_url(kind, "require").endswith(jdbc)
    assert pymysql_tls_kwargs("require", None)["ssl"]["check_hostname"] is False


def test_sqlserver_encrypt_and_trust():
    assert _sink_url("sqlserver", "require").endswith("encrypt=true;trustServerCertificate=true")
    assert _sink_url("sqlserver", "verify-full", "/ca.pem").endswith(
        "encrypt=true;trustServerCertificate=false"
    )
    assert _source("sqlserver", "verify-ca", "/ca.pem")["driver.trustServerCertificate"] == "false"


def test_prefer_leaves_every_driver_at_its_default():
    assert "database.sslmode" not in _source("postgresql", "prefer")
    assert _sink_url("postgresql", "prefer") == "jdbc:postgresql://db:5432/d?stringtype=unspecified"
    assert psycopg_tls_kwargs("prefer", None) == {} and pymysql_tls_kwargs("prefer", None) == {}


def test_verification_needs_a_root_certificate():
    with pytest.raises(ValueError, match="needs root_cert"):
        TlsSettings(mode="verify-ca")
