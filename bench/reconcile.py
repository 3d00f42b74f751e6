"""Checksum reconciliation throughput on the local stack, printed and written to bench/reconcile.md.

The table of ``full_load.py`` (1,000,000 rows by default) is copied PostgreSQL -> PostgreSQL and
PostgreSQL -> MariaDB with our full load, then compared by
(a) ``reconcile`` (the checksum_reconciliation check's code: per-chunk hashes in both databases),
(b) the reference: a plain ``SELECT *`` streamed to the client from both sides, one after the other,
    which is what a check reading both tables in full costs at least.
Then three target rows are deleted/changed/added and (a) runs again, to show what finding and naming
them adds. Not a test: figures vary with the machine; the target is (a) near (b).
Run: ``python bench/reconcile.py [--rows N]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pymysql
import pymysql.cursors

sys.path.insert(0, str(Path(__file__).parent))
from full_load import MY_DST_DB, PG_DST_DB, SRC_DB, _conn_spec, _pg, machine, prepared_from_args, run_ours  # noqa: E402

from cdc_platform.quality.checksum import Side, reconcile  # noqa: E402
from cdc_platform.settings import STACK_DB_USER  # noqa: E402


def _my(stack):
    return pymysql.connect(host=stack.host, port=stack.mariadb_port, user=STACK_DB_USER,
                           password=stack.password("mariadb"), database=MY_DST_DB, autocommit=True)  # fmt: skip


def scan_seconds(stack, kind: str) -> float:
    """Stream every row of the source table, then of the target table, to the client."""
    started = time.monotonic()
    with _pg(stack, SRC_DB) as conn, conn.cursor() as cur:
        for _ in cur.stream("SELECT * FROM public.orders", size=5000):
            pass
    if kind == "postgresql":
        with _pg(stack, PG_DST_DB) as conn, conn.cursor() as cur:
            for _ in cur.stream("SELECT * FROM public.orders", size=5000):
                pass
    else:
        db = _my(stack)
        with db.cursor(pymysql.cursors.SSCursor) as cur:
            cur.execute("SELECT * FROM orders")
            while cur.fetchmany(5000):
                pass
        db.close()
    return time.monotonic() - started


def tamper(stack, kind: str) -> None:
    statements = ["DELETE FROM orders WHERE id = 777", "UPDATE orders SET note = 'changed' WHERE id = 500000",
                  "INSERT INTO orders (id, customer_id, amount, status, created_at) "
                  "VALUES (5000001, 1, 1, 'new', '2025-01-01 00:00:00')"]  # fmt: skip
    if kind == "postgresql":
        with _pg(stack, PG_DST_DB) as conn:
            for s in statements:
                conn.execute(s)
    else:
        db = _my(stack)
        with db.cursor() as cur:
            for s in statements:
                cur.execute(s)
        db.close()


def main() -> None:
    stack, table, args = prepared_from_args()
    columns = {c.name for c in table.columns}
    source = Side(_conn_spec(stack, "postgresql", SRC_DB), Path("/"), "public", "orders")
    rows = []
    for kind, label in (("postgresql", "PostgreSQL -> PostgreSQL"), ("mariadb", "PostgreSQL -> MariaDB")):
        run_ours(stack, kind, table)
        schema = "public" if kind == "postgresql" else MY_DST_DB
        target = Side(_conn_spec(stack, kind, PG_DST_DB if kind == "postgresql" else MY_DST_DB), Path("/"), schema,
                      "orders")  # fmt: skip
        scan = scan_seconds(stack, kind)
        clean = reconcile(source, target, table, columns)
        assert clean.agrees, clean.differences
        tamper(stack, kind)
        found = reconcile(source, target, table, columns)
        named = ", ".join(f"{d.key} {d.kind}" for d in found.differences)
        assert len(found.differences) == 3, named
        rows.append((label, scan, clean.seconds, clean.chunks, found.seconds, named))
        print(f"{label:26} scan {scan:6.1f} s | reconcile {clean.seconds:6.1f} s ({args.rows / clean.seconds:,.0f} rows/s,"
              f" {scan / clean.seconds:.2f}x the scan) | with 3 differences {found.seconds:6.1f} s: {named}")  # fmt: skip
    lines = [
        "# Checksum reconciliation benchmark",
        "",
        f"Written by `python bench/reconcile.py --rows {args.rows}` on {time.strftime('%Y-%m-%d')}.",
        f"Machine: {machine()}. The whole local stack was running. Table: `orders` of `full_load.py` "
        "(bigint key, integer, numeric(12,2), varchar, timestamptz, text).",
        "",
        "| pair | (b) SELECT * scan of both sides, s | (a) reconcile, s | rows/s | (a) vs (b) | chunks | "
        "with 3 differences, s | named |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [f"| {label} | {scan:.1f} | {clean:.1f} | {args.rows / clean:,.0f} | {scan / clean:.2f}x | {chunks:,} | "
              f"{found:.1f} | {named} |" for label, scan, clean, chunks, found, named in rows]  # fmt: skip
    lines += ["", "(a) vs (b) above 1 means the reconciliation is faster than reading both tables.", ""]
    Path(__file__).with_name("reconcile.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
