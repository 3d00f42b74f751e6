"""One TLS setting, rendered for each consumer: the platform's Python drivers, the Debezium source
connectors and the JDBC sink's URL. Pure functions; the engines disagree only in spelling.
``prefer`` renders as nothing at all: each driver keeps its own default."""

from __future__ import annotations

import ssl

MYSQL_SOURCE_MODES = {"disable": "disabled", "require": "required", "verify-ca": "verify_ca",
                      "verify-full": "verify_identity"}  # fmt: skip
MARIADB_SOURCE_MODES = {
    "disable": "disable",
    "require": "trust",
    "verify-ca": "verify-ca",
    "verify-full": "verify-full",
}
MYSQL_JDBC_MODES = {"require": "REQUIRED", "verify-ca": "VERIFY_CA", "verify-full": "VERIFY_IDENTITY"}


def source_tls_config(kind: str, mode: str, root_cert: str | None) -> dict[str, str]:
    """Debezium source connector keys (PostgreSQL takes the CA as PEM; the MySQL connector needs a
    truststore for verification, given through the connection's options)."""
    if mode == "prefer":
        return {}
    if mode == "disable":
        return {"database.sslmode": "disable"} if kind == "postgresql" else {}
    if kind == "postgresql":
        return {"database.sslmode": mode, **({"database.sslrootcert": root_cert} if root_cert else {})}
    if kind == "mysql":
        return {"database.ssl.mode": MYSQL_SOURCE_MODES[mode]}
    if kind == "mariadb":
        return {"database.ssl.mode": MARIADB_SOURCE_MODES[mode]}
    if kind == "sqlserver":
        return {"driver.encrypt": "true", "driver.trustServerCertificate": str(mode == "require").lower()}
    raise ValueError(kind)


def jdbc_tls_params(kind: str, mode: str, root_cert: str | None) -> list[tuple[str, str]]:
    """Parameters of the JDBC sink's connection URL."""
    if mode == "prefer":
        return [("encrypt", "false")] if kind == "sqlserver" else []
    if kind == "sqlserver":
        if mode == "disable":
            return [("encrypt", "false")]
        return [("encrypt", "true"), ("trustServerCertificate", str(mode == "require").lower())]
    if mode == "disable":
        return []
    if kind == "postgresql":
        return [("sslmode", mode), *([("sslrootcert", root_cert)] if root_cert else [])]
    if kind == "mariadb":
        return [
            ("sslMode", MARIADB_SOURCE_MODES[mode]),
            *([("serverSslCert", root_cert)] if root_cert else []),
        ]
    if kind == "mysql":
        return [("sslMode", MYSQL_JDBC_MODES[mode])]
    raise ValueError(kind)


def psycopg_tls_kwargs(mode: str, root_cert: str | None) -> dict[str, str]:
    if mode == "prefer":
        return {}
    return {"sslmode": mode, **({"sslrootcert": root_cert} if root_cert else {})}


def pymysql_tls_kwargs(mode: str, root_cert: str | None) -> dict:
    if mode in ("prefer", "disable"):
        return {}
    if mode == "require":
        return {"ssl": {"check_hostname": False, "verify_mode": ssl.CERT_NONE}}
    return {
        "ssl": {"ca": root_cert, "check_hostname": mode == "verify-full", "verify_mode": ssl.CERT_REQUIRED}
    }


def odbc_tls_params(mode: str) -> dict[str, str]:
    if mode == "prefer":
        return {"TrustServerCertificate": "yes"}  # what the platform did before TLS settings existed
    if mode == "disable":
        return {"Encrypt": "no"}
    return {"Encrypt": "yes", "TrustServerCertificate": "yes" if mode == "require" else "no"}
