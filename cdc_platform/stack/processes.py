"""Starting, finding and stopping the stack's own processes, by pid file and nothing else.

A pid file stores the pid and the process start time read from ``/proc``; a pid that the kernel has
since reused for another program therefore never matches, so ``down`` cannot kill a stranger.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cdc_platform.stack.errors import StackError


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) counted after the parenthesised command name, which may hold spaces.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19]


@dataclass(frozen=True)
class PidFile:
    path: Path

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"pid": pid, "start_time": _start_time(pid)}))

    def running_pid(self) -> int | None:
        """The recorded pid if that very process is still alive (not a zombie, not a reused pid)."""
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        pid = int(record.get("pid", 0))
        if pid <= 0 or _start_time(pid) != record.get("start_time"):
            return None
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return None
        return None if state == "Z" else pid

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def spawn(
    command: Sequence[str],
    *,
    log_file: Path,
    pid_file: PidFile,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> int:
    """Start a detached process in its own session, output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        log.write(f"\n--- started {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(command)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                # the account's own group only: root's group and supplementary groups stay behind
                user=user,
                group=user,
                extra_groups=[] if user is not None else None,
            )
        except FileNotFoundError as exc:
            raise StackError(f"Cannot start {command[0]}: the program was not found ({exc}).") from exc
    pid_file.write(proc.pid)
    return proc.pid


def stop(pid_file: PidFile, *, timeout: float = 30.0) -> bool:
    """SIGTERM the recorded process group, SIGKILL after ``timeout``. False if it was not running."""
    pid = pid_file.running_pid()
    if pid is None:
        pid_file.remove()
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_file.running_pid() is None:
            break
        _reap(pid)
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        time.sleep(0.5)
        _reap(pid)
    pid_file.remove()
    return True


def _reap(pid: int) -> None:
    """Collect our own child if it exited (only matters when ``up`` and ``down`` share a process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no log file yet)"
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64 * 1024))
        data = fh.read().decode(errors="replace")
    return "\n".join(data.splitlines()[-lines:])


def wait_until(
    probe: Callable[[], bool],
    *,
    service: str,
    timeout: float,
    log_file: Path,
    pid_file: PidFile | None = None,
) -> None:
    """Poll ``probe`` until it holds; on timeout or early death raise with the log's last lines."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if probe():
                return
        except Exception:  # noqa: BLE001 - any failure of a readiness probe just means "not yet"
            pass
        if pid_file is not None and pid_file.running_pid() is None:
            raise StackError(
                f"{service} exited while starting. Its log is {log_file}; last lines:\n{tail(log_file)}"
            )
        if time.monotonic() >= deadline:
            raise StackError(
                f"{service} did not become ready within {timeout:.0f} s. Its log is {log_file}; "
                f"last lines:\n{tail(log_file)}"
            )
        time.sleep(0.5)
