"""End-to-end CDC latency on the local stack: commit on the source -> row visible on the target.

For each pair, a pipeline replicates three tables. A writer commits a steady ``--rate`` of changes
per second, each its own transaction, spread over the tables, each insert or update carrying a new
sequence number ``seq``; the client clock is read right after each commit. ``--mix oltp`` (the
default, ``bench/workload_mix.py``): 50 % inserts, 40 % updates, 10 % deletes of six-column rows
(bigint, bigint, int, numeric(12,2), varchar(64), a timestamp); ``--mix bulk``: the first
benchmarks' 60 % inserts, 30 % updates, 10 % deletes of three-column rows.
A poller reads ``seq > last seen`` on every target table every few milliseconds; the time it
first sees a ``seq`` minus its commit time is that change's latency. Deletes load the pipeline but
are not timed; an update overwritten before the poller saw it is not timed either. Measured from
the databases, not from connector metrics. Not a test: figures vary with the machine.
With ``--burst N``, a second pipeline (PostgreSQL -> PostgreSQL, on the same worker) receives N
inserts at once a third of the way into the run, and the figures are also given for the changes
committed while that burst was draining: how well one pipeline is isolated from a busy one.
By default the demo pipeline replicates and ``dagster-daemon`` runs the platform's sensors and
schedules beside the run, as on a user's machine (``bench/user_instance.py``; ``--alone`` without).
Run: ``python bench/cdc_latency.py [--mix oltp|bulk] [--rate 1000] [--seconds 300]
[--pairs postgresql-postgresql,...] [--burst 100000] [--alone]``; writes bench/cdc_latency.md.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from user_instance import beside_a_user_instance  # noqa: E402
from workload_mix import MIXES, create_table  # noqa: E402

from cdc_platform.kafka_connect import KafkaConnectResource  # noqa: E402
from cdc_platform.pipeline.teardown import teardown_pipeline  # noqa: E402
from cdc_platform.settings import load_stack_settings  # noqa: E402
from tests.pipeline_support import connection, materialize, write_specs  # noqa: E402
from tests.support import mariadb_connect, mariadb_database, pg_connect, pg_database, unique  # noqa: E402

TABLES = ("lat_a", "lat_b", "lat_c")
POLL_SECONDS = 0.01


class Db:
    """One database of the pair, for single statements (autocommit) in either dialect."""

    def __init__(self, stack, kind: str, database: str, schema: str):
        self.kind, self.schema = kind, schema
        self.conn = pg_connect(stack, database) if kind == "postgresql" else mariadb_connect(stack, database)
        if kind == "postgresql":
            self.conn.autocommit = True

    def run(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.kind == "postgresql":
            cur = self.conn.execute(sql.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []
        with self.conn.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), params)
            return list(cur.fetchall()) if cur.description else []


class Workload(threading.Thread):
    def __init__(self, db: Db, rate: int, seconds: float, mix: str = "oltp"):
        super().__init__(daemon=True)
        self.db, self.rate, self.seconds, self.mix = db, rate, seconds, mix
        self.shares = (0.1, 0.5) if mix == "oltp" else (0.1, 0.4)  # (deletes, deletes + updates)
        self.committed: dict[int, float] = {}  # seq -> client time right after the commit
        self.live: dict[str, list[int]] = {t: [] for t in TABLES}
        self.next_id, self.seq, self.behind = 1, 0, 0.0

    def run(self) -> None:
        start = time.monotonic()
        n = 0
        while (now := time.monotonic()) - start < self.seconds:
            due = start + n / self.rate
            if due > now:
                time.sleep(due - now)
            else:
                self.behind = max(self.behind, now - due)
            self.change()
            n += 1

    def change(self) -> None:
        table = random.choice(TABLES)
        ids, roll = self.live[table], random.random()
        self.seq += 1
        deletes, updates = self.shares
        if roll < deletes and len(ids) > 10:
            victim = ids.pop(random.randrange(len(ids)))
            self.db.run(f"DELETE FROM {table} WHERE id = ?", (victim,))
            return
        now = "now()" if self.db.kind == "postgresql" else "now(6)"
        if roll < updates and ids:
            if self.mix == "oltp":
                self.db.run(f"UPDATE {table} SET seq = ?, qty = qty + 1, amount = amount + 0.01, label = ?, "
                            f"at = {now} WHERE id = ?", (self.seq, f"upd {self.seq}", random.choice(ids)))  # fmt: skip
            else:
                self.db.run(f"UPDATE {table} SET seq = ?, payload = ? WHERE id = ?",
                            (self.seq, f"update {self.seq}", random.choice(ids)))  # fmt: skip
        else:
            if self.mix == "oltp":
                self.db.run(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, {now})",
                            (self.next_id, self.seq, random.randrange(1000), round(random.random() * 100000, 2),
                             f"item {self.next_id}"))  # fmt: skip
            else:
                self.db.run(
                    f"INSERT INTO {table} (id, seq, payload) VALUES (?, ?, ?)",
                    (self.next_id, self.seq, "insert"),
                )
            ids.append(self.next_id)
            self.next_id += 1
        self.committed[self.seq] = time.time()


class Poller(threading.Thread):
    def __init__(self, db: Db):
        super().__init__(daemon=True)
        self.db, self.stop_event = db, threading.Event()
        self.seen: dict[int, float] = {}
        self.last = dict.fromkeys(TABLES, 0)

    def run(self) -> None:
        while not self.stop_event.is_set():
            for table in TABLES:
                rows = self.db.run(
                    f"SELECT seq FROM {self.db.schema}.{table} WHERE seq > ?", (self.last[table],)
                )
                at = time.time()
                for (seq,) in rows:
                    self.seen.setdefault(int(seq), at)
                    self.last[table] = max(self.last[table], int(seq))
            time.sleep(POLL_SECONDS)


class Burst(threading.Thread):
    """Another pipeline's source gets ``rows`` inserts at once, after ``delay`` seconds; ``window``
    is from the first insert until that pipeline's target holds them all."""

    def __init__(self, source: Db, target: Db, rows: int, delay: float):
        super().__init__(daemon=True)
        self.source, self.target, self.rows, self.delay = source, target, rows, delay
        self.window: tuple[float, float] | None = None

    def run(self) -> None:
        time.sleep(self.delay)
        started = time.time()
        for lo in range(1, self.rows + 1, 20_000):
            hi = min(self.rows, lo + 19_999)
            self.source.run(
                f"INSERT INTO burst (id, payload) SELECT g, 'burst' FROM generate_series({lo}, {hi}) g"
            )
        while self.target.run(f"SELECT count(*) FROM {self.target.schema}.burst")[0][0] < self.rows:
            time.sleep(0.2)
        self.window = (started, time.time())


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run_pair(stack, pair: str, rate: int, seconds: float, options: dict, burst_rows: int = 0,
             meter: Callable[[str], None] | None = None, burst_options: dict | None = None,
             burst_connect: str | None = None, mix: str = "oltp") -> dict:  # fmt: skip
    """``meter("start")`` / ``meter("stop")`` are called around the workload (``cost.py``);
    ``burst_connect``: the Kafka Connect cluster of the burst's pipeline (default: the stack's)."""
    source_kind, target_kind = pair.split("-")
    connect = KafkaConnectResource(url=stack.connect_url, timeout_seconds=60)
    burst_connector = KafkaConnectResource(url=burst_connect or stack.connect_url, timeout_seconds=60)
    with pg_database(stack, "lsrc") as pg_src, pg_database(stack, "ltgt") as pg_tgt, \
            mariadb_database(stack, "lsrc") as my_src, mariadb_database(stack, "ltgt") as my_tgt, \
            contextlib.ExitStack() as extra:  # fmt: skip
        src_db = pg_src if source_kind == "postgresql" else my_src
        tgt_db = pg_tgt if target_kind == "postgresql" else my_tgt
        src_schema = "public" if source_kind == "postgresql" else src_db
        tgt_schema = "replica" if target_kind == "postgresql" else tgt_db
        source = Db(stack, source_kind, src_db, src_schema)
        for table in TABLES:
            source.run(create_table(source_kind, table, mix))
        name, noisy = unique("lat"), unique("noisy")
        connections = {
            "src": connection(stack, source_kind, src_db),
            "tgt": connection(stack, target_kind, tgt_db),
        }
        pipelines = [{"name": name, "source": "src", "target": "tgt", "target_schema": tgt_schema,
                      "tables": {"names": [f"{src_schema}.{t}" for t in TABLES]}, "options": options}]  # fmt: skip
        if burst_rows:
            burst_src = extra.enter_context(pg_database(stack, "bsrc"))
            burst_tgt = extra.enter_context(pg_database(stack, "btgt"))
            Db(stack, "postgresql", burst_src, "public").run(
                "CREATE TABLE burst (id bigint PRIMARY KEY, payload text)"
            )
            connections |= {"bsrc": connection(stack, "postgresql", burst_src),
                            "btgt": connection(stack, "postgresql", burst_tgt)}  # fmt: skip
            pipelines.append({"name": noisy, "source": "bsrc", "target": "btgt", "target_schema": "replica",
                              "tables": {"names": ["public.burst"]}, "options": burst_options or {}})  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            specs = write_specs(Path(tmp), connections, pipelines)
            materialize(stack, specs, name)
            if burst_rows:
                materialize(stack, specs, noisy, connect_url=burst_connect)
            burst = None
            try:
                target = Db(stack, target_kind, tgt_db, tgt_schema)
                for table in TABLES:
                    target.run(f"CREATE INDEX {table}_seq ON {tgt_schema}.{table} (seq)")
                    target.run(
                        f"ANALYZE {tgt_schema}.{table}"
                        if target_kind == "postgresql"
                        else f"ANALYZE TABLE {table}"
                    )
                poller, workload = Poller(target), Workload(source, rate, seconds, mix)
                if burst_rows:
                    burst = Burst(Db(stack, "postgresql", burst_src, "public"),
                                  Db(stack, "postgresql", burst_tgt, "replica"), burst_rows, seconds / 3)  # fmt: skip
                    burst.start()
                poller.start()
                if meter:
                    meter("start")
                workload.start()
                workload.join()
                if meter:
                    meter("stop")
                if burst is not None:
                    burst.join()
                time.sleep(10)  # the last changes arrive
                poller.stop_event.set()
                poller.join()
            finally:
                for pipeline in [name, noisy] if burst_rows else [name]:
                    spec = specs.pipelines[pipeline].spec
                    on = burst_connector if pipeline == noisy else connect
                    teardown_pipeline(pipeline, on, lambda *_: None, source=specs.connection(spec.source),
                                      specs_dir=specs.directory, delete_topics=True,
                                      kafka_bootstrap=stack.kafka_bootstrap)  # fmt: skip
    latencies = [poller.seen[s] - t for s, t in workload.committed.items() if s in poller.seen]
    result = {
        "pair": pair, "changes": workload.seq, "timed": len(latencies), "rate": workload.seq / seconds,
        "behind": workload.behind, "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99), "max": max(latencies), "mean": statistics.fmean(latencies),
    }  # fmt: skip
    if burst is not None and burst.window is not None:
        lo, hi = burst.window
        during = [
            poller.seen[s] - t for s, t in workload.committed.items() if s in poller.seen and lo <= t <= hi
        ]
        result["burst"] = {"rows": burst_rows, "seconds": hi - lo, "timed": len(during),
                           "p50": percentile(during, 50), "p99": percentile(during, 99), "max": max(during)}  # fmt: skip
    return result


