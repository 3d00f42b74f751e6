"""Value-for-value fidelity of every common type, through the full load and through CDC."""

from __future__ import annotations

import pytest

from tests.integration.test_pipeline_replication import _teardown
from tests.pipeline_support import connection, materialize, write_specs
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
                conn.execute("UPDATE everything SET c_text = c_text || ' ✅', c_numeric = c_numeric + 1 WHERE id = 1")
                conn.execute("UPDATE docs SET title = 'v2' WHERE id = 1")  # body and meta untouched
            wait_for_equal(lambda: _read(stack, src, "public"), lambda: _read(stack, tgt, "replica"))
            docs = "SELECT id, title, md5(body), md5(meta::text), length(body) FROM {}.docs"
            wait_for_equal(
                lambda: pg_connect(stack, src).execute(docs.format("public")).fetchall(),
                lambda: pg_connect(stack, tgt).execute(docs.format("replica")).fetchall(),
            )
            with pg_connect(stack, tgt) as conn:
                assert conn.execute("SELECT title, length(body) FROM replica.docs").fetchone() == ("v2", 128000)
        finally:
            _teardown(stack, connect, specs, name)
