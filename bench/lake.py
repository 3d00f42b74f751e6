"""The S3 target's Iceberg tables on the local stack, each figure beside a reference from the same run;
printed and written to bench/lake.md.

One PostgreSQL -> S3 (``table_format: iceberg``) pipeline replicates a table of ``--rows`` rows
(bigint key, bigint, int, numeric(12,2), varchar(64), timestamptz) through the real chain: the full
load into the change log, Debezium, Kafka, the platform's writer. Then:

1. **Change-log throughput** (changes/s): 1 % and then 10 % of the rows changed at the source (80 %
   updates, 10 % deletes, 10 % inserts), in Kafka before the clock starts; the Iceberg writer
   (``flush_tables``, one commit per flush) drains them, and so does the Parquet layout's writer, the
   reference, on the same events through its own consumer group.
2. **Merge time of the current-state table** after each round: the incremental merge beside the
   reference, DuckDB computing the current state from the change log's raw Parquet files with the
   window query readers ran before (every file, every time).
3. **Commit -> current-state delay**: ``--probes`` single-row commits, each followed by the writer
   and the merge run back to back as fast as they go; the delay to the row in the change log beside
   it. The sensor intervals (``s3_flush_seconds``, ``lake_merge_seconds``) add to these on a running
   deployment.

Not a test: figures vary with the machine. Run: ``python bench/lake.py [--rows 1000000] [--probes 10]``
(writes bench/lake.md; with ``CDC_S3_SERVER=seaweedfs``, bench/lake_seaweedfs.md).
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import dagster as dg  # noqa: E402

from cdc_platform.kafka_connect import KafkaConnectResource  # noqa: E402
from cdc_platform.pipeline.plan import PipelineNames, table_topic  # noqa: E402
from cdc_platform.s3.changes import S3Table, flush_tables, waiting_changes  # noqa: E402
from cdc_platform.s3.current_state import merge_current  # noqa: E402
from cdc_platform.s3.iceberg_catalog import LakeNames, lake_catalog  # noqa: E402
from cdc_platform.s3.storage import TableLocation  # noqa: E402
from cdc_platform.schema.discovery import discover_pipeline_tables  # noqa: E402
from cdc_platform.settings import load_stack_settings  # noqa: E402
from tests.pipeline_support import component_defs, connection, materialize, teardown, write_specs  # noqa: E402
from tests.support import pg_connect, pg_database, unique  # noqa: E402

TABLE = """CREATE TABLE t (id bigint PRIMARY KEY, account bigint NOT NULL, qty int, amount numeric(12,2),
  note varchar(64), at timestamptz DEFAULT now())"""


def _duckdb(stack):
    import duckdb

    con = duckdb.connect(
        config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false"}
    )
    for extension in ("httpfs", "avro", "iceberg"):
        module = __import__(f"duckdb_extension_{extension}")
        (path,) = glob.glob(
            os.path.join(os.path.dirname(module.__file__), "extensions", "*", f"{extension}.duckdb_extension")
        )
        con.execute(f"LOAD '{path}'")
    endpoint = stack.s3_url.split("://", 1)[1].rstrip("/")
    con.execute(f"CREATE SECRET (TYPE s3, KEY_ID 'bench', SECRET 'bench', ENDPOINT '{endpoint}', URL_STYLE 'path', "
                "USE_SSL false, REGION 'us-east-1')")  # fmt: skip
    return con


def _duckdb_current(con, change_log) -> tuple[int, float]:
    """The readers' recipe: newest row per key over every raw file of the change log."""
    files = [task.file.file_path for task in change_log.scan().plan_files()]
    listed = ", ".join(f"'{f}'" for f in files)
    started = time.perf_counter()
    (count,) = con.execute(
        "SELECT count(*) FROM (SELECT _cdc_op, row_number() OVER (PARTITION BY id ORDER BY _cdc_seq DESC) AS n "
        f"FROM read_parquet([{listed}])) WHERE n = 1 AND _cdc_op <> 'd'"
    ).fetchone()
    return count, time.perf_counter() - started


def _duckdb_table(con, current) -> tuple[int, float]:
    """What a reader runs once the current state is a table: one Iceberg scan."""
    started = time.perf_counter()
    (count,) = con.execute(f"SELECT count(*) FROM iceberg_scan('{current.metadata_location}')").fetchone()
    return count, time.perf_counter() - started


