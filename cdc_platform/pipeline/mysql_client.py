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
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cdc_platform.db import password_of
from cdc_platform.specs.models import ConnectionSpec

#: path of the client to use, or ``none`` to always read with pymysql
CLIENT_VARIABLE = "CDC_MYSQL_CLIENT"
CHUNK = 1 << 20


class ClientUnavailable(RuntimeError):
    """The client could not start the result; nothing was read, so another reader may take over."""


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
    path = directory / "client.cnf"
    lines = ["[client]", f"host={conn.host}", f"port={conn.port}", f"user={conn.username}",
             f'password="{password_of(conn, specs_dir)}"']  # fmt: skip
    if conn.tls.mode == "disable":
        lines.append("skip-ssl")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


class ClientResult:
    """One script run by the client: the first output line is the session id (``SELECT
    CONNECTION_ID()``), the rest is one result read in whole-line blocks."""

    def __init__(self, binary: str, conn: ConnectionSpec, specs_dir: Path, script: str):
        self._dir = tempfile.TemporaryDirectory(prefix="cdc-mysql-client-")
        directory = Path(self._dir.name)
        options = _option_file(directory, conn, specs_dir)
        self._stderr_path = directory / "stderr"
        with open(self._stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [binary, f"--defaults-file={options}", "--batch", "--raw", "--skip-column-names", "--quick",
                 "-e", f"SELECT CONNECTION_ID(); {script}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
            )  # fmt: skip
        self._tail = b""
        self.session = self._first_line()

    def _stderr(self) -> str:
        return self._stderr_path.read_text(errors="replace").strip()

    def _first_line(self) -> int:
        data = b""
        while b"\n" not in data:
            chunk = self.process.stdout.read1(CHUNK)
            if not chunk:
                self.process.wait()
                message = self._stderr() or f"exit status {self.process.returncode}"
                self.close()
                raise ClientUnavailable(message)
            data += chunk
        first, self._tail = data.split(b"\n", 1)
        return int(first)

    def blocks(self) -> Iterator[bytes]:
        """Blocks of whole lines; raises when the client ends with an error."""
        end = self._tail.rfind(b"\n") + 1
        if end:
            yield self._tail[:end]
        tail = self._tail[end:]
        while True:
            chunk = self.process.stdout.read1(CHUNK)
            if not chunk:
                break
            data = tail + chunk if tail else chunk
            end = data.rfind(b"\n") + 1
            tail = data[end:]
            if end:
                yield data[:end]
        if self.process.wait() != 0:
            raise RuntimeError(
                self._stderr() or f"the client ended with exit status {self.process.returncode}"
            )
        if tail:
            raise RuntimeError("the client's output ended inside a line")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    def close(self) -> None:
        self.kill()
        self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self._dir.cleanup()
