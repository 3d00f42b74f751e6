"""Recovery from faults on the local stack, with nobody restarting anything (issue 34).

Three pipelines run at once (PostgreSQL -> PostgreSQL, PostgreSQL -> MariaDB, MariaDB ->
PostgreSQL), each under a writer of ``--rate`` inserts and updates per second. A seeded sequence of
faults is injected, one every ``--every`` seconds, for ``--minutes``:

- ``connect-kill``: the Connect JVM killed with ``kill -9``, started again by ``stack up``;
- ``broker-kill``: Kafka killed with ``kill -9``, started again;
- ``postgres-stop`` / ``mariadb-stop``: the database shut down (fast) for ``--outage`` seconds;
- ``sink-pause``: one sink paused for ``--outage`` seconds, then resumed;
- ``target-restarts``: the PostgreSQL target restarted three times, 20 s apart;
- ``worker-kill`` (with ``CDC_CONNECT_WORKERS=2`` or more, as the production profile runs): the
  worker running most of the run's tasks killed with ``kill -9`` and left dead, so the recovery is
  from the kill itself, the others taking its share; then it is started again and the return of
  its share is measured as ``worker-rejoin``.

For each fault it prints the recovery time: from the fault's end to the first change *committed
after that end* seen on every target (a target whose source was down counts from when its source
took writes again), and the tasks seen FAILED (connector statuses polled every second). At the end
the writers stop and every table is compared row by row with its source. No health sensor runs:
what recovers, recovers by itself. Not a test; figures vary with the machine.

Run: ``python bench/recovery.py [--minutes 30] [--every 120] [--outage 30] [--rate 150] [--seed 34]
[--faults K,...] [--report recovery.md]``; writes bench/recovery.md (or ``--report``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdc_platform.kafka_connect import KafkaConnectResource  # noqa: E402
from cdc_platform.pipeline.teardown import teardown_pipeline  # noqa: E402
from cdc_platform.settings import load_stack_settings  # noqa: E402
from cdc_platform.stack.manager import up  # noqa: E402
from cdc_platform.stack.processes import PidFile  # noqa: E402
from cdc_platform.stack.services import Connect, Kafka, MariaDB, Postgres  # noqa: E402
from tests.pipeline_support import connection, materialize, write_specs  # noqa: E402
from tests.support import mariadb_connect, mariadb_database, pg_connect, pg_database, unique  # noqa: E402

PAIRS = (("postgresql", "postgresql"), ("postgresql", "mariadb"), ("mariadb", "postgresql"))
FAULTS = ("connect-kill", "broker-kill", "postgres-stop", "mariadb-stop", "sink-pause", "target-restarts")
#: only with several workers (``CDC_CONNECT_WORKERS``); not in the default sequence
MULTI_WORKER_FAULTS = ("worker-kill",)


def _connect(stack, kind: str, database: str):
    if kind == "postgresql":
        conn = pg_connect(stack, database)
        conn.autocommit = True
        return conn
    return mariadb_connect(stack, database)


def _run(conn, kind: str, sql: str, params: tuple = ()) -> list[tuple]:
    if kind == "postgresql":
        cur = conn.execute(sql.replace("?", "%s"), params)
        return cur.fetchall() if cur.description else []
    with conn.cursor() as cur:
        cur.execute(sql.replace("?", "%s"), params)
        rows = list(cur.fetchall()) if cur.description else []
    conn.commit()
    return rows


@dataclass
class Pipe:
    name: str
    source_kind: str
    target_kind: str
    source_db: str
    target_db: str
    target_schema: str
    #: the highest id committed, and the time it was committed (client clock)
    last_id: int = 0
    written: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def target_table(self) -> str:
        return f"{self.target_schema}.rec" if self.target_kind == "postgresql" else "rec"


class Writer(threading.Thread):
    """Inserts rows (id ascending) and updates earlier ones; reconnects after a refused write."""

    def __init__(self, stack, pipe: Pipe, rate: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.stack, self.pipe, self.rate, self.stop = stack, pipe, rate, stop
        self.random = random.Random(pipe.name)

    def run(self) -> None:
        conn = None
        while not self.stop.is_set():
            try:
                conn = conn or _connect(self.stack, self.pipe.source_kind, self.pipe.source_db)
                with self.pipe.lock:
                    next_id = self.pipe.last_id + 1
                if next_id > 10 and self.random.random() < 0.3:
                    _run(conn, self.pipe.source_kind, "UPDATE rec SET v = v + 1 WHERE id = ?",
                         (self.random.randint(1, next_id - 1),))  # fmt: skip
                else:
                    _run(conn, self.pipe.source_kind, "INSERT INTO rec (id, v) VALUES (?, 0)", (next_id,))
                    with self.pipe.lock:
                        self.pipe.last_id = next_id
                self.pipe.written += 1
            except Exception:  # noqa: BLE001 - the source may be down on purpose: count, reconnect
                self.pipe.refused += 1
                conn = None
                time.sleep(0.5)
            time.sleep(1 / self.rate)


class StatusWatch(threading.Thread):
    """Every connector's state each second: which tasks were seen FAILED, and when."""

    def __init__(self, connect: KafkaConnectResource, names: list[str], stop: threading.Event):
        super().__init__(daemon=True)
        self.connect, self.names, self.stop = connect, names, stop
        self.failed: list[tuple[float, str]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for name in self.names:
                try:
                    status = self.connect.status(name) or {}
                except Exception:  # noqa: BLE001 - the worker itself may be down on purpose
                    continue
                states = [status.get("connector", {}).get("state")] + [
                    t["state"] for t in status.get("tasks", [])
                ]
                if "FAILED" in states and (not self.failed or self.failed[-1][1] != name
                                           or time.monotonic() - self.failed[-1][0] > 30):  # fmt: skip
                    self.failed.append((time.monotonic(), name))
            time.sleep(1)


def _kill(pid_file) -> None:
    pid = PidFile(pid_file.path).running_pid()
    if pid:
        os.killpg(pid, signal.SIGKILL)


def _fast_stop(service) -> None:
    pid = PidFile(service.pid_file.path).running_pid()
    if pid:
        os.kill(pid, signal.SIGINT if isinstance(service, Postgres) else signal.SIGTERM)
        deadline = time.monotonic() + 30
        while PidFile(service.pid_file.path).running_pid() and time.monotonic() < deadline:
            time.sleep(0.2)


def _restart_stack(stack) -> None:
    up(load_stack_settings(), echo=lambda *_: None)


def busiest_worker(stack, connect, pipes: list[Pipe]) -> Connect:
    """The worker that runs most of the run's tasks (workers are named by their REST port)."""
    counts: dict[int, int] = {}
    for pipe in pipes:
        for part in ("source", "sink"):
            for task in (connect.status(f"{pipe.name}-{part}") or {}).get("tasks", []):
                port = int(task["worker_id"].rsplit(":", 1)[1])
                counts[port] = counts.get(port, 0) + 1
    workers = [Connect(stack, worker=k) for k in range(1, stack.connect_workers + 1)]
    return max(workers, key=lambda w: counts.get(w.port, 0))


def inject(fault: str, stack, connect, pipes: list[Pipe], outage: float) -> tuple[float, set[str]]:
    """Run one fault; returns its end time (monotonic) and the sources that were down."""
    down: set[str] = set()
    if fault == "worker-kill":
        if stack.connect_workers < 2:
            raise SystemExit("worker-kill needs CDC_CONNECT_WORKERS=2 or more (and a stack started so)")
        _kill(busiest_worker(stack, connect, pipes).pid_file)
    elif fault == "connect-kill":
        _kill(Connect(stack).pid_file)
        time.sleep(2)
        _restart_stack(stack)
    elif fault == "broker-kill":
        _kill(Kafka(stack).pid_file)
        time.sleep(2)
        _restart_stack(stack)
    elif fault in ("postgres-stop", "mariadb-stop"):
        service = Postgres(stack) if fault == "postgres-stop" else MariaDB(stack)
        _fast_stop(service)
        down = {"postgresql" if fault == "postgres-stop" else "mariadb"}
        time.sleep(outage)
        _restart_stack(stack)
    elif fault == "sink-pause":
        sink = f"{pipes[0].name}-sink"
        connect.pause(sink)
        time.sleep(outage)
        connect.resume(sink)
    elif fault == "target-restarts":
        down = {"postgresql"}
        for _ in range(3):
            _fast_stop(Postgres(stack))
            time.sleep(3)
            _restart_stack(stack)
            time.sleep(20)
    return time.monotonic(), down


def recovery_seconds(stack, pipes: list[Pipe], ended: float, timeout: float = 300) -> dict[str, float | None]:
    """Per pipeline: seconds from ``ended`` until a row committed after ``ended`` shows on its target."""
    marks = {}
    for pipe in pipes:
        with pipe.lock:
            marks[pipe.name] = pipe.last_id
    found: dict[str, float | None] = {}
    conns = {}
    while len(found) < len(pipes) and time.monotonic() - ended < timeout:
        for pipe in pipes:
            if pipe.name in found:
                continue
            try:
                conn = conns.get(pipe.name) or _connect(stack, pipe.target_kind, pipe.target_db)
                conns[pipe.name] = conn
                top = _run(conn, pipe.target_kind, f"SELECT max(id) FROM {pipe.target_table()}")[0][0] or 0
            except Exception:  # noqa: BLE001 - the target may still be starting
                conns.pop(pipe.name, None)
                continue
            if top > marks[pipe.name]:
                found[pipe.name] = time.monotonic() - ended
        time.sleep(0.1)
    return {pipe.name: found.get(pipe.name) for pipe in pipes}


def compare(stack, pipes: list[Pipe]) -> dict[str, int]:
    """Rows that differ (missing, extra or another value) per pipeline, once the targets caught up."""
    differing = {}
    for pipe in pipes:
        deadline = time.monotonic() + 300
        while True:
            source = set(_run(_connect(stack, pipe.source_kind, pipe.source_db), pipe.source_kind,
                              "SELECT id, v FROM rec"))  # fmt: skip
            target = set(_run(_connect(stack, pipe.target_kind, pipe.target_db), pipe.target_kind,
                              f"SELECT id, v FROM {pipe.target_table()}"))  # fmt: skip
            if source == target or time.monotonic() > deadline:
                break
            time.sleep(2)
        differing[pipe.name] = len(source ^ target)
    return differing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--every", type=float, default=120)
    parser.add_argument("--outage", type=float, default=30)
    parser.add_argument("--rate", type=int, default=150)
    parser.add_argument("--seed", type=int, default=34)
    parser.add_argument("--report", default="recovery.md", help="file under bench/ the report is written to")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"comma-separated kinds (default: all of {', '.join(FAULTS)}; "
                             f"with several workers also {', '.join(MULTI_WORKER_FAULTS)})")  # fmt: skip
    args = parser.parse_args()
    kinds = args.faults.split(",")
    stack = load_stack_settings()
    connect = KafkaConnectResource(url=stack.connect_cluster_url)
    rng = random.Random(args.seed)
    plan = []
    while len(plan) * args.every < args.minutes * 60:
        batch = list(kinds)
        rng.shuffle(batch)
        plan += batch
    plan = plan[: max(1, int(args.minutes * 60 // args.every))]

    with tempfile.TemporaryDirectory() as tmp, Databases() as stack_dbs:
        pipes, connections, pipelines = [], {}, []
        for index, (source_kind, target_kind) in enumerate(PAIRS):
            source_db = stack_dbs.enter(source_kind, f"rsrc{index}")
            target_db = stack_dbs.enter(target_kind, f"rtgt{index}")
            name = unique(f"rec{index}")
            schema = "replica" if target_kind == "postgresql" else target_db
            _run(_connect(stack, source_kind, source_db), source_kind,
                 "CREATE TABLE rec (id bigint PRIMARY KEY, v bigint NOT NULL)")  # fmt: skip
            connections[f"s{index}"] = connection(stack, source_kind, source_db)
            connections[f"t{index}"] = connection(stack, target_kind, target_db)
            table = "public.rec" if source_kind == "postgresql" else f"{source_db}.rec"
            pipelines.append({"name": name, "source": f"s{index}", "target": f"t{index}", "target_schema": schema,
                              "tables": {"names": [table]}})  # fmt: skip
            pipes.append(Pipe(name, source_kind, target_kind, source_db, target_db, schema))
        specs = write_specs(Path(tmp), connections, pipelines)
        for pipe in pipes:
            materialize(stack, specs, pipe.name)
        stop = threading.Event()
        workers = [Writer(stack, pipe, args.rate, stop) for pipe in pipes]
        watch = StatusWatch(connect, [f"{p.name}-{part}" for p in pipes for part in ("source", "sink")], stop)
        for thread in (*workers, watch):
            thread.start()
        results = []
        try:
            started = time.monotonic()
            for number, fault in enumerate(plan):
                due = started + 20 + number * args.every
                time.sleep(max(0, due - time.monotonic()))
                before = len(watch.failed)
                began = time.monotonic()
                ended, _down = inject(fault, stack, connect, pipes, args.outage)
                recovered = recovery_seconds(stack, pipes, ended)
                failed = sorted({name for _, name in watch.failed[before:]})
                report_fault(results, fault, ended - began, recovered, failed)
                if fault == "worker-kill":
                    before, began = len(watch.failed), time.monotonic()
                    _restart_stack(stack)
                    ended = time.monotonic()
                    recovered = recovery_seconds(stack, pipes, ended)
                    failed = sorted({name for _, name in watch.failed[before:]})
                    report_fault(results, "worker-rejoin", ended - began, recovered, failed)
        finally:
            stop.set()
            for thread in workers:
                thread.join()
        differing = compare(stack, pipes)
        total = sum(p.written for p in pipes)
        report = render(args, results, differing, total, pipes)
        print(report)
        (ROOT / "bench" / args.report).write_text(report)
        for pipe in pipes:
            spec = specs.pipelines[pipe.name].spec
            teardown_pipeline(pipe.name, connect, lambda *_: None, source=specs.connection(spec.source),
                              specs_dir=specs.directory, delete_topics=True, kafka_bootstrap=stack.kafka_bootstrap)  # fmt: skip


def report_fault(results: list, fault: str, lasted: float, recovered: dict, failed: list[str]) -> None:
    results.append((fault, lasted, recovered, failed))
    worst = max((v for v in recovered.values() if v is not None), default=None)
    print(f"{fault:16} lasted {lasted:5.1f} s  recovered in "
          + ", ".join(f"{k.split('_')[0]} {'never' if v is None else f'{v:.1f} s'}" for k, v in recovered.items())
          + f"  (worst {worst if worst is None else round(worst, 1)})  FAILED: {failed or 'none'}", flush=True)  # fmt: skip


def render(args, results, differing, total, pipes) -> str:
    lines = [
        "# Recovery from faults (bench/recovery.py)",
        "",
        f"Three pipelines ({', '.join(f'{s} -> {t}' for s, t in PAIRS)}), {args.rate} changes/s each, "
        f"{len(results)} faults over {args.minutes:g} min (one every {args.every:g} s, seed {args.seed}, "
        f"outages {args.outage:g} s), {load_stack_settings().connect_workers} Connect worker(s); "
        f"no health sensor ran. {total:,} changes written "
        f"({sum(p.refused for p in pipes):,} refused while a source was down).",
        "",
        "| fault | lasted (s) | recovery per pipeline (s) | tasks seen FAILED |",
        "|---|---|---|---|",
    ]
    for fault, lasted, recovered, failed in results:
        shown = ", ".join("never" if v is None else f"{v:.1f}" for v in recovered.values())
        lines.append(f"| {fault} | {lasted:.1f} | {shown} | {', '.join(failed) or 'none'} |")
    by_kind: dict[str, list[float]] = {}
    for fault, _, recovered, _ in results:
        by_kind.setdefault(fault, []).extend(v for v in recovered.values() if v is not None)
    lines += ["", "| fault kind | worst recovery (s) | median (s) |", "|---|---|---|"]
    for kind, values in sorted(by_kind.items()):
        if values:
            lines.append(f"| {kind} | {max(values):.1f} | {statistics.median(values):.1f} |")
    lines += ["", "Rows differing after the run, per pipeline (missing, extra or another value): "
              + ", ".join(f"{k}: {v}" for k, v in differing.items()), ""]  # fmt: skip
    return "\n".join(lines)


class Databases:
    """The databases the run creates, dropped at the end whatever happens."""

    def __enter__(self):
        self.stack = contextlib.ExitStack()
        self.settings = load_stack_settings()
        return self

    def enter(self, kind: str, prefix: str) -> str:
        factory = pg_database if kind == "postgresql" else mariadb_database
        return self.stack.enter_context(factory(self.settings, prefix))

    def __exit__(self, *exc):
        _restart_stack(self.settings)
        return self.stack.__exit__(*exc)


if __name__ == "__main__":
    main()
