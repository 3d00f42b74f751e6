"""Reading a PostgreSQL ``COPY ... TO STDOUT`` through ``psql`` in a second process.

psycopg hands a ``COPY TO STDOUT`` over one row per call, so relaying a table from Python costs a
Python iteration per row on top of the write; ``psql`` reads the same stream in C on the other
core, and this process only moves megabyte blocks (see ``client_process``). The bytes are the
server's own ``COPY`` text either way.

The connection is a conninfo string with ``passfile=`` naming a private file; the password is not
on the command line, and ``PGPASSWORD`` is removed from psql's environment because libpq would
prefer it to the file. TLS uses libpq's own ``sslmode``/``sslrootcert``, the same names the specs
use. psql runs with ``-X`` (no ``.psqlrc``), ``-q`` (no command tags on stdout) and
``ON_ERROR_STOP``, and the client encoding is UTF-8, as the writing side expects.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cdc_platform.db import password_of
from cdc_platform.pipeline.client_process import ClientProcess, private_file
from cdc_platform.secrets import tls_root_cert
from cdc_platform.specs.models import ConnectionSpec

#: path of psql to use, or ``none`` to always read with psycopg
CLIENT_VARIABLE = "CDC_PSQL_CLIENT"


def psql_for() -> str | None:
    """The psql binary to read PostgreSQL with, or None when psycopg must read it."""
    chosen = os.environ.get(CLIENT_VARIABLE)
    if chosen is not None and chosen.strip().lower() in ("", "none"):
        return None
    return chosen or shutil.which("psql")


def _conninfo_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _pgpass_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


class PsqlCopyOut(ClientProcess):
    """``statements`` run in order by psql in one session; the output is the one ``COPY ... TO
    STDOUT`` among them."""

    def __init__(self, binary: str, conn: ConnectionSpec, specs_dir: Path, statements: list[str]):
        def command(directory: Path) -> tuple[list[str], dict[str, str]]:
            passfile = private_file(directory, "pgpass", f"*:*:*:{_pgpass_value(conn.username)}:"
                                                         f"{_pgpass_value(password_of(conn, specs_dir))}\n")  # fmt: skip
            params = {"host": conn.host, "port": str(conn.port), "dbname": conn.database, "user": conn.username,
                      "passfile": str(passfile), "connect_timeout": "10", "client_encoding": "UTF8",
                      "sslmode": conn.tls.mode, "application_name": "cdc-platform full load"}  # fmt: skip
            root = tls_root_cert(conn, specs_dir)
            if root:
                params["sslrootcert"] = str(root)
            conninfo = " ".join(f"{k}={_conninfo_value(v)}" for k, v in params.items())
            argv = [binary, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo]
            for statement in statements:
                argv += ["-c", statement]
            env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
            return argv, env

        super().__init__(command)
