"""A database's command-line client in a second process, its standard output read as one result.

The fastest copies between two databases are the clients' own pipes (``psql \\copy | psql \\copy``,
``mariadb --batch | psql \\copy``): C code reads one server while another process writes the other,
on another core. A Python driver reading the same rows parses every row in this process. So the
full load reads a source through its client where one is installed (``pg_client``,
``mysql_client``) and writes the target itself, which keeps the target's transaction, its TRUNCATE
and its errors in this process.

Secrets go into files in a private directory (mode 0700, files 0600) that the caller fills, and
that is removed when the result is closed; never on the command line.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import subprocess
import tempfile
import termios
from collections.abc import Callable, Iterator
from pathlib import Path

CHUNK = 1 << 20
#: the least a block holds (but the last): a write into COPY costs about as much for 20 KB as for
#: 256 KB, and the pipe's 64 KB made blocks of about 20 KB
LEAST_BLOCK = 1 << 18
#: the client's pipe: a client that can write a megabyte ahead keeps reading its server while this
#: process writes a block to the target
PIPE_SIZE = 1 << 20


def _widen(pipe) -> None:
    """Give the client's stdout pipe ``PIPE_SIZE`` where the system allows it (Linux; the
    default 64 KB otherwise)."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or over the user's pipe quota
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)


class ClientUnavailable(RuntimeError):
    """The client ended before its result started; nothing was read, so another reader may take over."""


def private_file(directory: Path, name: str, text: str) -> Path:
    """A file only this user can read, for a password or an option file."""
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


class ClientProcess:
    """``command(directory)`` gives the argv and the environment (after writing its secret files
    into ``directory``); stdout is read in blocks of whole lines."""

    def __init__(self, command: Callable[[Path], tuple[list[str], dict[str, str]]]):
        self._dir = tempfile.TemporaryDirectory(prefix="cdc-client-")
        directory = Path(self._dir.name)
        self._stderr_path = directory / "stderr"
        argv, env = command(directory)
        try:
            with open(self._stderr_path, "wb") as stderr:
                self.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=env
                )  # fmt: skip
        except OSError as exc:  # not installed where it was said to be, or not executable
            self._dir.cleanup()
            raise ClientUnavailable(f"{argv[0]} could not be started: {exc.strerror or exc}") from exc
        _widen(self.process.stdout)
        self._tail = b""

    def _stderr(self) -> str:
        return self._stderr_path.read_text(errors="replace").strip()

    def _failed(self) -> str:
        return (
            self._stderr()
            or f"{Path(str(self.process.args[0])).name} ended with exit status {self.process.returncode}"
        )

    def _read(self) -> bytes:
        return self.process.stdout.read1(CHUNK)

    def started(self) -> None:
        """Wait for the first output (or a clean end): raises ClientUnavailable when the client
        failed before writing anything."""
        while not self._tail:
            chunk = self._read()
            if not chunk:
                if self.process.wait() != 0:
                    message = self._failed()
                    self.close()
                    raise ClientUnavailable(message)
                return
            self._tail = chunk

    def wait_for_output(self) -> None:
        """Like :meth:`started`, without taking anything out of the pipe, for a reader that opens
        the pipe itself (:meth:`stream_path`): returns once the client has written or ended cleanly;
        raises ClientUnavailable when it failed before writing anything."""
        fd = self.process.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        poller.poll()
        waiting = bytearray(4)
        fcntl.ioctl(fd, termios.FIONREAD, waiting)
        if int.from_bytes(waiting, "little") == 0 and self.process.wait() != 0:
            message = self._failed()
            self.close()
            raise ClientUnavailable(message)

    def stream_path(self) -> str | None:
        """A path another reader in this process can open to read stdout straight from the client
        (Linux's ``/proc/self/fd``), so the bytes need not pass through Python; None elsewhere."""
        path = f"/proc/self/fd/{self.process.stdout.fileno()}"
        return path if os.path.exists(path) else None

    def written_bytes(self) -> int | None:
        """How many bytes the client has written so far (its ``/proc/<pid>/io``), for progress where
        no one in this process sees the stream; None where that cannot be read."""
        try:
            with open(f"/proc/{self.process.pid}/io") as io:
                for line in io:
                    if line.startswith("wchar:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            return None
        return None

    def finish(self) -> None:
        """Wait for the client to end after its stdout was read elsewhere; raises with its own error
        text when it ended with one (its output was then cut short)."""
        if self.process.wait() != 0:
            raise RuntimeError(self._failed())

    def first_line(self) -> bytes:
        """The first output line, taken out of the result."""
        self.started()
        while b"\n" not in self._tail:
            chunk = self._read()
            if not chunk:
                self.process.wait()
                message = self._failed()
                self.close()
                raise ClientUnavailable(message)
            self._tail += chunk
        first, self._tail = self._tail.split(b"\n", 1)
        return first

    def blocks(self) -> Iterator[bytes]:
        """The rest of stdout in blocks of whole lines; raises with the client's own error text
        when it ends with one."""
        pending, self._tail = [self._tail] if self._tail else [], b""
        size = sum(map(len, pending))
        while True:
            chunk = self._read()
            if chunk:
                pending.append(chunk)
                size += len(chunk)
                if size < LEAST_BLOCK or b"\n" not in chunk:
                    continue
            data = b"".join(pending)
            end = data.rfind(b"\n") + 1
            if end:
                yield data[:end]
            pending, size = ([data[end:]], len(data) - end) if end < len(data) else ([], 0)
            if not chunk:
                break
        if self.process.wait() != 0:
            raise RuntimeError(self._failed())
        if size:
            raise RuntimeError("the client's output ended inside a line")

    def chunks(self) -> Iterator[bytes]:
        """The rest of stdout as it comes, for a binary stream that has no lines; raises with the
        client's own error text when it ends with one (the reader must then drop what it took)."""
        pending, self._tail = [self._tail] if self._tail else [], b""
        size = sum(map(len, pending))
        while chunk := self._read():
            pending.append(chunk)
            size += len(chunk)
            if size >= LEAST_BLOCK:
                yield b"".join(pending)
                pending, size = [], 0
        if pending:
            yield b"".join(pending)
        if self.process.wait() != 0:
            raise RuntimeError(self._failed())

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()

    def close(self) -> None:
        self.kill()
        self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self._dir.cleanup()
