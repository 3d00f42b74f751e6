"""One pass of the Connect health sensor and of the metrics collection for many pipelines.

Generated specs of P pipelines x T tables read a real database on the local stack (one source
schema of T empty tables that every pipeline selects, PostgreSQL -> PostgreSQL) with a stored
catalog, as after ``cdc-platform refresh``. The sensor is ticked through Dagster (``build_sensor_context``
on a real instance) against the stack's Connect worker, and the metrics job runs in process with
its store in SQLite, so every pass asks Kafka Connect, Kafka, Jolokia and the databases what it
asks in production.

What it does not have: deployed connectors. P pipelines would need 2P connectors and P replication
slots, beyond a two-core machine and the stack's 40 slots, so every connector is absent: the
sensor evaluates each one from the one status listing it fetches, and the metrics pass reads
offsets of groups and topics that do not exist. To make the sensor assess them all, every connector
asset is recorded as materialized once, so each is MISSING on the worker (an ERROR check and a
health sample apiece). The figures are the platform's own cost per pipeline, without Connect's. Targets (issue 14): sensor pass < 10 s, metrics pass < 30 s at 100
pipelines. Not a test. Run: ``python bench/pass_times.py [--pipelines 10,100] [--tables 20]``;
writes bench/pass_times.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from cdc_platform.dagster.catalog import PipelineCatalog, StoredCatalog, write_catalog  # noqa: E402
from cdc_platform.dagster.component import CdcPipelineComponent  # noqa: E402
from cdc_platform.kafka_connect import KafkaConnectResource  # noqa: E402
from cdc_platform.schema.model import Column, Table  # noqa: E402
from cdc_platform.schema.types import CanonicalType  # noqa: E402
from cdc_platform.settings import STACK_DB_USER, load_stack_settings  # noqa: E402


def prepare_source(database: str, tables: int) -> None:
    import psycopg

    stack = load_stack_settings()
    password = stack.password("postgres")
    with psycopg.connect(host=stack.host, port=stack.postgres_port, user=STACK_DB_USER, password=password,
                         dbname="postgres", autocommit=True) as admin:  # fmt: skip
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{database}"')
    with psycopg.connect(host=stack.host, port=stack.postgres_port, user=STACK_DB_USER, password=password,
                         dbname=database, autocommit=True) as conn:  # fmt: skip
        conn.execute("CREATE SCHEMA shop")
        for t in range(tables):
            conn.execute(
                f"CREATE TABLE shop.t{t:03d} (id bigint PRIMARY KEY, name varchar(80), amount numeric(12,2))"
            )


def generate(directory: Path, database: str, pipelines: int, tables: int) -> Path:
    stack = load_stack_settings()
    conn = {"kind": "postgresql", "host": stack.host, "port": stack.postgres_port, "database": database,
            "username": STACK_DB_USER, "password": {"file": str(stack.secrets_file), "key": "postgres.password"}}  # fmt: skip
    (directory / "connections.yaml").write_text(yaml.safe_dump({"connections": {"src": conn, "dw": conn}}))
    columns = (Column("id", CanonicalType("bigint"), False, "bigint"),
               Column("name", CanonicalType("varchar", length=80), True, "character varying"),
               Column("amount", CanonicalType("numeric", precision=12, scale=2), True, "numeric"))  # fmt: skip
    table_list = tuple(Table("shop", f"t{t:03d}", columns, ("id",)) for t in range(tables))
    specs = [{"name": f"p{p:04d}", "source": "src", "target": "dw", "target_schema": f"dw{p:04d}",
              "tables": {"schema": "shop", "include": ["t*"]}} for p in range(pipelines)]  # fmt: skip
    (directory / "pipelines.yaml").write_text(yaml.safe_dump({"pipelines": specs}))
    state = directory / "state"
    write_catalog(
        StoredCatalog({s["name"]: PipelineCatalog(table_list, "2026-11-30T00:00:00+00:00") for s in specs}),
        state,
    )
    return state


def measure(pipelines: int, tables: int) -> dict:
    stack = load_stack_settings()
    database = "bench_pass_times"
    prepare_source(database, tables)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CDC_METRICS_URL"] = f"sqlite:///{tmp}/metrics.sqlite"
        state = generate(Path(tmp), database, pipelines, tables)
        component = CdcPipelineComponent.from_attributes_dict(attributes={"specs_dir": tmp})
        defs = component.build_defs_from_state(None, state)
        instance = dg.DagsterInstance.ephemeral()
        # as if every pipeline had been deployed once: the sensor then assesses all 2P connectors
        # (each is MISSING on the worker, the heaviest verdict: an ERROR check and a health sample)
        for key in defs.get_repository_def().asset_graph.get_all_asset_keys():
            if key.path[-1] in ("source_connector", "sink_connector"):
                instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))
        sensor = defs.get_sensor_def("cdc_connect_health")
        connect = KafkaConnectResource(url=stack.connect_cluster_url)
        ticks, cursor, evaluations = [], None, []
        for _ in range(3):
            started = time.monotonic()
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"kafka_connect": connect}
            )
            result = sensor(context)
            ticks.append(time.monotonic() - started)
            cursor = result.cursor
            evaluations.append(len(result.asset_events or []))
        job = defs.resolve_job_def("cdc_collect_metrics")
        passes = []
        for _ in range(2):
            started = time.monotonic()
            outcome = job.execute_in_process(instance=instance)
            passes.append(time.monotonic() - started)
            assert outcome.success
    return {
        "ticks": ticks,
        "evaluations": evaluations,
        "passes": passes,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipelines", default="10,100")
    parser.add_argument("--tables", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for p in (int(x) for x in args.pipelines.split(",")):
        r = measure(p, args.tables)
        rows.append((p, r))
        print(f"{p:4} pipelines x {args.tables} tables: sensor ticks "
              f"{', '.join(f'{t:.2f}' for t in r['ticks'])} s ({r['evaluations'][0]} asset events in the first); "
              "metrics passes "
              f"{', '.join(f'{t:.2f}' for t in r['passes'])} s; peak {r['peak_mb']:.0f} MB")  # fmt: skip
    lines = ["# Sensor and metrics pass times", "",
             f"Written by `python bench/pass_times.py --pipelines {args.pipelines} --tables {args.tables}` on "
             f"{time.strftime('%Y-%m-%d')}, with the local stack running. No connector is deployed (see the "
             "script's docstring): these are the platform's own costs. Targets: sensor pass < 10 s, metrics "
             "pass < 30 s at 100 pipelines.", "",
             "The sensor's first tick reports each connector's check (and its worker asset); later ticks only changes.", "",
             "| pipelines x tables | sensor ticks (s) | asset events, first tick | metrics passes (s) | peak RSS MB |",
             "|---|---|---:|---|---:|"]  # fmt: skip
    lines += [f"| {p} x {args.tables} | {', '.join(f'{t:.2f}' for t in r['ticks'])} | {r['evaluations'][0]} | "
              f"{', '.join(f'{t:.2f}' for t in r['passes'])} | {r['peak_mb']:.0f} |" for p, r in rows]  # fmt: skip
    (ROOT / "bench" / "pass_times.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
