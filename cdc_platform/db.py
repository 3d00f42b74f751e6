"""Opening connections described by connection specs: SQLAlchemy engines and raw DB-API connections.

Passwords are resolved from their references only here, at the moment of connecting; SQLAlchemy's
URL object masks them in every repr, and no error built here includes them.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from cdc_platform.connectors.tls import odbc_tls_params, psycopg_tls_kwargs, pymysql_tls_kwargs
from cdc_platform.secrets import resolve_secret, tls_root_cert
from cdc_platform.specs.models import ConnectionSpec

DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlserver": "mssql+pyodbc",
}


def password_of(conn: ConnectionSpec, specs_dir: Path) -> str:
    assert conn.password is not None
    return resolve_secret(conn.password, specs_dir)


def _root(conn: ConnectionSpec, specs_dir: Path) -> str | None:
    path = tls_root_cert(conn, specs_dir)
    return str(path) if path else None


#: Microsoft's driver where installed, else FreeTDS (Debian's ``tdsodbc``, which `stack up` installs)
MICROSOFT_ODBC_DRIVERS = ("ODBC Driver 18 for SQL Server", "ODBC Driver 17 for SQL Server")
FREETDS = "FreeTDS"


def odbc_driver(conn: ConnectionSpec) -> str:
    """The ``odbc_driver`` option, else the first installed of Microsoft's drivers, else FreeTDS."""
    if "odbc_driver" in conn.options:
        return conn.options["odbc_driver"]
    try:
        # lazy: only the driver of the connection's kind loads (pyodbc needs unixODBC)
        import pyodbc

        installed = set(pyodbc.drivers())
    except ImportError:  # unixODBC missing: the connect attempt says so
        installed = set()
    return next((d for d in MICROSOFT_ODBC_DRIVERS if d in installed), FREETDS)


def odbc_params(conn: ConnectionSpec) -> dict[str, str]:
    """Driver-specific connection attributes: FreeTDS names the TDS version and encryption its own way."""
    driver = odbc_driver(conn)
    if driver == FREETDS:
        encryption = {"disable": "off", "prefer": "request"}.get(conn.tls.mode, "require")
        return {"driver": driver, "TDS_Version": "7.4", "Encryption": encryption}
    return {"driver": driver, **odbc_tls_params(conn.tls.mode)}


def odbc_connect(conn: ConnectionSpec, specs_dir: Path, *, autocommit: bool = False, timeout: int = 10):
    """A pyodbc connection (the full load's path to SQL Server). The password travels only inside
    the connection string handed to the driver; an error names the server, never the string."""
    # lazy: only the driver of the connection's kind loads (pyodbc needs unixODBC)
    import pyodbc

    params = odbc_params(conn)
    server = {"SERVER": str(conn.host), "PORT": str(conn.port)} if params["driver"] == FREETDS else {
        "SERVER": f"{conn.host},{conn.port}"}  # fmt: skip
    attributes = {"DRIVER": "{" + params.pop("driver") + "}", **server, "DATABASE": str(conn.database),
                  "UID": str(conn.username), **params}  # fmt: skip
    text = ";".join(f"{k}={v}" for k, v in attributes.items())
    password = password_of(conn, specs_dir).replace("}", "}}")
    try:
        return pyodbc.connect(f"{text};PWD={{{password}}}", autocommit=autocommit, timeout=timeout)
    except pyodbc.Error as exc:
        detail = str(exc).replace(password, "********")
        raise ConnectionError(f"SQL Server {conn.name} at {conn.host}:{conn.port} ({attributes['DRIVER']}): "
                              f"{detail}") from None  # fmt: skip


def sqlalchemy_url(conn: ConnectionSpec, specs_dir: Path) -> sa.URL:
    query: dict = {}
    if conn.kind.value == "sqlserver":
        query = odbc_params(conn)
    elif conn.kind.value == "postgresql":
        query = psycopg_tls_kwargs(conn.tls.mode, _root(conn, specs_dir))
    return sa.URL.create(
        DRIVERS[conn.kind.value],
        username=conn.username,
        password=password_of(conn, specs_dir),
        host=conn.host,
        port=conn.port,
        database=conn.database,
        query=query,
    )


def engine_for(conn: ConnectionSpec, specs_dir: Path, **kwargs) -> sa.Engine:
    if conn.kind.value in ("mysql", "mariadb"):
        tls = pymysql_tls_kwargs(conn.tls.mode, _root(conn, specs_dir))
        if tls:
            kwargs["connect_args"] = {**kwargs.get("connect_args", {}), **tls}
    return sa.create_engine(sqlalchemy_url(conn, specs_dir), pool_pre_ping=True, **kwargs)


def pg_connect(conn: ConnectionSpec, specs_dir: Path, *, autocommit: bool = False, **kwargs):
    # lazy: only the driver of the connection's kind loads
    import psycopg

    return psycopg.connect(
        host=conn.host, port=conn.port, dbname=conn.database, user=conn.username,
        password=password_of(conn, specs_dir), autocommit=autocommit,
        connect_timeout=kwargs.pop("connect_timeout", 10),
        **psycopg_tls_kwargs(conn.tls.mode, _root(conn, specs_dir)), **kwargs,
    )  # fmt: skip


def mysql_connect(conn: ConnectionSpec, specs_dir: Path, *, database: str | None = None, **kwargs):
    # lazy: only the driver of the connection's kind loads
    import pymysql

    return pymysql.connect(
        host=conn.host, port=conn.port, user=conn.username, password=password_of(conn, specs_dir),
        database=database if database is not None else conn.database, charset="utf8mb4",
        connect_timeout=kwargs.pop("connect_timeout", 10), **pymysql_tls_kwargs(conn.tls.mode, _root(conn, specs_dir)),
        **kwargs,
    )  # fmt: skip
