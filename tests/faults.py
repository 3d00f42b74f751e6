"""Faults and load the integration tests inject: writers, a blocked sink, a killer thread."""

from __future__ import annotations

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