def add_setting_args(parser: argparse.ArgumentParser) -> None:
    """The pairs to run and the connector settings to try, shared by the CDC benchmarks."""
    parser.add_argument("--pairs", default="postgresql-postgresql,postgresql-mariadb,mariadb-postgresql")
    parser.add_argument("--label", default="defaults", help="What the settings are, for the table")
    parser.add_argument(
        "--source", action="append", default=[], help="source connector key=value (repeatable)"
    )
    parser.add_argument("--sink", action="append", default=[], help="sink connector key=value (repeatable)")
    parser.add_argument(
        "--change-events", choices=("lean", "full"), help="options.change_events (default: the spec's)"
    )


def pipeline_options(args: argparse.Namespace) -> dict:
    """``--source``/``--sink``/``--change-events`` as a pipeline spec's ``options``."""
    options = {"source_overrides": dict(o.split("=", 1) for o in args.source),
               "sink_overrides": dict(o.split("=", 1) for o in args.sink)}  # fmt: skip
    if args.change_events:
        options["change_events"] = args.change_events
    return options


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mix", choices=MIXES, default="oltp", help="the workload (bench/workload_mix.py)")
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=300)
    add_setting_args(parser)
    parser.add_argument(
        "--burst", type=int, default=0, help="inserts into a second pipeline a third of the way in"
    )
    parser.add_argument(
        "--burst-sink", action="append", default=[], help="the burst pipeline's sink key=value"
    )
    parser.add_argument(
        "--burst-connect", help="the burst pipeline's Kafka Connect URL (default: the stack's)"
    )
    parser.add_argument(
        "--alone",
        action="store_true",
        help="without the demo pipeline and dagster-daemon beside the run (bench/user_instance.py)",
    )
    args = parser.parse_args()
    options = pipeline_options(args)
    stack = load_stack_settings()
    results = []
    beside = contextlib.nullcontext() if args.alone else beside_a_user_instance(stack.logs_dir)
    label = args.label if args.alone else f"{args.label}, beside the demo and dagster-daemon"
    with beside:
        for pair in args.pairs.split(","):
            burst_options = {"sink_overrides": dict(o.split("=", 1) for o in args.burst_sink)}
            r = run_pair(stack, pair, args.rate, args.seconds, options, args.burst, burst_options=burst_options,
                         burst_connect=args.burst_connect, mix=args.mix)  # fmt: skip
            results.append(r)
            _print_result(args.mix, label, pair, r)
    _write_results(args, label, results)


