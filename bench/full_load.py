"""Full-load throughput on the local stack, 1,000,000 rows, printed and written to bench/full_load.md.

(a) our full load (the same ``copy_table`` the table assets run),
(b) the best native pipe between the two engines, the reference: ``psql \\copy ... to stdout |
    psql \\copy ... from stdin`` (PostgreSQL -> PostgreSQL), ``psql \\copy ... (format csv) |
    mariadb LOAD DATA LOCAL INFILE`` (PostgreSQL -> MariaDB), ``mariadb --batch -e SELECT |
    psql \\copy ... from stdin`` (MariaDB -> PostgreSQL), ``mariadb --batch -e SELECT | mariadb
    LOAD DATA LOCAL INFILE`` (MariaDB -> MariaDB, reported without a target),
(b') for PostgreSQL -> PostgreSQL also the same pipe in COPY's binary format, which the full load
    uses when both tables hold the same built-in types: reported beside (b), without a target,
(c) pandas ``read_sql`` + ``to_sql`` in chunks, the hand-written alternative (PostgreSQL sources).

Not a test: figures vary with the machine; the targets (issue 35) are (a) >= 1.0x (b) for every
pair but MariaDB -> MariaDB, and (a) >= 10x (c). Run: ``make bench`` (or ``python bench/full_load.py [--rows N]``).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import time
from pathlib import Path

import psycopg
import pymysql
import sqlalchemy as sa

from cdc_platform.pipeline.full_load import copy_table
from cdc_platform.schema.ddl import create_table_sql
from cdc_platform.schema.discovery import describe_table
from cdc_platform.schema.model import CopyJob, Table
from cdc_platform.settings import STACK_DB_USER, load_stack_settings
from cdc_platform.specs.models import ConnectionSpec, FileSecret, PipelineOptions

SRC_DB, PG_DST_DB, MY_DST_DB, MY_SRC_DB = "bench_src", "bench_dst", "bench_dst", "bench_src"
PANDAS_CHUNK = 10_000
PG_MY_PIPE = "(b) psql \\copy csv | mariadb LOAD DATA LOCAL INFILE"
MY_PG_PIPE = "(b) mariadb --batch | psql \\copy"
MY_MY_PIPE = "(b) mariadb --batch | mariadb LOAD DATA LOCAL INFILE"


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


#: ``--target-indexes``: what an application's replica of ``orders`` commonly has beside its key,
#: created on the empty target (PostgreSQL or MariaDB, the same statements) before every run of every method
TARGET_INDEXES: list[str] = []
ORDERS_INDEXES = ["CREATE INDEX orders_customer ON orders (customer_id)",
                  "CREATE INDEX orders_status_created ON orders (status, created_at)"]  # fmt: skip


def _recreate_target(stack, kind: str, table) -> None:
    ddl = create_table_sql(kind, "public" if kind == "postgresql" else MY_DST_DB, "orders", table)
    if kind == "postgresql":
        with _pg(stack, PG_DST_DB) as conn:
            conn.execute("DROP TABLE IF EXISTS public.orders")
            conn.execute(ddl)
            for index in TARGET_INDEXES:
                conn.execute(index)
            # a checkpoint owed to the previous run's WAL happens now, not inside the next run
            conn.execute("CHECKPOINT")
    else:
        my = pymysql.connect(host=stack.host, port=stack.mariadb_port, user=STACK_DB_USER,
                             password=stack.password("mariadb"), database=MY_DST_DB)  # fmt: skip
        with my.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS orders")
            cur.execute(ddl)
            for index in TARGET_INDEXES:
                cur.execute(index)
        my.close()


def run_ours(stack, kind: str, table) -> float:
    _recreate_target(stack, kind, table)
    src = _conn_spec(stack, "postgresql", SRC_DB)
    dst = _conn_spec(stack, kind, PG_DST_DB if kind == "postgresql" else MY_DST_DB)
    schema = "public" if kind == "postgresql" else MY_DST_DB
    # as a pipeline copies it: options.full_load_streams at its default (PostgreSQL -> MariaDB only)
    job = CopyJob(table, schema, "orders", streams=PipelineOptions().full_load_streams)
    stats = copy_table(src, dst, job, Path("/"), log=lambda *_: None, batch_size=10_000)
    return stats.seconds


def run_psql_pipe(stack, table, options: str = "") -> float:
    """(b), or (b') with ``options`` ``with (format binary)``."""
    _recreate_target(stack, "postgresql", table)
    env = {**os.environ, "PGPASSWORD": stack.password("postgres")}
    base = ["psql", "-X", "-q", "-h", stack.host, "-p", str(stack.postgres_port), "-U", STACK_DB_USER]
    started = time.monotonic()
    out = subprocess.Popen([*base, "-d", SRC_DB, "-c", f"\\copy (SELECT * FROM orders) to stdout {options}"],
                           stdout=subprocess.PIPE, env=env)  # fmt: skip
    into = subprocess.run(
        [*base, "-d", PG_DST_DB, "-c", f"\\copy orders from stdin {options}"],
        stdin=out.stdout,
        env=env,
        check=True,
    )
    out.wait()
    assert into.returncode == 0 and out.returncode == 0
    return time.monotonic() - started


def _mariadb_client(stack, database: str) -> tuple[list[str], dict]:
    """The mariadb client on the stack's server, its password in a private defaults file."""
    import tempfile

    defaults = tempfile.NamedTemporaryFile("w", suffix=".cnf", delete=False)  # noqa: SIM115 - removed by the caller
    defaults.write(f"[client]\npassword={stack.password('mariadb')}\n")
    defaults.close()
    os.chmod(defaults.name, 0o600)
    return ([f"--defaults-extra-file={defaults.name}", "-h", stack.host, "-P", str(stack.mariadb_port),
             "-u", STACK_DB_USER, database], {"file": defaults.name})  # fmt: skip


def run_pg_to_mariadb_pipe(stack, table) -> float:
    """(b) for PostgreSQL -> MariaDB: ``psql \copy ... to stdout (csv) | mariadb LOAD DATA LOCAL INFILE``."""
    _recreate_target(stack, "mariadb", table)
    env = {**os.environ, "PGPASSWORD": stack.password("postgres")}
    select = ("SELECT id, customer_id, amount, status, to_char(created_at AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD HH24:MI:SS.US'), note FROM orders")  # fmt: skip
    client, cleanup = _mariadb_client(stack, MY_DST_DB)
    load = ("LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE orders FIELDS TERMINATED BY ',' "
            "OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '' LINES TERMINATED BY '\n'")  # fmt: skip
    try:
        started = time.monotonic()
        out = subprocess.Popen(["psql", "-X", "-q", "-h", stack.host, "-p", str(stack.postgres_port), "-U",
                                STACK_DB_USER, "-d", SRC_DB, "-c", f"\\copy ({select}) to stdout with (format csv)"],
                               stdout=subprocess.PIPE, env=env)  # fmt: skip
        subprocess.run(["mariadb", *client[:1], "--local-infile=1", *client[1:], "-e", load], stdin=out.stdout,
                       check=True)  # fmt: skip
        out.wait()
        assert out.returncode == 0
        return time.monotonic() - started
    finally:
        os.unlink(cleanup["file"])


def prepare_mariadb_source(stack, rows: int) -> None:
    """The same orders table on MariaDB, for the MariaDB -> PostgreSQL pair."""
    my = pymysql.connect(host=stack.host, port=stack.mariadb_port, user=STACK_DB_USER,
                         password=stack.password("mariadb"), autocommit=True)  # fmt: skip
    with my.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{MY_SRC_DB}`")
        cur.execute(f"CREATE DATABASE `{MY_SRC_DB}`")
        cur.execute(f"""CREATE TABLE `{MY_SRC_DB}`.orders (id bigint PRIMARY KEY, customer_id int NOT NULL,
                        amount decimal(12,2) NOT NULL, status varchar(20) NOT NULL, created_at datetime(6) NOT NULL,
                        note longtext)""")  # fmt: skip
        cur.execute(f"""INSERT INTO `{MY_SRC_DB}`.orders SELECT seq, seq % 50000, (seq % 100000) / 100.0,
                        ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'delivered'),
                        TIMESTAMP '2025-01-01 00:00:00' + INTERVAL seq SECOND,
                        CONCAT('order note number ', seq, ' for the benchmark') FROM `{MY_SRC_DB}`.seq_1_to_{rows}""")  # fmt: skip
    my.close()


def run_mariadb_to_pg(stack, table, kind: str = "postgresql") -> float:
    """(a) for MariaDB -> PostgreSQL (or -> MariaDB, ``kind``): our full load."""
    _recreate_target(stack, kind, table)
    src = _conn_spec(stack, "mariadb", MY_SRC_DB)
    dst = _conn_spec(stack, kind, PG_DST_DB if kind == "postgresql" else MY_DST_DB)
    my_table = Table(MY_SRC_DB, "orders", table.columns, table.primary_key)
    stats = copy_table(src, dst, CopyJob(my_table, "public" if kind == "postgresql" else MY_DST_DB, "orders"),
                       Path("/"), log=lambda *_: None, batch_size=10_000)  # fmt: skip
    return stats.seconds


def _mariadb_batch_select(client: list[str]) -> subprocess.Popen:
    """``mariadb --batch`` printing the source's orders rows (tab-separated, backslash escapes)."""
    return subprocess.Popen(["mariadb", *client, "--batch", "--skip-column-names", "--quick", "-e",
                             "SELECT id, customer_id, amount, status, created_at, note FROM orders"],
                            stdout=subprocess.PIPE)  # fmt: skip


def run_mariadb_to_mariadb_pipe(stack, table) -> float:
    """(b) for MariaDB -> MariaDB: ``mariadb --batch -e SELECT | mariadb -e "LOAD DATA LOCAL INFILE
    '/dev/stdin'"`` (the batch output is LOAD DATA's default format; this table has no NULL)."""
    _recreate_target(stack, "mariadb", table)
    source, source_file = _mariadb_client(stack, MY_SRC_DB)
    target, target_file = _mariadb_client(stack, MY_DST_DB)
    try:
        started = time.monotonic()
        out = _mariadb_batch_select(source)
        subprocess.run(["mariadb", target[0], "--local-infile=1", *target[1:], "-e",
                        "LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE orders"], stdin=out.stdout, check=True)  # fmt: skip
        out.wait()
        assert out.returncode == 0
        return time.monotonic() - started
    finally:
        os.unlink(source_file["file"])
        os.unlink(target_file["file"])


def run_mariadb_to_pg_pipe(stack, table) -> float:
    """(b) for MariaDB -> PostgreSQL: ``mariadb --batch -e SELECT | psql \copy ... from stdin`` (both
    speak the same tab-separated text with backslash escapes)."""
    _recreate_target(stack, "postgresql", table)
    env = {**os.environ, "PGPASSWORD": stack.password("postgres")}
    client, cleanup = _mariadb_client(stack, MY_SRC_DB)
    try:
        started = time.monotonic()
        out = _mariadb_batch_select(client)
        subprocess.run(["psql", "-X", "-q", "-h", stack.host, "-p", str(stack.postgres_port), "-U", STACK_DB_USER,
                        "-d", PG_DST_DB, "-c", "SET TIME ZONE 'UTC'", "-c", "\\copy orders from stdin"],
                       stdin=out.stdout, env=env, check=True)  # fmt: skip
        out.wait()
        assert out.returncode == 0
        return time.monotonic() - started
    finally:
        os.unlink(cleanup["file"])


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


def prepared_from_args(parser: argparse.ArgumentParser | None = None):
    """``--rows N`` from the command line, the source table of N rows prepared: (stack, its
    description, the parsed arguments)."""
    parser = parser or argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    stack = load_stack_settings()
    print(f"preparing {args.rows:,} rows ...")
    prepare(stack, args.rows)
    engine = sa.create_engine(sa.URL.create("postgresql+psycopg", STACK_DB_USER, stack.password("postgres"), stack.host,
                                            stack.postgres_port, SRC_DB))  # fmt: skip
    table = describe_table(engine, "postgresql", "public", "orders")
    engine.dispose()
    return stack, table, args


def _peak_rss_mb() -> float:
    """This process's peak resident memory, in MB. (A child's figure would say nothing: a forked
    child is charged the parent's resident pages until it execs.)"""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


OURS = "(a) cdc-platform full load"
PG_PIPE = "(b) psql \\copy | psql \\copy"
PG_BINARY_PIPE = "(b') psql \\copy binary | psql \\copy binary"
PANDAS = "(c) pandas read_sql + to_sql"
PAIRS = ("PostgreSQL -> PostgreSQL", "PostgreSQL -> MariaDB", "MariaDB -> PostgreSQL", "MariaDB -> MariaDB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of (a) and (b), interleaved; the median counts"
    )
    parser.add_argument(
        "--no-pandas", action="store_true", help="skip (c) (it takes minutes per million rows)"
    )
    parser.add_argument("--target-indexes", action="store_true",
                        help="every target gets two secondary indexes, for every method (writes full_load_indexed*.md)")  # fmt: skip
    stack, table, args = prepared_from_args(parser)
    TARGET_INDEXES[:] = ORDERS_INDEXES if args.target_indexes else []
    runs: dict[tuple[str, str], list[float]] = {}

    def measure(pair: str, ours, pipe, label: str, *others: tuple) -> None:
        for _ in range(args.repeat):
            runs.setdefault((pair, OURS), []).append(ours())
            runs.setdefault((pair, label), []).append(pipe())
            for other, other_label in others:
                runs.setdefault((pair, other_label), []).append(other())
        for method in (OURS, label, *(o[1] for o in others)):
            times = runs[(pair, method)]
            print(
                f"{pair:26} {method:50} median {statistics.median(times):6.1f} s of {', '.join(f'{t:.1f}' for t in times)}"
            )

    measure(PAIRS[0], lambda: run_ours(stack, "postgresql", table), lambda: run_psql_pipe(stack, table), PG_PIPE,
            (lambda: run_psql_pipe(stack, table, "with (format binary)"), PG_BINARY_PIPE))  # fmt: skip
    measure(PAIRS[1], lambda: run_ours(stack, "mariadb", table), lambda: run_pg_to_mariadb_pipe(stack, table),
            PG_MY_PIPE)  # fmt: skip
    prepare_mariadb_source(stack, args.rows)
    measure(
        PAIRS[2],
        lambda: run_mariadb_to_pg(stack, table),
        lambda: run_mariadb_to_pg_pipe(stack, table),
        MY_PG_PIPE,
    )
    measure(PAIRS[3], lambda: run_mariadb_to_pg(stack, table, "mariadb"), lambda: run_mariadb_to_mariadb_pipe(stack, table),
            MY_MY_PIPE)  # fmt: skip
    own_rss = _peak_rss_mb()  # before pandas, which holds chunks of rows in this process
    if not args.no_pandas:
        runs[(PAIRS[0], PANDAS)] = [run_pandas(stack, "postgresql", table)]
        runs[(PAIRS[1], PANDAS)] = [run_pandas(stack, "mariadb", table)]
    figures = {key: statistics.median(times) for key, times in runs.items()}
    lines = [
        "# Full-load benchmark",
        "",
        f"Written by `python bench/full_load.py --rows {args.rows} --repeat {args.repeat}"
        f"{' --no-pandas' if args.no_pandas else ''}{' --target-indexes' if TARGET_INDEXES else ''}` "
        f"on {time.strftime('%Y-%m-%d')}.",
        f"Machine: {machine()}. The whole local stack (Kafka, Connect, both databases) was running.",
        "(a) and (b) ran one after the other, alternately; each figure is the median of the runs listed. "
        f"(a) PostgreSQL -> MariaDB copies in {PipelineOptions().full_load_streams} streams "
        "(`options.full_load_streams`, its default), every other pair in one.",
        *(
            [
                f"Targets had two secondary indexes beside the key, for every method: {'; '.join(ORDERS_INDEXES)}."
            ]
            if TARGET_INDEXES
            else []
        ),  # fmt: skip
        "",
        "| pair | method | seconds (median) | runs | rows/s |",
        "|---|---|---:|---|---:|",
    ]
    lines += [
        f"| {p} | {m.replace('|', '&#124;')} | {s:.1f} | {', '.join(f'{t:.1f}' for t in runs[(p, m)])} | "
        f"{args.rows / s:,.0f} |"
        for (p, m), s in figures.items()
    ]
    pipes = {PAIRS[0]: (PG_PIPE, 1.0), PAIRS[1]: (PG_MY_PIPE, 1.0), PAIRS[2]: (MY_PG_PIPE, 1.0)}
    ratios = [f"- {pair}, (a) / (b) the native pipe: **{figures[(pair, pipe)] / figures[(pair, OURS)]:.2f}x** "
              f"(target >= {target}x)" for pair, (pipe, target) in pipes.items()]  # fmt: skip
    ratios.append(f"- {PAIRS[0]}, (a) / (b') the pipe in COPY's binary format: "
                  f"**{figures[(PAIRS[0], PG_BINARY_PIPE)] / figures[(PAIRS[0], OURS)]:.2f}x** (reported)")  # fmt: skip
    ratios.append(f"- {PAIRS[3]}, (a) / (b) the native pipe: **{figures[(PAIRS[3], MY_MY_PIPE)] / figures[(PAIRS[3], OURS)]:.2f}x** "
                  "(no target in issue 14; reported)")  # fmt: skip
    ratios += [f"- {pair}, (a) / (c) pandas: **{figures[(pair, PANDAS)] / figures[(pair, OURS)]:.1f}x** (target >= 10x)"
               for pair in PAIRS[:2] if (pair, PANDAS) in figures]  # fmt: skip
    ratios.append(f"- Peak resident memory of the benchmark process, which runs (a), over every (a) and (b) run: "
                  f"{own_rss:.0f} MB")  # fmt: skip
    lines += ["", *ratios, ""]
    name = "full_load.md" if args.rows == 1_000_000 else f"full_load_{args.rows // 1_000_000}m.md"
    if TARGET_INDEXES:
        name = name.replace("full_load", "full_load_indexed")
    Path(__file__).with_name(name).write_text("\n".join(lines))
    print("\n".join(ratios))


if __name__ == "__main__":
    main()
