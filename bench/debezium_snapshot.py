"""Our full load against Debezium's own initial snapshot of the same table into the same target.

For each pair, a source table of ``--rows`` rows (the ``orders`` shape of ``full_load.py``) gets a
``cdc_only`` pipeline: target table created, source and sink connectors running. Then:

(a) our full load (``copy_table``, what the table asset runs) copies the table into the target;
(d) the target is emptied and the source connector is re-created with ``snapshot.mode=initial``
    and no stored offsets, so Debezium reads the table, writes every row to Kafka as JSON events,
    and the JDBC sink upserts them: the time runs from the connector's creation until the target
    holds every row.

Issue 14's target: (a) >= 10x faster than (d). Not a test: figures vary with the machine.
Run: ``python bench/debezium_snapshot.py [--rows N] [--pairs postgresql-postgresql,...]``; writes
bench/debezium_snapshot.md.
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

from cdc_latency import Db  # noqa: E402
from full_load import machine  # noqa: E402

from cdc_platform.kafka_connect import KafkaConnectResource  # noqa: E402
from cdc_platform.pipeline.full_load import copy_table  # noqa: E402
from cdc_platform.pipeline.plan import PipelineNames  # noqa: E402
from cdc_platform.pipeline.teardown import teardown_pipeline  # noqa: E402
from cdc_platform.schema.discovery import discover_pipeline_tables  # noqa: E402
from cdc_platform.schema.model import CopyJob  # noqa: E402
from cdc_platform.settings import load_stack_settings  # noqa: E402
from tests.pipeline_support import connection, materialize, write_specs  # noqa: E402
from tests.support import mariadb_database, pg_database, unique  # noqa: E402

FILL = {
    "postgresql": """INSERT INTO orders SELECT g, g %% 50000, (g %% 100000) / 100.0,
                     (ARRAY['new','paid','shipped','delivered'])[1 + g %% 4],
                     timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second',
                     'order note number ' || g || ' for the benchmark' FROM generate_series(1, {rows}) g""",
    "mariadb": """INSERT INTO orders SELECT seq, seq %% 50000, (seq %% 100000) / 100.0,
                  ELT(1 + seq %% 4, 'new', 'paid', 'shipped', 'delivered'),
                  TIMESTAMP '2025-01-01 00:00:00' + INTERVAL seq SECOND,
                  CONCAT('order note number ', seq, ' for the benchmark') FROM seq_1_to_{rows}""",
}
DDL = {
    "postgresql": """CREATE TABLE orders (id bigint PRIMARY KEY, customer_id integer NOT NULL,
                     amount numeric(12,2) NOT NULL, status varchar(20) NOT NULL, created_at timestamptz NOT NULL,
                     note text)""",
    "mariadb": """CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, amount decimal(12,2) NOT NULL,
                  status varchar(20) NOT NULL, created_at datetime(6) NOT NULL, note longtext)""",
}


def wait_rows(
    target: Db, table: str, rows: int, connect: KafkaConnectResource, sink: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while target.run(f"SELECT count(*) FROM {table}")[0][0] < rows:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{table} did not reach {rows:,} rows in {timeout:.0f} s")
        state = (connect.status(sink) or {}).get("tasks", [{}])
        if any(t.get("state") == "FAILED" for t in state):
            raise RuntimeError(f"{sink} failed: {state}")
        time.sleep(0.5)


def run_pair(stack, pair: str, rows: int) -> dict:
    source_kind, target_kind = pair.split("-")
    connect = KafkaConnectResource(url=stack.connect_url, timeout_seconds=60)
    with pg_database(stack, "dsrc") as pg_src, pg_database(stack, "dtgt") as pg_tgt, \
            mariadb_database(stack, "dsrc") as my_src, mariadb_database(stack, "dtgt") as my_tgt:  # fmt: skip
        src_db = pg_src if source_kind == "postgresql" else my_src
        tgt_db = pg_tgt if target_kind == "postgresql" else my_tgt
        src_schema = "public" if source_kind == "postgresql" else src_db
        tgt_schema = "replica" if target_kind == "postgresql" else tgt_db
        source = Db(stack, source_kind, src_db, src_schema)
        source.run(DDL[source_kind])
        source.run(FILL[source_kind].format(rows=rows))
        if source_kind == "postgresql":
            source.run("VACUUM ANALYZE orders")
        name = unique("ds")
        names = PipelineNames(name)
        with tempfile.TemporaryDirectory() as tmp:
            specs = write_specs(Path(tmp), {"src": connection(stack, source_kind, src_db),
                                            "tgt": connection(stack, target_kind, tgt_db)},
                                [{"name": name, "source": "src", "target": "tgt", "target_schema": tgt_schema,
                                  "mode": "cdc_only", "tables": {"names": [f"{src_schema}.orders"]}}])  # fmt: skip
            materialize(stack, specs, name)
            spec = specs.pipelines[name].spec
            src_spec, tgt_spec = specs.connection("src"), specs.connection("tgt")
            target = Db(stack, target_kind, tgt_db, tgt_schema)
            try:
                table = discover_pipeline_tables(spec, src_spec, specs.directory)[0]
                ours = copy_table(src_spec, tgt_spec, CopyJob(table, tgt_schema, "orders"), specs.directory,
                                  log=lambda *_: None).seconds  # fmt: skip
                assert target.run(f"SELECT count(*) FROM {tgt_schema}.orders")[0][0] == rows
                config = connect.get_config(names.source_connector)
                connect.delete(names.source_connector)
                target.run(f"DELETE FROM {tgt_schema}.orders")
                started = time.monotonic()
                connect.put_config(
                    names.source_connector, {**config, "snapshot.mode": "initial"}, fresh_offsets=True
                )
                wait_rows(target, f"{tgt_schema}.orders", rows, connect, names.sink_connector, timeout=3600)
                debezium = time.monotonic() - started
            finally:
                teardown_pipeline(name, connect, lambda *_: None, source=src_spec, specs_dir=specs.directory,
                                  delete_topics=True, kafka_bootstrap=stack.kafka_bootstrap)  # fmt: skip
    return {"pair": pair, "rows": rows, "ours": ours, "debezium": debezium}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pairs", default="postgresql-postgresql,mariadb-postgresql")
    args = parser.parse_args()
    stack = load_stack_settings()
    results = []
    for pair in args.pairs.split(","):
        r = run_pair(stack, pair, args.rows)
        results.append(r)
        print(f"{pair:24} (a) our full load {r['ours']:6.1f} s | (d) Debezium snapshot through Kafka "
              f"{r['debezium']:7.1f} s ({r['rows'] / r['debezium']:,.0f} rows/s) | (d)/(a) {r['debezium'] / r['ours']:.1f}x")  # fmt: skip
    lines = ["# Our full load against Debezium's initial snapshot", "",
             f"Written by `python bench/debezium_snapshot.py --rows {args.rows} --pairs {args.pairs}` on "
             f"{time.strftime('%Y-%m-%d')}. Machine: {machine()}. The whole local stack was running; one Connect "
             "worker, the connectors with the platform's settings (JSON converter, JDBC sink upserts).", "",
             "| pair | rows | (a) our full load s | (d) Debezium snapshot -> Kafka -> JDBC sink s | (d) rows/s | (a) faster by |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {r['pair']} | {r['rows']:,} | {r['ours']:.1f} | {r['debezium']:.1f} | {r['rows'] / r['debezium']:,.0f} | "
              f"{r['debezium'] / r['ours']:.1f}x |" for r in results]  # fmt: skip
    lines += ["", "Target (issue 14): (a) >= 10x faster than (d).", ""]
    Path(__file__).with_name("debezium_snapshot.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