def _print_result(mix: str, label: str, pair: str, r: dict) -> None:
    print(f"{mix} {label:14} {pair:24} {r['changes']:8,} changes ({r['rate']:,.0f}/s, {r['timed']:,} timed): "
          f"p50 {r['p50'] * 1000:6.0f} ms  p95 {r['p95'] * 1000:6.0f} ms  p99 {r['p99'] * 1000:6.0f} ms  "
          f"max {r['max'] * 1000:6.0f} ms  (writer at most {r['behind'] * 1000:.0f} ms behind schedule)")  # fmt: skip
    if "burst" in r:
        b = r["burst"]
        print(f"{'':14} {'':24} while {b['rows']:,} inserts drained on another pipeline ({b['seconds']:.1f} s, "
              f"{b['timed']:,} changes): p50 {b['p50'] * 1000:6.0f} ms  p99 {b['p99'] * 1000:6.0f} ms  "
              f"max {b['max'] * 1000:6.0f} ms", flush=True)  # fmt: skip


def _write_results(args: argparse.Namespace, label: str, results: list[dict]) -> None:
    out = ROOT / "bench" / "cdc_latency.md"
    lines = out.read_text().splitlines() if out.exists() else [
        "# CDC latency benchmark", "",
        "Written by `python bench/cdc_latency.py`: commit on the source -> row visible on the target, polled every "
        f"{POLL_SECONDS * 1000:.0f} ms. Targets: p50 < 300 ms, p99 < 1 s at 1,000 changes/s.", "",
        "| date | settings | pair | rate/s | seconds | changes timed | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for r in results:
        lines.append(f"| {time.strftime('%Y-%m-%d')} | {args.mix}: {label} | {r['pair']} | {r['rate']:,.0f} | {args.seconds:.0f} | "
                     f"{r['timed']:,} | {r['p50'] * 1000:.0f} | {r['p95'] * 1000:.0f} | {r['p99'] * 1000:.0f} | "
                     f"{r['max'] * 1000:.0f} |")  # fmt: skip
        if "burst" in r:
            b = r["burst"]
            lines.append(f"| {time.strftime('%Y-%m-%d')} | {label}: only changes committed while {b['rows']:,} "
                         f"inserts drained on another pipeline ({b['seconds']:.0f} s) | {r['pair']} | {r['rate']:,.0f} | "
                         f"{b['seconds']:.0f} | {b['timed']:,} | {b['p50'] * 1000:.0f} | | {b['p99'] * 1000:.0f} | "
                         f"{b['max'] * 1000:.0f} |")  # fmt: skip
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
