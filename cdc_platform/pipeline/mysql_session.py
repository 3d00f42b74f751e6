"""Watching a MySQL/MariaDB session during a copy, so a killed session fails the copy at once.

Used by both sides of a load: the reader of a MySQL/MariaDB source and the writer into one.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from cdc_platform.db import mysql_connect


def session_watchdog(dconn, dst, specs_dir: Path, cut_reasons: list[str], every: float = 2.0):
    """:func:`watch_session` for a pymysql connection: a cut shuts its socket down."""

    def shut() -> None:
        with contextlib.suppress(OSError, AttributeError):
            dconn._sock.shutdown(socket.SHUT_RDWR)  # pymysql keeps its socket here

    return watch_session(dconn.thread_id(), shut, dst, specs_dir, cut_reasons, every)


@contextlib.contextmanager
def watch_session(session: int, stop_copy: Callable[[], None], dst, specs_dir: Path, cut_reasons: list[str],
                   every: float = 2.0, look_after_failure: bool = True):  # fmt: skip
    """End a MySQL/MariaDB copy whose server session died: a killed MariaDB session stops reading
    (or writing) without closing the socket, so the client would block for minutes in a send or a
    read. A second connection checks every ``every`` seconds that the session still exists and
    calls ``stop_copy`` when it does not (or when the server cannot be asked); the copy then fails
    with ``cut_reasons`` saying why. ``look_after_failure``: on another failure, ask once more
    whether the session still exists (not for a client process, whose session ends with it)."""

    stop = threading.Event()

    def cut(reason: str) -> None:
        cut_reasons.append(reason)
        stop_copy()

    def watch() -> None:
        try:
            admin = mysql_connect(dst, specs_dir, database="", autocommit=True)
        except Exception as exc:  # noqa: BLE001 - the server is unreachable: the load cannot finish either
            cut(f"the target server could not be reached during the load ({type(exc).__name__}: {exc})")
            return
        try:
            while not stop.wait(every):
                with admin.cursor() as cur:
                    cur.execute(
                        "SELECT COUNT(*) FROM information_schema.processlist WHERE id = %s", (session,)
                    )
                    if cur.fetchone()[0] == 0:
                        cut(ended)
                        return
        except Exception as exc:  # noqa: BLE001 - as above
            if not stop.is_set():
                cut(f"the target server stopped answering during the load ({type(exc).__name__}: {exc})")
        finally:
            admin.close()

    def last_look() -> None:
        # the server may close a killed session's socket before the next look: then the client
        # fails on its own (pymysql even with an AttributeError), and this says why
        with contextlib.suppress(Exception):
            admin = mysql_connect(dst, specs_dir, database="", autocommit=True, connect_timeout=5)
            try:
                with admin.cursor() as cur:
                    cur.execute("SELECT COUNT(*) FROM information_schema.processlist "
                                "WHERE id = %s AND command <> 'Killed'", (session,))  # fmt: skip
                    if cur.fetchone()[0] == 0 and not cut_reasons:
                        cut_reasons.append(ended)
            finally:
                admin.close()

    ended = (f"the loading session {session} on {dst.name} ended mid-copy (killed, or the server "
             "restarted); nothing of this copy was committed")  # fmt: skip
    watcher = threading.Thread(target=watch, name="load watchdog", daemon=True)
    watcher.start()
    try:
        yield
    except BaseException:
        if not cut_reasons and look_after_failure:
            last_look()
        raise
    finally:
        stop.set()
        watcher.join(timeout=every + 5)
