"""The README's first command: seed the demo shop, materialize its pipeline with the dagster CLI,
make a few live changes and show them replicated. Re-running starts the demo afresh."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg

from cdc_platform.health.collect import heartbeat_figures, pipeline_watch
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.pipeline.teardown import teardown_pipeline
from cdc_platform.settings import STACK_DB_USER, load_stack_settings
from cdc_platform.specs.loader import load_specs

PIPELINE = "shop_to_analytics"
TABLES = {"customers": "customers", "products": "products", "orders": "orders", "order_items": "order_lines"}

SHOP_DDL = """
CREATE TABLE customers (
  id bigint PRIMARY KEY, email varchar(200) NOT NULL UNIQUE, full_name text NOT NULL,
  country char(2), signed_up_at timestamptz NOT NULL DEFAULT now(), is_vip boolean NOT NULL DEFAULT false,
  preferences jsonb
);
CREATE TABLE products (
  id integer PRIMARY KEY, sku uuid NOT NULL, name varchar(120) NOT NULL, description text,
  price numeric(12,2) NOT NULL, weight_kg real, in_stock smallint NOT NULL DEFAULT 0, launched_on date
);
CREATE TABLE orders (
  id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers(id), status varchar(20) NOT NULL,
  placed_at timestamp NOT NULL, total numeric(14,2) NOT NULL DEFAULT 0, note text
);
CREATE TABLE order_items (
  order_id bigint NOT NULL REFERENCES orders(id), line_no smallint NOT NULL, product_id integer NOT NULL
  REFERENCES products(id), quantity integer NOT NULL, unit_price numeric(12,2) NOT NULL,
  PRIMARY KEY (order_id, line_no)
);
"""

SEED = """
INSERT INTO customers (id, email, full_name, country, signed_up_at, is_vip, preferences)
SELECT g, 'customer' || g || '@example.com', 'Customer ' || g, (ARRAY['DE','FR','US','JP','BR'])[1 + g % 5],
       timestamptz '2024-01-01 00:00+00' + g * interval '37 minutes', g % 17 = 0,
       jsonb_build_object('newsletter', g % 2 = 0, 'lang', (ARRAY['de','fr','en','ja','pt'])[1 + g % 5])
  FROM generate_series(1, 5000) g;
INSERT INTO products (id, sku, name, description, price, weight_kg, in_stock, launched_on)
SELECT g, md5(g::text)::uuid, 'Product ' || g, repeat('A fine product. ', 1 + g % 10), (g % 500) + 0.99,
       (g % 30) / 3.0, g % 100, date '2020-01-01' + g
  FROM generate_series(1, 300) g;
INSERT INTO orders (id, customer_id, status, placed_at, total, note)
SELECT g, 1 + g % 5000, (ARRAY['new','paid','shipped','delivered'])[1 + g % 4],
       timestamp '2025-01-01' + g * interval '3 minutes', 0, CASE WHEN g % 10 = 0 THEN 'gift wrap ✨' END
  FROM generate_series(1, 40000) g;
INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price)
SELECT o, l, 1 + (o * 7 + l) % 300, 1 + (o + l) % 4, ((o * 7 + l) % 500) + 0.99
  FROM generate_series(1, 40000) o, generate_series(1, 3) l;
UPDATE orders o SET total = s.t FROM (SELECT order_id, sum(quantity * unit_price) t FROM order_items GROUP BY 1) s
 WHERE s.order_id = o.id;
