"""Catch-up throughput on the local stack: how fast a backlog of changes drains into the target.

For each pair, a pipeline replicates ``--tables`` empty tables. Its sink connector is paused, and
the source commits ``--changes`` changes (70 % inserts, 30 % updates of rows inserted before, in
transactions of 20,000 rows, spread over the tables). Once every change is in Kafka (the time that
takes is the source side's read rate), the sink is resumed; the drain ends when the sink's committed
offsets reach the topics' ends and the target holds what the source holds (row count and the sum
of ``seq``). Changes per second of the drain is the figure; the target is >= 20,000/s PG->PG.
Not a test: figures vary with the machine.
Run: ``python bench/catch_up.py [--changes 1000000] [--pairs ...] [--label L] [--sink k=v] [--source k=v]``;
appends to bench/catch_up.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cdc_latency import Db, add_setting_args, pipeline_options  # noqa: E402

from cdc_platform.health.collect import PipelineWatch, TableWatch, kafka_offsets  # noqa: E402
from cdc_platform.kafka_connect import KafkaConnectResource  # noqa: E402
from cdc_platform.pipeline.plan import PipelineNames, table_topic  # noqa: E402
from cdc_platform.pipeline.teardown import teardown_pipeline  # noqa: E402
from cdc_platform.settings import load_stack_settings  # noqa: E402
from tests.pipeline_support import connection, materialize, write_specs  # noqa: E402
from tests.support import mariadb_database, pg_database, unique  # noqa: E402

TRANSACTION_ROWS = 20_000
INSERT_SHARE = 0.7


def backlog(source: Db, tables: list[str], changes: int) -> None:
    """Commit ``changes`` changes: inserts first, then updates of the oldest rows."""
    inserts = int(changes * INSERT_SHARE)
    per_table = inserts // len(tables)
    series = "generate_series({lo}, {hi})" if source.kind == "postgresql" else "seq_{lo}_to_{hi}"
    column = "generate_series" if source.kind == "postgresql" else "seq"
    for table in tables:
        for lo in range(1, per_table + 1, TRANSACTION_ROWS):
            hi = min(per_table, lo + TRANSACTION_ROWS - 1)
            source.run(
                f"INSERT INTO {table} (id, seq, payload) SELECT {column}, {column}, "
                f"concat('insert ', {column}) FROM {series.format(lo=lo, hi=hi)}"
            )
    updates = changes - per_table * len(tables)
    per_table_updates = updates // len(tables)
    extra = updates - per_table_updates * len(tables)
    for index, table in enumerate(tables):
        todo = per_table_updates + (extra if index == 0 else 0)
        for lo in range(1, todo + 1, TRANSACTION_ROWS):
            hi = min(todo, lo + TRANSACTION_ROWS - 1)
            source.run(
                f"UPDATE {table} SET seq = seq + {changes}, payload = 'update' WHERE id BETWEEN {lo} AND {hi}"
            )


def topics_state(bootstrap: str, topics: list[str], group: str) -> tuple[int, int]:
    """(end offsets, the sink's committed offsets), summed over the topics, in one admin round."""
    watch = PipelineWatch("_", tuple(TableWatch(t, t, t) for t in topics), group, None)
    ends, committed, _ = kafka_offsets(bootstrap, [watch])
    return sum(ends.values()), sum(committed.get("_", {}).values())


def sink_alive(connect: KafkaConnectResource, name: str) -> None:
    """A failed sink task ends the run with its cause, instead of a drain that never ends."""
    for task in (connect.status(name) or {}).get("tasks", []):
        if task.get("state") == "FAILED":
            causes = [line for line in task.get("trace", "").splitlines() if line.startswith("Caused by")]
            raise RuntimeError(f"sink task failed: {causes[-1] if causes else task.get('trace', '')[:300]}")


def run_pair(stack, pair: str, changes: int, tables_n: int, options: dict) -> dict:
    source_kind, target_kind = pair.split("-")
    connect = KafkaConnectResource(url=stack.connect_url, timeout_seconds=60)
    tables = [f"cu_{i}" for i in range(tables_n)]
    with pg_database(stack, "csrc") as pg_src, pg_database(stack, "ctgt") as pg_tgt, \
            mariadb_database(stack, "csrc") as my_src, mariadb_database(stack, "ctgt") as my_tgt:  # fmt: skip
        src_db = pg_src if source_kind == "postgresql" else my_src
        tgt_db = pg_tgt if target_kind == "postgresql" else my_tgt
        src_schema = "public" if source_kind == "postgresql" else src_db
        tgt_schema = "replica" if target_kind == "postgresql" else tgt_db
        source = Db(stack, source_kind, src_db, src_schema)
        for table in tables:
            source.run(
                f"CREATE TABLE {table} (id bigint PRIMARY KEY, seq bigint NOT NULL, payload varchar(100))"
            )
        name = unique("cu")
        names = PipelineNames(name)
        with tempfile.TemporaryDirectory() as tmp:
            specs = write_specs(Path(tmp), {"src": connection(stack, source_kind, src_db),
                                            "tgt": connection(stack, target_kind, tgt_db)},
                                [{"name": name, "source": "src", "target": "tgt", "target_schema": tgt_schema,
                                  "tables": {"names": [f"{src_schema}.{t}" for t in tables]},
                                  "options": options}])  # fmt: skip
            materialize(stack, specs, name)
            spec = specs.pipelines[name].spec
            source_spec = specs.connection(spec.source)
            topics = [table_topic(source_spec, names, f"{src_schema}.{t}") for t in tables]
            group = f"connect-{names.sink_connector}"
            try:
                connect.pause(names.sink_connector)
                time.sleep(3)
                base_end, _ = topics_state(stack.kafka_bootstrap, topics, group)
                started = time.monotonic()
                backlog(source, tables, changes)
                written = time.monotonic() - started
                while topics_state(stack.kafka_bootstrap, topics, group)[0] - base_end < changes:
                    time.sleep(0.2)
                captured = time.monotonic() - started
                ends, committed = topics_state(stack.kafka_bootstrap, topics, group)
                pending = ends - committed
                target = Db(stack, target_kind, tgt_db, tgt_schema)
                expected = [source.run(f"SELECT count(*), sum(seq) FROM {t}")[0] for t in tables]
                resumed = time.monotonic()
                connect.resume(names.sink_connector)
                while topics_state(stack.kafka_bootstrap, topics, group)[1] < ends:
                    sink_alive(connect, names.sink_connector)
                    time.sleep(0.2)
                committed_at = time.monotonic() - resumed
                while [
                    target.run(f"SELECT count(*), sum(seq) FROM {tgt_schema}.{t}")[0] for t in tables
                ] != expected:
                    time.sleep(0.2)
                drained = time.monotonic() - resumed
            finally:
                teardown_pipeline(name, connect, lambda *_: None, source=source_spec, specs_dir=specs.directory,
                                  delete_topics=True, kafka_bootstrap=stack.kafka_bootstrap)  # fmt: skip
    return {"pair": pair, "changes": changes, "pending": pending, "written": written, "captured": captured,
            "committed": committed_at, "drained": drained, "rate": pending / drained}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--tables", type=int, default=4)
    add_setting_args(parser)
    parser.add_argument("--sink-tasks", type=int, default=None, help="options.sink_tasks")
    args = parser.parse_args()
    options = pipeline_options(args)
    if args.sink_tasks:
        options["sink_tasks"] = args.sink_tasks
    stack = load_stack_settings()
    out = ROOT / "bench" / "catch_up.md"
    lines = out.read_text().splitlines() if out.exists() else [
        "# Catch-up benchmark", "",
        "Written by `python bench/catch_up.py`: a backlog built while the sink is paused (70 % inserts, 30 % "
        "updates, transactions of 20,000 rows), then drained. Target: >= 20,000 changes/s PG->PG.", "",
        "| date | settings | pair | tables | changes | source into Kafka s | drain s | drain changes/s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for pair in args.pairs.split(","):
        r = run_pair(stack, pair, args.changes, args.tables, options)
        print(f"{args.label:24} {pair:24} {r['pending']:9,} changes: written in {r['written']:5.1f} s, in Kafka after "
              f"{r['captured']:5.1f} s | drain: offsets committed {r['committed']:5.1f} s, target equal "
              f"{r['drained']:5.1f} s = {r['rate']:8,.0f} changes/s", flush=True)  # fmt: skip
        lines.append(f"| {time.strftime('%Y-%m-%d')} | {args.label} | {pair} | {args.tables} | {r['pending']:,} | "
                     f"{r['captured']:.1f} | {r['drained']:.1f} | {r['rate']:,.0f} |")  # fmt: skip
        out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