def _drain(label: str, run_flush, pending) -> tuple[int, float]:
    """(changes written, seconds) until nothing waits for this writer."""
    started, written = time.perf_counter(), 0
    while True:
        results = run_flush()
        written += sum(r.rows for r in results.values())
        errors = [r.error for r in results.values() if r.error]
        if errors:
            raise RuntimeError(f"{label}: {errors}")
        if pending() == 0:
            return written, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=10)
    args = parser.parse_args()
    stack = load_stack_settings()
    os.environ.setdefault("LAKE_KEY", "bench")
    os.environ.setdefault("LAKE_SECRET", "bench")
    bucket = unique("bench-lake").replace("_", "-")
    boto3.client("s3", endpoint_url=stack.s3_url, aws_access_key_id="bench", aws_secret_access_key="bench",
                 region_name="us-east-1").create_bucket(Bucket=bucket)  # fmt: skip
    lake = {"kind": "s3", "bucket": bucket, "prefix": "wh", "endpoint_url": stack.s3_url, "table_format": "iceberg",
            "access_key_id": {"env": "LAKE_KEY"}, "secret_access_key": {"env": "LAKE_SECRET"}}  # fmt: skip
    lines = [
        f"# Iceberg tables: {args.rows:,} rows, PostgreSQL -> S3 ({stack.s3_server}), {time.strftime('%Y-%m-%d')}",
        "",
    ]
    with pg_database(stack, "lsrc") as src:
        with pg_connect(stack, src) as conn:
            conn.execute(TABLE)
            conn.execute("INSERT INTO t (id, account, qty, amount, note) SELECT g, g % 5000, g % 100, g / 100.0, "
                         f"'note ' || g FROM generate_series(1, {args.rows}) g")  # fmt: skip
        name = unique("lakebench")
        work = Path(f"/tmp/{name}")
        specs = write_specs(work, {"src": connection(stack, "postgresql", src), "lake": lake},
                            [{"name": name, "source": "src", "target": "lake", "target_schema": "replica",
                              "tables": {"names": ["public.t"]}}])  # fmt: skip
        defs = component_defs(specs)
        (assets,) = [
            a
            for a in defs.assets
            if isinstance(a, dg.AssetsDefinition) and dg.AssetKey(["lake", "replica", "t_changes"]) in a.keys
        ]
        target = specs.connection("lake")
        catalog = lake_catalog(target, specs.directory)
        (table,) = discover_pipeline_tables(
            specs.pipelines[name].spec, specs.connection("src"), specs.directory
        )
        topic = table_topic(specs.connection("src"), PipelineNames(name), table.qualified)
        ice = S3Table(
            table.qualified, topic, table, TableLocation.of(target, "replica", "t"), LakeNames("replica", "t")
        )
        ref_location = TableLocation(bucket, "ref", "replica", "t")
        ref = S3Table(table.qualified, topic, table, ref_location)
        try:
            started = time.perf_counter()
            materialize(stack, specs, name, assets=assets)
            load_seconds = time.perf_counter() - started
            change_log = catalog.load_table(("replica", "t_changes"))
            current = catalog.load_table(("replica", "t"))
            started = time.perf_counter()
            first = merge_current(change_log, current, ["id"], "replica.t")
            first_merge = time.perf_counter() - started
            lines += [f"Full load into the change log (the pipeline's materialization, connectors included): "
                      f"{load_seconds:.1f} s; first merge of {first.total_rows:,} rows: {first_merge:.2f} s.", ""]  # fmt: skip
            con = _duckdb(stack)
            rounds = []
            next_id = args.rows + 1
            for percent in (1, 10):
                changed = args.rows * percent // 100
                with pg_connect(stack, src) as conn:
                    step = 100 // percent
                    conn.execute(f"UPDATE t SET qty = qty + 1, note = 'round {percent}' WHERE id % {step} = 0 "
                                 f"AND id % {step * 10} <> {step}")  # fmt: skip
                    conn.execute(f"DELETE FROM t WHERE id % {step * 10} = {step}")
                    conn.execute(f"INSERT INTO t (id, account, qty, amount, note) SELECT g, 1, 1, 1.00, 'new' "
                                 f"FROM generate_series({next_id}, {next_id + changed // 10 - 1}) g")  # fmt: skip
                next_id += changed // 10
                # every change in Kafka before the clocks start
                expected = sum(waiting_changes(stack.kafka_bootstrap, name, [topic]).values())
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    time.sleep(2)
                    now = sum(waiting_changes(stack.kafka_bootstrap, name, [topic]).values())
                    if now == expected and now > 0:
                        break
                    expected = now
                figures = {}
                for label, job, group in (("iceberg", ice, name), ("parquet", ref, f"{name}-ref")):
                    figures[label] = _drain(
                        label,
                        lambda job=job, group=group: {job.qualified: flush_tables(
                            target, specs.directory, stack.kafka_bootstrap, group, "postgresql", [job], print,
                            budget_seconds=60)[job.qualified]},
                        lambda group=group: sum(waiting_changes(stack.kafka_bootstrap, group, [topic]).values()),
                    )  # fmt: skip
                change_log, current = change_log.refresh(), current.refresh()
                started = time.perf_counter()
                merged = merge_current(change_log, current, ["id"], "replica.t")
                merge_seconds = time.perf_counter() - started
                count, duck_seconds = _duckdb_current(con, change_log)
                read, read_seconds = _duckdb_table(con, current.refresh())
                assert count == merged.total_rows == read, (count, merged.total_rows, read)
                rounds.append((percent, figures, merged, merge_seconds, duck_seconds, read_seconds))
            lines += ["| changed | events | Iceberg writer | Parquet writer (reference) | merge | DuckDB: current state "
                      "from the raw files (reference) | DuckDB: the current-state table |",
                      "|---|---|---|---|---|---|---|"]  # fmt: skip
            for percent, figures, merged, merge_seconds, duck_seconds, read_seconds in rounds:
                (ice_rows, ice_s), (pq_rows, pq_s) = figures["iceberg"], figures["parquet"]
                lines.append(
                    f"| {percent} % | {ice_rows:,} | {ice_rows / ice_s:,.0f} changes/s ({ice_s:.1f} s) | "
                    f"{pq_rows / pq_s:,.0f} changes/s ({pq_s:.1f} s) | {merge_seconds:.2f} s ({merged.keys_changed:,} "
                    f"keys, {merged.rows_deleted:,} deleted; {merged.total_rows:,} rows) | {duck_seconds:.2f} s | "
                    f"{read_seconds:.2f} s |"
                )  # fmt: skip

            # commit -> current state, the writer and the merge run back to back
            to_log, to_current = [], []
            for probe in range(args.probes):
                key = next_id + probe
                with pg_connect(stack, src) as conn:
                    conn.execute(
                        f"INSERT INTO t (id, account, qty, amount, note) VALUES ({key}, 1, 1, 1.00, 'probe')"
                    )
                committed = time.perf_counter()
                seen_log = None
                while True:
                    flush_tables(
                        target, specs.directory, stack.kafka_bootstrap, name, "postgresql", [ice], print
                    )
                    if (
                        seen_log is None
                        and catalog.load_table(("replica", "t_changes"))
                        .scan(row_filter=f"id == {key}")
                        .to_arrow()
                        .num_rows
                    ):
                        seen_log = time.perf_counter() - committed
                    if seen_log is not None:
                        merge_current(
                            catalog.load_table(("replica", "t_changes")),
                            catalog.load_table(("replica", "t")),
                            ["id"],
                            "replica.t",
                        )
                        if (
                            catalog.load_table(("replica", "t"))
                            .scan(row_filter=f"id == {key}")
                            .to_arrow()
                            .num_rows
                        ):
                            to_current.append(time.perf_counter() - committed)
                            to_log.append(seen_log)
                            break
            lines += ["", f"Commit -> row, {args.probes} single-row commits, the writer and the merge back to back "
                      f"(medians): in the change log {statistics.median(to_log):.2f} s (reference); in the current "
                      f"state {statistics.median(to_current):.2f} s (max {max(to_current):.2f} s).", ""]  # fmt: skip
        finally:
            teardown(stack, KafkaConnectResource(url=stack.connect_url), specs, name)
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "bench" / ("lake.md" if stack.s3_server == "moto" else f"lake_{stack.s3_server}.md")).write_text(
        text
    )


if __name__ == "__main__":
    main()
