"""Reading a MySQL/MariaDB result through the ``mariadb``/``mysql`` command-line client.

The client is what ``mariadb --batch | psql \\copy`` uses: C code in a second process, which reads
the server's packets while this process writes to PostgreSQL, on another core. pymysql reads the
same rows at about a third of its speed, because it parses every packet in Python. The client is
used where it can be used safely, and pymysql otherwise (see :func:`client_for`):

* the password goes into an option file in a private directory (mode 0600), read with
  ``--defaults-file`` so the user's own option files cannot change the output format, and
  removed afterwards; it is never on the command line or in the environment;
* a connection that verifies TLS keeps pymysql, whose TLS settings the platform already tests;
* a client that fails before the result starts (old client, TLS disagreement) is reported and the
  caller falls back to pymysql, since nothing has been written yet.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cdc_platform.db import password_of
from cdc_platform.pipeline.client_process import ClientProcess, ClientUnavailable, private_file
from cdc_platform.specs.models import ConnectionSpec

#: path of the client to use, or ``none`` to always read with pymysql
CLIENT_VARIABLE = "CDC_MYSQL_CLIENT"

__all__ = ["CLIENT_VARIABLE", "ClientResult", "ClientUnavailable", "client_for"]


def client_for(conn: ConnectionSpec, specs_dir: Path) -> str | None:
    """The client binary to read ``conn`` with, or None when pymysql must read it."""
    chosen = os.environ.get(CLIENT_VARIABLE)
    if chosen is not None and chosen.strip().lower() in ("", "none"):
        return None
    if conn.tls.mode not in ("disable", "prefer"):
        return None
    password = password_of(conn, specs_dir)
    if any(ch in password for ch in '"\\') or not password.isprintable():
        return None  # an option file cannot carry it without escapes the clients disagree on
    return chosen or shutil.which("mariadb") or shutil.which("mysql")


def _option_file(directory: Path, conn: ConnectionSpec, specs_dir: Path) -> Path:
    lines = ["[client]", f"host={conn.host}", f"port={conn.port}", f"user={conn.username}",
             f'password="{password_of(conn, specs_dir)}"']  # fmt: skip
    if conn.tls.mode == "disable":
        lines.append("skip-ssl")
    return private_file(directory, "client.cnf", "\n".join(lines) + "\n")


class ClientResult(ClientProcess):
    """One script run by the client: the first output line is the session id (``SELECT
    CONNECTION_ID()``, for the copy's watchdog), the rest is one result."""

    def __init__(self, binary: str, conn: ConnectionSpec, specs_dir: Path, script: str):
        def command(directory: Path) -> tuple[list[str], dict[str, str]]:
            options = _option_file(directory, conn, specs_dir)
            return [binary, f"--defaults-file={options}", "--batch", "--raw", "--skip-column-names", "--quick",
                    "-e", f"SELECT CONNECTION_ID(); {script}"], dict(os.environ)  # fmt: skip

        super().__init__(command)
        self.session = int(self.first_line())
