"""Full-load throughput on the local stack, 1,000,000 rows, printed and written to bench/full_load.md.

(a) our full load (the same ``copy_table`` the table assets run),
(b) ``psql -c "\\copy (...) to stdout" | psql -c "\\copy ... from stdin"``, the reference (PostgreSQL target),
(c) pandas ``read_sql`` + ``to_sql`` in chunks, the hand-written alternative.

Not a test: figures vary with the machine; the targets are (a) >= 0.9x (b) for PostgreSQL -> PostgreSQL
and (a) >= 10x (c) for both pairs. Run: ``make bench`` (or ``python bench/full_load.py [--rows N]``).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path

import psycopg
import pymysql
import sqlalchemy as sa

from cdc_platform.pipeline.full_load import copy_table
from cdc_platform.schema.ddl import create_table_sql
from cdc_platform.schema.discovery import describe_table
from cdc_platform.schema.model import CopyJob
from cdc_platform.settings import STACK_DB_USER, load_stack_settings
from cdc_platform.specs.models import ConnectionSpec, FileSecret

SRC_DB, PG_DST_DB, MY_DST_DB = "bench_src", "bench_dst", "bench_dst"
PANDAS_CHUNK = 10_000


def _pg(stack, db):
    return psycopg.connect(host=stack.host, port=stack.postgres_port, user=STACK_DB_USER,
                           password=stack.password("postgres"), dbname=db, autocommit=True)  # fmt: skip


def _conn_spec(stack, kind, db) -> ConnectionSpec:
    service = "postgres" if kind == "postgresql" else "mariadb"
    return ConnectionSpec(name=f"{kind}_{db}", kind=kind, host=stack.host, port=stack.port_of(service), database=db,
                          username=STACK_DB_USER, password=FileSecret(file=str(stack.secrets_file),
                                                                      key=f"{service}.password"))  # fmt: skip


def prepare(stack, rows: int) -> None:
    with _pg(stack, "postgres") as admin:
        for db in (SRC_DB, PG_DST_DB):
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{db}"')
    with _pg(stack, SRC_DB) as conn:
        conn.execute("""CREATE TABLE orders (id bigint PRIMARY KEY, customer_id integer NOT NULL,
                        amount numeric(12,2) NOT NULL, status varchar(20) NOT NULL, created_at timestamptz NOT NULL,
                        note text)""")  # fmt: skip
        conn.execute(f"""INSERT INTO orders SELECT g, g % 50000, (g % 100000) / 100.0,
                         (ARRAY['new','paid','shipped','delivered'])[1 + g % 4],
                         timestamptz '2025-01-01 00:00+00' + g * interval '1 second',
                         'order note number ' || g || ' for the benchmark'
                         FROM generate_series(1, {rows}) g""")  # fmt: skip
        conn.execute("VACUUM ANALYZE orders")
    my = pymysql.connect(
        host=stack.host, port=stack.mariadb_port, user=STACK_DB_USER, password=stack.password("mariadb")
    )
    with my.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{MY_DST_DB}`")
        cur.execute(f"CREATE DATABASE `{MY_DST_DB}`")
    my.close()


def _recreate_target(stack, kind: str, table) -> None:
    ddl = create_table_sql(kind, "public" if kind == "postgresql" else MY_DST_DB, "orders", table)
    if kind == "postgresql":
        with _pg(stack, PG_DST_DB) as conn:
            conn.execute("DROP TABLE IF EXISTS public.orders")
            conn.execute(ddl)
    else:
        my = pymysql.connect(host=stack.host, port=stack.mariadb_port, user=STACK_DB_USER,
                             password=stack.password("mariadb"), database=MY_DST_DB)  # fmt: skip
        with my.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS orders")
            cur.execute(ddl)
        my.close()


def run_ours(stack, kind: str, table) -> float:
    _recreate_target(stack, kind, table)
    src = _conn_spec(stack, "postgresql", SRC_DB)
    dst = _conn_spec(stack, kind, PG_DST_DB if kind == "postgresql" else MY_DST_DB)
    schema = "public" if kind == "postgresql" else MY_DST_DB
    stats = copy_table(
        src, dst, CopyJob(table, schema, "orders"), Path("/"), log=lambda *_: None, batch_size=10_000
    )
    return stats.seconds


def run_psql_pipe(stack, table) -> float:
    _recreate_target(stack, "postgresql", table)
    env = {**os.environ, "PGPASSWORD": stack.password("postgres")}
    base = ["psql", "-X", "-q", "-h", stack.host, "-p", str(stack.postgres_port), "-U", STACK_DB_USER]
    started = time.monotonic()
    out = subprocess.Popen([*base, "-d", SRC_DB, "-c", "\\copy (SELECT * FROM orders) to stdout"],
                           stdout=subprocess.PIPE, env=env)  # fmt: skip
    into = subprocess.run(
        [*base, "-d", PG_DST_DB, "-c", "\\copy orders from stdin"], stdin=out.stdout, env=env, check=True
    )
    out.wait()
    assert into.returncode == 0 and out.returncode == 0
    return time.monotonic() - started


def run_pandas(stack, kind: str, table) -> float:
    import pandas as pd

    _recreate_target(stack, kind, table)
    src = sa.create_engine(sa.URL.create("postgresql+psycopg", STACK_DB_USER, stack.password("postgres"), stack.host,
                                         stack.postgres_port, SRC_DB))  # fmt: skip
    if kind == "postgresql":
        dst = sa.create_engine(sa.URL.create("postgresql+psycopg", STACK_DB_USER, stack.password("postgres"), stack.host,
                                             stack.postgres_port, PG_DST_DB))  # fmt: skip
    else:
        dst = sa.create_engine(sa.URL.create("mysql+pymysql", STACK_DB_USER, stack.password("mariadb"), stack.host,
                                             stack.mariadb_port, MY_DST_DB))  # fmt: skip
    started = time.monotonic()
    with src.connect().execution_options(stream_results=True) as conn:
        for chunk in pd.read_sql("SELECT * FROM orders", conn, chunksize=PANDAS_CHUNK):
            chunk.to_sql(
                "orders", dst, if_exists="append", index=False, method="multi", chunksize=PANDAS_CHUNK
            )
    seconds = time.monotonic() - started
    src.dispose()
    dst.dispose()
    return seconds


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB RAM, {platform.platform()}, Python {platform.python_version()}, {pg}, MariaDB 10.11"


def prepared_from_args():
    """``--rows N`` from the command line, the source table of N rows prepared: (stack, its description, N)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    stack = load_stack_settings()
    print(f"preparing {args.rows:,} rows ...")
    prepare(stack, args.rows)
    engine = sa.create_engine(sa.URL.create("postgresql+psycopg", STACK_DB_USER, stack.password("postgres"), stack.host,
                                            stack.postgres_port, SRC_DB))  # fmt: skip
    table = describe_table(engine, "postgresql", "public", "orders")
    engine.dispose()
    return stack, table, args.rows


