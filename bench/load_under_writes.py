"""A full load under a concurrent workload: how soon after the workload stops the target converges.

The source holds ``accounts`` (``--rows`` rows) and an empty ``history``. A TPC-B-like workload
(update one account's balance, insert one history row, commit) runs at ``--rate`` transactions
per second from before the pipeline is materialized until the materialization returns, i.e. for
the whole full load and the connectors' start. Then the workload stops, and the clock runs until
the target holds what the source holds (count and sum of both tables). The changes made during
the copy wait in Kafka (or in the slot) and are applied after it: this is the drain of that
backlog. Target (issue 14): within 10 s. Not a test.
Run: ``python bench/load_under_writes.py [--rows 1000000] [--rate 1000] [--pairs ...]``;
appends to bench/load_under_writes.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from catch_up import topics_state  # noqa: E402
from cdc_latency import Db  # noqa: E402

from cdc_platform.kafka_connect import KafkaConnectResource  # noqa: E402
from cdc_platform.pipeline.plan import PipelineNames, table_topic  # noqa: E402
from cdc_platform.pipeline.teardown import teardown_pipeline  # noqa: E402
from cdc_platform.settings import load_stack_settings  # noqa: E402
from tests.pipeline_support import connection, materialize, write_specs  # noqa: E402
from tests.support import mariadb_database, pg_database, unique  # noqa: E402


class Tpcb(threading.Thread):
    """One transaction = one balance update + one history insert, paced at ``rate`` per second."""

    def __init__(self, stack, kind: str, database: str, schema: str, rows: int, rate: int):
        super().__init__(daemon=True)
        self.db = Db(stack, kind, database, schema)
        if kind == "postgresql":
            self.db.conn.autocommit = False
        self.kind, self.rows, self.rate = kind, rows, rate
        self.stop_event, self.done, self.behind = threading.Event(), 0, 0.0

    def run(self) -> None:
        rng = random.Random(7)
        start = time.monotonic()
        while not self.stop_event.is_set():
            due = start + self.done / self.rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            account, delta = rng.randint(1, self.rows), rng.randint(-500, 500)
            self.db.run("UPDATE accounts SET balance = balance + ? WHERE id = ?", (delta, account))
            self.db.run("INSERT INTO history (account, delta) VALUES (?, ?)", (account, delta))
            self.db.conn.commit()
            self.done += 1
        self.behind = max(0.0, time.monotonic() - start - self.done / self.rate)


def totals(db: Db, schema: str) -> list[tuple]:
    return [tuple(db.run(f"SELECT count(*), sum(balance) FROM {schema}.accounts")[0]),
            tuple(db.run(f"SELECT count(*), sum(delta) FROM {schema}.history")[0])]  # fmt: skip


def run_pair(stack, pair: str, rows: int, rate: int) -> dict:
    source_kind, target_kind = pair.split("-")
    connect = KafkaConnectResource(url=stack.connect_cluster_url, timeout_seconds=60)
    with pg_database(stack, "lsrc") as pg_src, pg_database(stack, "ltgt") as pg_tgt, \
            mariadb_database(stack, "lsrc") as my_src, mariadb_database(stack, "ltgt") as my_tgt:  # fmt: skip
        src_db = pg_src if source_kind == "postgresql" else my_src
        tgt_db = pg_tgt if target_kind == "postgresql" else my_tgt
        src_schema = "public" if source_kind == "postgresql" else src_db
        tgt_schema = "replica" if target_kind == "postgresql" else tgt_db
        source = Db(stack, source_kind, src_db, src_schema)
        serial = "bigserial" if source_kind == "postgresql" else "bigint AUTO_INCREMENT"
        source.run(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL, filler varchar(84))"
        )
        source.run(
            f"CREATE TABLE history (id {serial} PRIMARY KEY, account bigint NOT NULL, delta bigint NOT NULL)"
        )
        series = f"generate_series(1, {rows}) g" if source_kind == "postgresql" else f"seq_1_to_{rows} g"
        column = "g" if source_kind == "postgresql" else "g.seq"
        source.run(f"INSERT INTO accounts SELECT {column}, 0, repeat('x', 84) FROM {series}")
        if source_kind != "postgresql":
            source.conn.commit()
        name = unique("lw")
        names = PipelineNames(name)
        with tempfile.TemporaryDirectory() as tmp:
            specs = write_specs(Path(tmp), {"src": connection(stack, source_kind, src_db),
                                            "tgt": connection(stack, target_kind, tgt_db)},
                                [{"name": name, "source": "src", "target": "tgt", "target_schema": tgt_schema,
                                  "tables": {"names": [f"{src_schema}.accounts", f"{src_schema}.history"]}}])  # fmt: skip
            source_spec = specs.connection("src")
            topics = [table_topic(source_spec, names, f"{src_schema}.{t}") for t in ("accounts", "history")]
            workload = Tpcb(stack, source_kind, src_db, src_schema, rows, rate)
            try:
                workload.start()
                time.sleep(2)
                started = time.monotonic()
                materialize(stack, specs, name)
                materialized = time.monotonic() - started
                workload.stop_event.set()
                workload.join()
                stopped = time.monotonic()
                ends, committed = topics_state(
                    stack.kafka_bootstrap, topics, f"connect-{names.sink_connector}"
                )
                expected = totals(source, src_schema)
                target = Db(stack, target_kind, tgt_db, tgt_schema)
                while True:
                    got = totals(target, tgt_schema)
                    if got == expected:
                        break
                    if time.monotonic() - stopped > 600:
                        raise RuntimeError(f"no convergence in 600 s: source {expected}, target {got}")
                    time.sleep(0.1)
                converged = time.monotonic() - stopped
            finally:
                workload.stop_event.set()
                teardown_pipeline(name, connect, lambda *_: None, source=source_spec, specs_dir=specs.directory,
                                  delete_topics=True, kafka_bootstrap=stack.kafka_bootstrap)  # fmt: skip
    return {"pair": pair, "rows": rows, "rate": rate, "transactions": workload.done,
            "achieved": workload.done / max(materialized + 2, 1e-9), "materialized": materialized,
            "backlog": ends - committed, "converged": converged}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--pairs", default="postgresql-postgresql,postgresql-mariadb,mariadb-postgresql")
    args = parser.parse_args()
    stack = load_stack_settings()
    results = []
    for pair in args.pairs.split(","):
        r = run_pair(stack, pair, args.rows, args.rate)
        results.append(r)
        print(f"{pair:24} {r['rows']:,} rows loaded under {r['transactions']:,} transactions "
              f"({r['achieved']:,.0f}/s of {r['rate']:,}/s asked) in {r['materialized']:.1f} s; "
              f"backlog when the workload stopped {r['backlog']:,} events; target converged "
              f"{r['converged']:.1f} s after the workload stopped")  # fmt: skip
    out = ROOT / "bench" / "load_under_writes.md"
    lines = [] if out.exists() else [
        "# Full load under a concurrent workload", "",
        "Written by `python bench/load_under_writes.py`. A TPC-B-like workload (one balance update and one "
        "history insert per transaction) runs during the whole materialization (full load + connectors) "
        "and stops when it returns; `converged` is the time from then until the target equals the source. "
        "Target: within 10 s.", "",
        "| date | pair | rows | transactions (rate achieved) | materialization s | backlog events at stop | converged s |",
        "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {time.strftime('%Y-%m-%d')} | {r['pair']} | {r['rows']:,} | {r['transactions']:,} "
              f"({r['achieved']:,.0f}/s) | {r['materialized']:.1f} | {r['backlog']:,} | {r['converged']:.1f} |"
              for r in results]  # fmt: skip
    with out.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
