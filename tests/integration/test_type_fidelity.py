"""Value-for-value fidelity of every common type, through the full load and through CDC."""

from __future__ import annotations

import pytest

from tests.pipeline_support import connection, materialize, teardown, write_specs
from tests.support import pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration

DDL = """
CREATE TABLE everything (
  id int PRIMARY KEY, c_smallint smallint, c_integer integer, c_bigint bigint, c_numeric numeric(38,10),
  c_real real, c_double double precision, c_boolean boolean, c_varchar varchar(50), c_text text, c_date date,
  c_time time, c_timestamp timestamp, c_timestamptz timestamptz, c_json json, c_jsonb jsonb, c_uuid uuid,
  c_bytea bytea
)"""

COLUMNS = ("id, c_smallint, c_integer, c_bigint, c_numeric, c_real, c_double, c_boolean, c_varchar, c_text, c_date, "
           "c_time, c_timestamp, c_timestamptz, c_json, c_jsonb, c_uuid, c_bytea")  # fmt: skip


def _rows(first_id: int) -> list[str]:
    """Literal rows: extremes, unicode and emoji, timestamptz written from several zones, and all-NULL."""
    a, b, c = first_id, first_id + 1, first_id + 2
    return [
        f"({a}, -32768, -2147483648, -9223372036854775808, 1234567890123456789012345678.0123456789, 3.25, "
        "-1.0000000000000002, true, 'plain ascii', 'Grüße, 世界 😀🚀 ‘quotes’', '1999-12-31', '23:59:59.999999', "
        "'2024-02-29 12:34:56.789012', '2024-06-01 08:00:00+09:00', '{\"a\": [1, 2, {\"b\": null}]}', "
        "'{\"z\": 1, \"a\": \"ü\"}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff10'::bytea)",
        f"({b}, 32767, 2147483647, 9223372036854775807, -0.0000000001, -1e-30, 1e300, false, '', E'line1\\nline2\\ttab', "
        "'0001-01-01', '00:00:00', '1970-01-01 00:00:00', '2024-12-31 23:30:00-08:00', '[]', '{}', "
        "'00000000-0000-0000-0000-000000000000', ''::bytea)",
        f"({c}, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    ]


def _read(stack, db, schema):
    with pg_connect(stack, db) as conn:
        return conn.execute(f"SELECT {COLUMNS} FROM {schema}.everything ORDER BY id").fetchall()


def test_every_type_survives_full_load_and_cdc_postgres_to_postgres(stack, connect, tmp_path):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute(DDL)
            conn.execute(f"INSERT INTO everything ({COLUMNS}) VALUES {', '.join(_rows(1))}")
            conn.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, body text, meta jsonb)")
            # large, poorly compressible values: stored out of line (TOASTed) on the source
            conn.execute("INSERT INTO docs SELECT 1, 'v1', string_agg(md5(g::text), ''), "
                         "jsonb_build_object('blob', string_agg(md5((g * 7)::text), '')) FROM generate_series(1, 4000) g")  # fmt: skip
        name = unique("fid")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
            [{"name": name, "source": "src", "target": "tgt", "tables": {"names": ["public.everything", "public.docs"]},
              "target_schema": "replica"}],
        )  # fmt: skip
        materialize(stack, specs, name)
        try:
            assert _read(stack, tgt, "replica") == _read(stack, src, "public"), "full load changed a value"
            with pg_connect(stack, src) as conn:
                conn.execute("SET TIME ZONE 'America/Sao_Paulo'")
                conn.execute(f"INSERT INTO everything ({COLUMNS}) VALUES {', '.join(_rows(10))}")
                conn.execute(
                    "UPDATE everything SET c_text = c_text || ' ✅', c_numeric = c_numeric + 1 WHERE id = 1"
                )
                conn.execute("UPDATE docs SET title = 'v2' WHERE id = 1")  # body and meta untouched
            wait_for_equal(lambda: _read(stack, src, "public"), lambda: _read(stack, tgt, "replica"))
            docs = "SELECT id, title, md5(body), md5(meta::text), length(body) FROM {}.docs"
            wait_for_equal(
                lambda: pg_connect(stack, src).execute(docs.format("public")).fetchall(),
                lambda: pg_connect(stack, tgt).execute(docs.format("replica")).fetchall(),
            )
            with pg_connect(stack, tgt) as conn:
                assert conn.execute("SELECT title, length(body) FROM replica.docs").fetchone() == (
                    "v2",
                    128000,
                )
        finally:
            teardown(stack, connect, specs, name)


TRICKY = """
CREATE TABLE tricky (
  id int PRIMARY KEY, t text, v varchar(40), b boolean, ts timestamptz, n numeric(20,6), j jsonb, u uuid, raw bytea
)"""
TRICKY_ROWS = [
    "(1, 'comma, \"quote\" and ''apostrophe''', 'NULL', true, '2024-06-01 08:00:00+09:00', 12345678901234.123456, "
    "'{\"k\": \"v, \\\"q\\\"\"}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x000a0d2c22ff'::bytea)",
    "(2, E'multi\\nline\\r\\nand\\ttab and back\\\\slash \\f', '😀 emoji', false, '1999-12-31 23:59:59.5-05:00', "
    "-0.000001, '[1, \"two\", null]', '00000000-0000-0000-0000-000000000000', ''::bytea)",
    "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "(4, '', '', true, '2000-01-01 00:00:00+00', 0, '{}', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '\\x5c4e'::bytea)",
]


def _pg_tricky(stack, db):
    with pg_connect(stack, db) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        rows = conn.execute("SELECT id, t, v, b::int, (ts AT TIME ZONE 'UTC'), n, j::text, u::text, raw "
                            "FROM tricky ORDER BY id").fetchall()  # fmt: skip
    return [(*r[:6], _json(r[6]), r[7], bytes(r[8]) if r[8] is not None else None) for r in rows]


def _mariadb_tricky(stack, db):
    from tests.support import mariadb_connect

    with mariadb_connect(stack, db) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, t, v, b, ts, n, j, u, raw FROM tricky ORDER BY id")
        return [(*r[:6], _json(r[6]), r[7], r[8]) for r in cur.fetchall()]


def _json(text):
    import json

    return None if text is None else json.loads(text)


def test_tricky_values_survive_postgres_to_mariadb(stack, connect, tmp_path):
    from tests.support import mariadb_database

    with pg_database(stack, "src") as src, mariadb_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute(TRICKY)
            conn.execute(f"INSERT INTO tricky VALUES {', '.join(TRICKY_ROWS[:2])}")
        name = unique("fidmdb")
        specs = write_specs(
            tmp_path,
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "mariadb", tgt)},
            [{"name": name, "source": "src", "target": "tgt", "tables": {"names": ["public.tricky"]},
              "target_schema": tgt}],
        )  # fmt: skip
        materialize(stack, specs, name)
        try:
            assert _mariadb_tricky(stack, tgt) == _pg_tricky(stack, src), "full load changed a value"
            with pg_connect(stack, src) as conn:
                conn.execute(f"INSERT INTO tricky VALUES {', '.join(TRICKY_ROWS[2:])}")
                conn.execute("UPDATE tricky SET t = t || ' ✅', b = NOT b WHERE id = 1")
            wait_for_equal(lambda: _pg_tricky(stack, src), lambda: _mariadb_tricky(stack, tgt))
        finally:
            teardown(stack, connect, specs, name)
