"""Faults and load the integration tests inject: writers, a blocked sink, a killer thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


def killer(kill, delay: float = 1.0, every: float = 0.2) -> threading.Thread:
    """Call ``kill`` after ``delay`` seconds, then again every ``every`` s until it killed something
    (the copy's statement may not have started yet on a slow machine)."""

    def run() -> None:
        time.sleep(delay)
        deadline = time.monotonic() + 30
        while not kill() and time.monotonic() < deadline:
            time.sleep(every)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_task_state(connect, name: str, state: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = connect.status(name) or {}
        if any(t.get("state") == state for t in status.get("tasks", [])):
            return status
        time.sleep(0.5)
    raise AssertionError(f"{name} never had a {state} task: {connect.status(name)}")


BLOCKER = """
CREATE TABLE replica.block (why text);
CREATE FUNCTION replica.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN IF EXISTS (SELECT 1 FROM replica.block) THEN RAISE EXCEPTION 'blocked by the test'; END IF; RETURN NEW; END $$;
CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON replica.t FOR EACH ROW EXECUTE FUNCTION replica.refuse();
"""


class SlowWriter(threading.Thread):
    def __init__(self, write_fn, first_id: int):
        super().__init__(daemon=True)
        self.write_fn, self.next_id, self.stop_event, self.errors = write_fn, first_id, threading.Event(), 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.write_fn(self.next_id)
                self.next_id += 1
            except Exception:  # noqa: BLE001 - the source stays up; count, never stop the test's writer
                self.errors += 1
            time.sleep(0.05)


class TcpRelay:
    """A TCP relay in front of a service, which the test can cut: its port refuses connections and
    every open one is closed, as when an endpoint restarts or the network to it drops, while the
    service behind it (moto's S3 server, whose state lives in memory) keeps what it holds."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.host = host
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.restore()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def listening(self) -> bool:
        return self._listener is not None

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; close alone would not
            listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            ended: list[bool] = []
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, ended), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, ended: list[bool]) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        with self._lock:
            ended.append(True)
            if len(ended) == 2:  # both directions done: the pair is closed
                for sock in (source, sink):
                    self._open.discard(sock)
                    sock.close()