"""

#: (change on the source, query on the target, the value it shows once the change has arrived)
LIVE_CHANGES = [
    ("INSERT INTO customers (id, email, full_name, country, preferences) VALUES "
     "(5001, 'new.customer@example.com', 'Zoë Nouveau 🎉', 'FR', '{\"newsletter\": true}')",
     "SELECT full_name FROM shop.customers WHERE id = 5001", "Zoë Nouveau 🎉"),
    ("INSERT INTO orders (id, customer_id, status, placed_at, total) VALUES (40001, 5001, 'new', now(), 19.98)",
     "SELECT count(*) FROM shop.orders WHERE id = 40001", 1),
    ("INSERT INTO order_items VALUES (40001, 1, 42, 2, 9.99)",
     "SELECT count(*) FROM shop.order_lines WHERE order_id = 40001", 1),
    ("UPDATE orders SET status = 'shipped' WHERE id BETWEEN 100 AND 199",
     "SELECT count(*) FROM shop.orders WHERE id BETWEEN 100 AND 199 AND status = 'shipped'", 100),
    ("DELETE FROM order_items WHERE order_id = 7", "SELECT count(*) FROM shop.order_lines WHERE order_id = 7", 0),
    ("DELETE FROM orders WHERE id = 7", "SELECT count(*) FROM shop.orders WHERE id = 7", 0),
]  # fmt: skip


def _connect(settings, db: str) -> psycopg.Connection:
    return psycopg.connect(host=settings.host, port=settings.postgres_port, user=STACK_DB_USER,
                           password=settings.password("postgres"), dbname=db, autocommit=True)  # fmt: skip


def _counts(settings, db: str, schema: str, names) -> dict[str, int]:
    with _connect(settings, db) as conn:
        return {n: conn.execute(f'SELECT count(*) FROM "{schema}"."{n}"').fetchone()[0] for n in names}


def _quietly(what: str, *args: str) -> None:
    """Run a CLI step and print one line; its full output only when it fails (Dagster's DEBUG lines
    would bury what the demo shows)."""
    env = {**os.environ}
    env.setdefault("DAGSTER_HOME", str(load_stack_settings().project_root / "dagster_home"))
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout[-5000:], done.stderr[-5000:], sep="\n")
        sys.exit(f"{what} failed (exit {done.returncode}); its output is above.")
    print(f"{what}: done in {time.monotonic() - started:.1f} s")


def _arrival_seconds(settings, query: str, expected, started: float, timeout: float = 60.0) -> float | None:
    with _connect(settings, "analytics") as target:
        while time.monotonic() - started < timeout:
            row = target.execute(query).fetchone()
            if row and row[0] == expected:
                return time.monotonic() - started
            time.sleep(0.02)
    return None


def _show_measured_health(specs) -> None:
    """The first heartbeat through the pipeline, one metrics collection, and the terminal view of it."""

    watch = pipeline_watch(specs, PIPELINE, None)
    beat = watch.heartbeat if watch else None
    deadline = time.monotonic() + 30
    while beat is not None and time.monotonic() < deadline and not heartbeat_figures(specs, PIPELINE, beat):
        time.sleep(1)
    _quietly("Collected the first metrics (job cdc_collect_metrics, also on a schedule every minute)",
             "dagster", "job", "execute", "-m", "cdc_platform.definitions", "-j", "cdc_collect_metrics")  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "cdc_platform.cli", "status", PIPELINE],
                          capture_output=True, text=True)  # fmt: skip
    print("\n$ cdc-platform status\n" + done.stdout.rstrip())


def main() -> None:
    settings = load_stack_settings()

    specs = load_specs()
    spec = specs.pipelines[PIPELINE].spec
    connect = KafkaConnectResource(url=settings.connect_cluster_url)
    with _connect(settings, "postgres") as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = 'shop'").fetchone()
    if exists:
        print("Removing the previous demo run (connectors, slot, publication, databases) ...")
        teardown_pipeline(PIPELINE, connect, print, source=specs.connection(spec.source), specs_dir=specs.directory,
                          delete_topics=True, kafka_bootstrap=settings.kafka_bootstrap)  # fmt: skip
    with _connect(settings, "postgres") as admin:
        for db in ("shop", "analytics"):
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{db}"')
    with _connect(settings, "shop") as shop:
        shop.execute(SHOP_DDL)
        shop.execute(SEED)
    print("Seeded the shop:", _counts(settings, "shop", "public", TABLES))

    print()
    _quietly("Stored the pipelines' table catalog (cdc-platform refresh)", "cdc_platform.cli", "refresh")
    _quietly(f"Materialized pipeline {PIPELINE} (dagster asset materialize: schema, full load, connectors)",
             "dagster", "asset", "materialize", "-m", "cdc_platform.definitions", "--select", f"group:{PIPELINE}")  # fmt: skip

    print("\nLive changes on the source, and how long each took to reach the target:")
    with _connect(settings, "shop") as shop:
        for stmt, query, expected in LIVE_CHANGES:
            started = time.monotonic()
            shop.execute(stmt)
            took = _arrival_seconds(settings, query, expected, started)
            print(f"  {f'{took:5.2f} s' if took is not None else 'not yet':>8}  {stmt[:90]}")
    source = _counts(settings, "shop", "public", TABLES)
    deadline = time.monotonic() + 120
    while True:
        target = _counts(settings, "analytics", "shop", TABLES.values())
        if list(source.values()) == list(target.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    print(f"\n{'table':14} {'source shop.public':>20} {'target analytics.shop':>24}")
    for (src, n), tgt in zip(source.items(), target.values(), strict=True):
        print(f"{src:14} {n:>20,} {tgt:>24,}  ({TABLES[src]})")
    with _connect(settings, "analytics") as a:
        status = a.execute("SELECT status FROM shop.orders WHERE id = 150").fetchone()[0]
        name = a.execute("SELECT full_name FROM shop.customers WHERE id = 5001").fetchone()
    print(
        f"\norder 150 status on the target: {status}; new customer on the target: {name[0] if name else None}"
    )
    if list(source.values()) != list(target.values()):
        sys.exit("The target did not catch up within 120 s; see `cdc-platform stack logs connect`.")
    _show_measured_health(specs)
    print(
        "\nReplicating. `dg dev` starts next: http://127.0.0.1:3000 (loopback only, no sign-in: for a team,\n"
        '  `cdc-platform stack up --profile production`, README "A shared deployment")\n'
        f"  Catalog > group {PIPELINE}: the tables with column schema and lineage, the connectors beside them.\n"
        f"  {PIPELINE}/sink_connector > Checks: connector_running, kept current by the cdc_connect_health sensor;\n"
        "    every table's pipeline_running check turns red with it. Its metadata shows pipeline_state.\n"
        "  analytics_pg/shop/orders > Overview, at the bottom: Metadata, switch Table to Plots: latency_seconds,\n"
        "    lag_messages, captured/applied_per_second, row count (collected every minute by the\n"
        "    cdc_collect_metrics schedule; each observation in Events says what its figures mean, with units).\n"
        f"  Jobs: cdc_pause, cdc_resume, cdc_stop, cdc_restart (pick {PIPELINE} in the launchpad).\n"
        "  analytics_pg/shop/orders > Checks: row_count_parity, schema_drift, replication_freshness (every 15 min),\n"
        "    checksum_reconciliation (nightly); all ran in the materialization above.\n"
        "  kafka_connect_worker: the worker, and any connector on it that no pipeline spec owns.\n"
        "  Alerts (cdc_alerts sensor): cdc-platform alerts; what the platform changed: cdc-platform audit\n"
        "  Terminal: cdc-platform status"
    )


if __name__ == "__main__":
    main()
