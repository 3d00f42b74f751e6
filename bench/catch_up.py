"""Catch-up throughput on the local stack: how fast a backlog of changes drains into the target.

For each pair, a pipeline replicates ``--tables`` empty tables. Its sink connector is paused, and
the source commits ``--changes`` changes of the ``--mix`` (``bench/workload_mix.py``): ``oltp``, the
default, interleaves 50 % inserts, 40 % updates and 10 % deletes in transactions of 1,000 over
tables of six real column types with a secondary index on the target; ``bulk`` is the best case
(70 % inserts, 30 % updates, ``INSERT ... SELECT`` in transactions of 20,000 rows). The sink is
resumed at once; the drain ends when the sink's committed offsets reach the topics' ends and the
target holds what the source holds, row by row. Two rates are reported: changes per second from
the resume, and from the moment the source had every change in Kafka (the sink's own rate). The
target is >= 20,000/s on the OLTP mix. Not a test: figures vary with the machine.
Run: ``python bench/catch_up.py [--mix oltp|bulk] [--changes 200000] [--pairs ...] [--label L]
[--sink k=v] [--source k=v]``; appends to bench/catch_up.md.
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

import jfr_profile  # noqa: E402
from cdc_latency import Db, add_setting_args, pipeline_options  # noqa: E402
from workload_mix import MIXES, OltpWriter, create_table, target_index  # noqa: E402

from cdc_platform.health.collect import PipelineWatch, TableWatch, kafka_offsets  # noqa: E402
from cdc_platform.kafka_connect import KafkaConnectResource  # noqa: E402
from cdc_platform.pipeline.plan import PipelineNames, table_topic  # noqa: E402
from cdc_platform.pipeline.teardown import teardown_pipeline  # noqa: E402
from cdc_platform.settings import load_stack_settings  # noqa: E402
from tests.pipeline_support import connection, materialize, write_specs  # noqa: E402
from tests.support import mariadb_database, pg_database, unique  # noqa: E402

TABLE_HEADER = (
    "| date | mix | settings | pair | tables | changes | all in Kafka s | target equal s "
    "| after Kafka s | changes/s from resume |"
)
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


def rows_of(db: Db, table: str, mix: str) -> list[tuple]:
    """The table's rows for the row-by-row comparison (the timestamp column aside: its text form differs
    between engines; its value is covered by the fidelity tests)."""
    columns = "id, seq, payload" if mix == "bulk" else "id, seq, qty, amount, label"
    return [tuple(r) for r in db.run(f"SELECT {columns} FROM {table} ORDER BY id")]


def run_pair(
    stack,
    pair: str,
    changes: int,
    tables_n: int,
    options: dict,
    mix: str,
    transaction: int,
    profile: Path | None = None,
) -> dict:
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
            source.run(create_table(source_kind, table, mix))
        name = unique("cu")
        names = PipelineNames(name)
        with tempfile.TemporaryDirectory() as tmp:
            specs = write_specs(Path(tmp), {"src": connection(stack, source_kind, src_db),
                                            "tgt": connection(stack, target_kind, tgt_db)},
                                [{"name": name, "source": "src", "target": "tgt", "target_schema": tgt_schema,
                                  "tables": {"names": [f"{src_schema}.{t}" for t in tables]},
                                  "options": options}])  # fmt: skip
            materialize(stack, specs, name)
            target = Db(stack, target_kind, tgt_db, tgt_schema)
            if mix == "oltp":
                for table in tables:
                    target.run(target_index(table, f"{tgt_schema}.{table}"))
            spec = specs.pipelines[name].spec
            source_spec = specs.connection(spec.source)
            topics = [table_topic(source_spec, names, f"{src_schema}.{t}") for t in tables]
            group = f"connect-{names.sink_connector}"
            try:
                connect.pause(names.sink_connector)
                time.sleep(3)
                base_end, _ = topics_state(stack.kafka_bootstrap, topics, group)
                started = time.monotonic()
                if mix == "bulk":
                    backlog(source, tables, changes)
                    messages = changes
                else:
                    writer = OltpWriter(source, "cu_", tables_n)
                    writer.prepare()
                    writer.write(changes, transaction)
                    messages = changes + writer.deleted  # each delete is followed by its tombstone
                written = time.monotonic() - started
                if profile is not None:
                    jfr_profile.start(jfr_profile.connect_pid(), name, profile)
                resumed = time.monotonic()
                connect.resume(names.sink_connector)
                in_kafka = None
                while True:
                    ends, committed = topics_state(stack.kafka_bootstrap, topics, group)
                    if in_kafka is None and ends - base_end >= messages:
                        in_kafka = time.monotonic()
                    if in_kafka is not None and committed >= ends:
                        break
                    sink_alive(connect, names.sink_connector)
                    time.sleep(0.1)
                committed_at = time.monotonic() - resumed
                if profile is not None:
                    jfr_profile.stop(jfr_profile.connect_pid(), name)
                expected = [rows_of(source, t, mix) for t in tables]
                while [rows_of(target, f"{tgt_schema}.{t}", mix) for t in tables] != expected:
                    if time.monotonic() - resumed > 600:
                        raise RuntimeError("the target never matched the source row by row")
                    time.sleep(0.5)
                drained = time.monotonic() - resumed
            finally:
                teardown_pipeline(name, connect, lambda *_: None, source=source_spec, specs_dir=specs.directory,
                                  delete_topics=True, kafka_bootstrap=stack.kafka_bootstrap)  # fmt: skip
    return {"pair": pair, "changes": changes, "written": written, "in_kafka": in_kafka - resumed,
            "committed": committed_at, "drained": drained, "rate": changes / drained,
            "after_kafka": drained - (in_kafka - resumed)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mix", choices=MIXES, default="oltp", help="the workload (bench/workload_mix.py)")
    parser.add_argument("--changes", type=int, default=200_000)
    parser.add_argument("--tables", type=int, default=3)
    parser.add_argument("--transaction", type=int, default=1000, help="changes per transaction (oltp mix)")
    add_setting_args(parser)
    parser.add_argument("--sink-tasks", type=int, default=None, help="options.sink_tasks")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record the Connect worker with JFR over each drain into DIR and print where its CPU went",
    )
    args = parser.parse_args()
    options = pipeline_options(args)
    if args.sink_tasks:
        options["sink_tasks"] = args.sink_tasks
    stack = load_stack_settings()
    out = ROOT / "bench" / "catch_up.md"
    lines = out.read_text().splitlines() if out.exists() else ["# Catch-up benchmark"]
    if TABLE_HEADER not in lines:
        lines += ["", "## Both workloads, the sink resumed right after the last write (issue 35)", "",
                  "Written by `python bench/catch_up.py --mix oltp|bulk`. Seconds are counted from the sink's "
                  "resume; \"after Kafka\" is how long the target trailed the source's last change in Kafka. "
                  "Target: >= 20,000 changes/s from the resume on the OLTP mix.", "",
                  TABLE_HEADER, "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for pair in args.pairs.split(","):
        recording = None
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            recording = (args.profile / f"catch_up-{pair}-{time.strftime('%H%M%S')}.jfr").resolve()
        r = run_pair(stack, pair, args.changes, args.tables, options, args.mix, args.transaction, recording)
        print(f"{args.mix} {args.label:24} {pair:24} {r['changes']:9,} changes written in {r['written']:5.1f} s; "
              f"from the sink's resume: all in Kafka {r['in_kafka']:5.1f} s, offsets committed {r['committed']:5.1f} s, "
              f"target equal row by row {r['drained']:5.1f} s = {r['rate']:8,.0f} changes/s "
              f"({r['after_kafka']:.1f} s after the source had every change in Kafka)", flush=True)  # fmt: skip
        lines.append(f"| {time.strftime('%Y-%m-%d')} | {args.mix} | {args.label} | {pair} | {args.tables} | "
                     f"{r['changes']:,} | {r['in_kafka']:.1f} | {r['drained']:.1f} | {r['after_kafka']:.1f} | "
                     f"{r['rate']:,.0f} |")  # fmt: skip
        out.write_text("\n".join(lines) + "\n")
        if recording is not None:
            print(jfr_profile.summarize(recording), flush=True)


if __name__ == "__main__":
    main()