def main() -> None:
    stack, table, rows = prepared_from_args()
    args = argparse.Namespace(rows=rows)
    figures: dict[tuple[str, str], float] = {}
    for kind, label in (("postgresql", "PostgreSQL -> PostgreSQL"), ("mariadb", "PostgreSQL -> MariaDB")):
        figures[(label, "(a) cdc-platform full load")] = run_ours(stack, kind, table)
        if kind == "postgresql":
            figures[(label, "(b) psql \\copy | psql \\copy")] = run_psql_pipe(stack, table)
        figures[(label, "(c) pandas read_sql + to_sql")] = run_pandas(stack, kind, table)
        for (pair, method), seconds in figures.items():
            if pair == label:
                print(f"{pair:26} {method:32} {seconds:8.1f} s {args.rows / seconds:12,.0f} rows/s")
    lines = [
        "# Full-load benchmark",
        "",
        f"Written by `python bench/full_load.py --rows {args.rows}` on {time.strftime('%Y-%m-%d')}.",
        f"Machine: {machine()}. The whole local stack (Kafka, Connect, both databases) was running.",
        "",
        "| pair | method | seconds | rows/s |",
        "|---|---|---:|---:|",
    ]
    lines += [
        f"| {p} | {m.replace('|', '&#124;')} | {s:.1f} | {args.rows / s:,.0f} |"
        for (p, m), s in figures.items()
    ]
    pg_label, my_label = "PostgreSQL -> PostgreSQL", "PostgreSQL -> MariaDB"
    a_pg, b_pg = (
        figures[(pg_label, "(a) cdc-platform full load")],
        figures[(pg_label, "(b) psql \\copy | psql \\copy")],
    )
    c_pg, a_my = (
        figures[(pg_label, "(c) pandas read_sql + to_sql")],
        figures[(my_label, "(a) cdc-platform full load")],
    )
    c_my = figures[(my_label, "(c) pandas read_sql + to_sql")]
    ratios = [
        f"- PostgreSQL -> PostgreSQL, (a) / (b) throughput: **{b_pg / a_pg:.2f}x** (target >= 0.9x)",
        f"- PostgreSQL -> PostgreSQL, (a) / (c) throughput: **{c_pg / a_pg:.1f}x** (target >= 10x)",
        f"- PostgreSQL -> MariaDB, (a) / (c) throughput: **{c_my / a_my:.1f}x** (target >= 10x)",
    ]
    lines += ["", *ratios, ""]
    Path(__file__).with_name("full_load.md").write_text("\n".join(lines))
    print("\n".join(ratios))


if __name__ == "__main__":
    main()
