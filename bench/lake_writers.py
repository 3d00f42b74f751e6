"""The S3 writer spread over processes: change-log throughput with 1, 2 and 4 writer processes on a
table topic of 4 partitions, beside Debezium's capture rate and the Parquet layout's single writer
measured in the same run; printed and written to bench/lake_writers.md.

One PostgreSQL -> S3 (``table_format: iceberg``, ``options.topic_partitions: 4``) pipeline; the
source's table of ``--rows`` rows is updated ``--rounds`` times whole (one change per row and round).
Every change is in Kafka before a clock starts. Each configuration then drains the same events
through its own consumer group into its own change log: N processes, each a writer share
(``WriterShare(i, N)``, what one ``s3_writer`` run executes) flushing its partitions until none of
them waits. The figure is the changes over the wall time until the last process is done.

Not a test: figures vary with the machine (this one has 2 cores, which Kafka, Connect, PostgreSQL
and the S3 server share with the writers). Run: ``python bench/lake_writers.py [--rows 200000]``
(with ``CDC_S3_SERVER=seaweedfs``, bench/lake_writers_seaweedfs.md).
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import dagster as dg  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from cdc_platform.kafka_connect import KafkaConnectResource  # noqa: E402
from cdc_platform.kafka_log import kafka_client_config  # noqa: E402
from cdc_platform.pipeline.plan import PipelineNames, table_topic  # noqa: E402
from cdc_platform.s3.changes import S3Table, WriterShare, consumer_group, flush_tables  # noqa: E402
from cdc_platform.s3.iceberg_catalog import LakeNames  # noqa: E402
from cdc_platform.s3.storage import TableLocation  # noqa: E402
from cdc_platform.schema.discovery import discover_pipeline_tables  # noqa: E402
from cdc_platform.settings import load_stack_settings  # noqa: E402
from tests.pipeline_support import component_defs, connection, materialize, teardown, write_specs  # noqa: E402
from tests.support import pg_connect, pg_database, unique  # noqa: E402

PARTITIONS = 4
TABLE = """CREATE TABLE t (id bigint PRIMARY KEY, account bigint NOT NULL, qty int, amount numeric(12,2),
  note varchar(64), at timestamptz DEFAULT now())"""


def pending(bootstrap: str, group: str, topic: str, share: WriterShare | None = None) -> int:
    """Events of ``topic`` (of the share's partitions) beyond what ``group`` committed."""
    consumer = Consumer(kafka_client_config(bootstrap, **{"group.id": consumer_group(group)}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in partitions:
            if share is not None and not share.owns(p):
                continue
            (committed,) = consumer.committed([TopicPartition(topic, p)], timeout=10)
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - (committed.offset if committed.offset >= 0 else low)
        return total
    finally:
        consumer.close()


def drain(args_file: str) -> None:
    """One writer process: flush its share until none of its partitions waits; prints the rows."""
    target, specs_dir, bootstrap, group, job, share = pickle.loads(Path(args_file).read_bytes())
    written = 0
    while True:
        results = flush_tables(target, specs_dir, bootstrap, group, "postgresql", [job], print, budget_seconds=60,
                               share=share)  # fmt: skip
        result = results[job.qualified]
        if result.error:
            raise RuntimeError(result.error)
        written += result.rows
        if pending(bootstrap, group, job.topic, share) == 0:
            print(f"written {written}")
            return


def run_writers(
    work: Path, target, specs_dir, bootstrap: str, group: str, job: S3Table, processes: int
) -> float:
    """Seconds until ``processes`` writer processes (shares of ``processes``) have drained the topic."""
    started = time.perf_counter()
    running = []
    for index in range(processes):
        share = WriterShare(index, processes) if processes > 1 else None
        args = work / f"{group}-{index}.pickle"
        args.write_bytes(pickle.dumps((target, specs_dir, bootstrap, group, job, share)))
        running.append(subprocess.Popen([sys.executable, __file__, "--drain", str(args)], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))  # fmt: skip
    for process in running:
        out, err = process.communicate(timeout=1800)
        if process.returncode != 0:
            raise RuntimeError(f"writer process failed: {err[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--drain")
    args = parser.parse_args()
    if args.drain:
        drain(args.drain)
        return
    stack = load_stack_settings()
    os.environ.setdefault("LAKE_KEY", "bench")
    os.environ.setdefault("LAKE_SECRET", "bench")
    bucket = unique("bench-writers").replace("_", "-")
    boto3.client("s3", endpoint_url=stack.s3_url, aws_access_key_id="bench", aws_secret_access_key="bench",
                 region_name="us-east-1").create_bucket(Bucket=bucket)  # fmt: skip
    lake = {"kind": "s3", "bucket": bucket, "prefix": "wh", "endpoint_url": stack.s3_url, "table_format": "iceberg",
            "access_key_id": {"env": "LAKE_KEY"}, "secret_access_key": {"env": "LAKE_SECRET"}}  # fmt: skip
    changes = args.rows * args.rounds
    lines = [f"# S3 writer processes: {changes:,} changes over {PARTITIONS} partitions, PostgreSQL -> S3 "
             f"({stack.s3_server}), {time.strftime('%Y-%m-%d')}", ""]  # fmt: skip
    with pg_database(stack, "wsrc") as src:
        with pg_connect(stack, src) as conn:
            conn.execute(TABLE)
            conn.execute("INSERT INTO t (id, account, qty, amount, note) SELECT g, g % 5000, g % 100, g / 100.0, "
                         f"'note ' || g FROM generate_series(1, {args.rows}) g")  # fmt: skip
        name = unique("writerbench")
        work = Path(f"/tmp/{name}")
        specs = write_specs(work, {"src": connection(stack, "postgresql", src), "lake": lake},
                            [{"name": name, "source": "src", "target": "lake", "target_schema": "replica",
                              "tables": {"names": ["public.t"]}, "options": {"topic_partitions": PARTITIONS}}])  # fmt: skip
        defs = component_defs(specs)
        (assets,) = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)
                     and dg.AssetKey(["lake", "replica", "t_changes"]) in a.keys]  # fmt: skip
        target = specs.connection("lake")
        (table,) = discover_pipeline_tables(
            specs.pipelines[name].spec, specs.connection("src"), specs.directory
        )
        topic = table_topic(specs.connection("src"), PipelineNames(name), table.qualified)
        try:
            materialize(stack, specs, name, assets=assets)
            before = pending(stack.kafka_bootstrap, name, topic)
            started = time.perf_counter()
            with pg_connect(stack, src) as conn:
                for round_ in range(args.rounds):
                    conn.execute(f"UPDATE t SET qty = qty + 1, note = 'round {round_}'")
                    conn.commit()
            committed = time.perf_counter()
            while pending(stack.kafka_bootstrap, name, topic) < before + changes:
                time.sleep(0.2)
            captured = time.perf_counter()
            lines += [f"Source: {args.rounds} UPDATEs of all {args.rows:,} rows committed in {committed - started:.1f} s; "
                      f"Debezium had every change in Kafka {captured - committed:.1f} s after the last commit "
                      f"({changes / (captured - started):,.0f} changes/s from the first statement).", "",
                      "| writer | processes | seconds | changes/s | vs. 1 Iceberg process |", "|---|---|---|---|---|"]  # fmt: skip
            figures = []
            for label, processes in (("Parquet layout (reference)", 1), ("Iceberg", 1), ("Iceberg", 2),
                                     ("Iceberg", 4)):  # fmt: skip
                group = f"{name}-{'pq' if label.startswith('Parquet') else 'ice'}{processes}"
                job = S3Table(table.qualified, topic, table, TableLocation(bucket, group, "replica", "t"),
                              None if label.startswith("Parquet") else LakeNames(group, "t"))  # fmt: skip
                seconds = run_writers(
                    work, target, specs.directory, stack.kafka_bootstrap, group, job, processes
                )
                figures.append((label, processes, seconds))
                print(f"{label}, {processes} process(es): {changes / seconds:,.0f} changes/s", flush=True)
            single = next(s for label, p, s in figures if label == "Iceberg" and p == 1)
            for label, processes, seconds in figures:
                lines.append(f"| {label} | {processes} | {seconds:.1f} | {changes / seconds:,.0f} | "
                             f"{single / seconds:.2f}x |")  # fmt: skip
        finally:
            teardown(stack, KafkaConnectResource(url=stack.connect_url), specs, name)
    suffix = "" if stack.s3_server == "moto" else f"_{stack.s3_server}"
    out = ROOT / "bench" / f"lake_writers{suffix}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
