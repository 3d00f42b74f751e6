"""Checksum reconciliation on the real stack, for PostgreSQL->PostgreSQL, PostgreSQL->MariaDB and
MariaDB->PostgreSQL, run by the component's jobs as the schedules and the UI run them.

Target rows deleted, changed and added behind the pipeline's back are named by key with the kind of
difference; a writer inserting and updating on the source while the checks run raises no false
alarm in 20 consecutive runs; and a materialization whose copy does not reproduce the source fails,
because counts and checksums are blocking checks that run in the same run as the load.
"""

from __future__ import annotations

import random

import dagster as dg
import pytest

from tests.dagster_support import evaluations, run_checks, run_schedule
from tests.faults import SlowWriter
from tests.pipeline_support import component_defs, connection, materialize, teardown, write_specs
from tests.support import mariadb_connect, mariadb_database, pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration

PAIRS = ("postgresql->postgresql", "postgresql->mariadb", "mariadb->postgresql")
ROWS = 400
DDL = {
    "postgresql": "CREATE TABLE t (id int PRIMARY KEY, v varchar(40), amount numeric(12,2), at timestamp(6), "
                  "flag boolean, score double precision)",
    "mariadb": "CREATE TABLE t (id int PRIMARY KEY, v varchar(40), amount decimal(12,2), at datetime(6) NULL, "
               "flag bit(1), score double)",
}  # fmt: skip
SEED = {
    "postgresql": f"INSERT INTO t SELECT g, 'row ' || g, g * 1.25, timestamp '2026-01-01' + g * interval '1 second', "
                  f"g % 2 = 0, g / 7.0 FROM generate_series(1, {ROWS}) g",
    "mariadb": f"INSERT INTO t SELECT seq, CONCAT('row ', seq), seq * 1.25, TIMESTAMP('2026-01-01') + INTERVAL seq "
               f"SECOND, seq % 2 = 0, seq / 7e0 FROM seq_1_to_{ROWS}",
}  # fmt: skip


class Side:
    """One database of the pair: runs statements, names its tables."""

    def __init__(self, stack, kind: str, database: str, schema: str):
        self.stack, self.kind, self.database, self.schema = stack, kind, database, schema

    def run(self, *statements: str) -> None:
        if self.kind == "postgresql":
            with pg_connect(self.stack, self.database) as conn:
                for s in statements:
                    conn.execute(s)
        else:
            with mariadb_connect(self.stack, self.database) as conn, conn.cursor() as cur:
                for s in statements:
                    cur.execute(s)

    def rows(self, table: str = "t") -> list[tuple]:
        sql = f"SELECT id, v FROM {self.schema}.{table} ORDER BY id"
        if self.kind == "postgresql":
            with pg_connect(self.stack, self.database) as conn:
                return conn.execute(sql).fetchall()
        with mariadb_connect(self.stack, self.database) as conn, conn.cursor() as cur:
            cur.execute(sql)
            return [tuple(r) for r in cur.fetchall()]


def _writer(source: Side):
    """Each step inserts a row and updates a random existing one: changes in flight of both kinds."""

    def step(i: int) -> None:
        source.run(f"INSERT INTO t (id, v) VALUES ({i}, 'new {i}')",
                   f"UPDATE t SET v = 'touched {i}', amount = {i % 997} WHERE id = {random.randint(1, ROWS)}")  # fmt: skip

    return step


@pytest.mark.parametrize("pair", PAIRS)
def test_checksums_name_every_differing_key_and_raise_no_false_alarm(stack, connect, tmp_path, pair):
    source_kind, target_kind = pair.split("->")
    with pg_database(stack, "src") as pg_src, pg_database(stack, "tgt") as pg_tgt, \
            mariadb_database(stack, "src") as my_src, mariadb_database(stack, "tgt") as my_tgt:  # fmt: skip
        source = Side(stack, source_kind, pg_src if source_kind == "postgresql" else my_src,
                      "public" if source_kind == "postgresql" else my_src)  # fmt: skip
        target = Side(stack, target_kind, pg_tgt if target_kind == "postgresql" else my_tgt,
                      "replica" if target_kind == "postgresql" else my_tgt)  # fmt: skip
        source.run(DDL[source_kind], SEED[source_kind])
        name = unique("sum")
        specs = write_specs(tmp_path / "specs", {"src": connection(stack, source_kind, source.database),
                                                 "tgt": connection(stack, target_kind, target.database)},
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": target.schema,
                              "tables": {"names": [f"{source.schema}.t"]}}])  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))

        def run(schedule: str) -> dict[str, dg.AssetCheckEvaluation]:
            return run_schedule(defs, instance, f"{schedule}_schedule")

        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            clean = run("cdc_checksum_checks")["checksum_reconciliation"]
            assert clean.passed, clean.description
            assert clean.metadata["source_rows"].value == ROWS and clean.metadata["target_rows"].value == ROWS
            assert clean.metadata["chunks_compared"].value >= 1
            assert "python" in clean.metadata["hashed_in"].value  # a double column: hashed in Python

            # behind the pipeline's back: two rows lost, one changed, one added on the target
            t = f"{target.schema}.t"
            target.run(f"DELETE FROM {t} WHERE id IN (5, 6)", f"UPDATE {t} SET v = 'tampered' WHERE id = 7",
                       f"INSERT INTO {t} (id, v) VALUES (100001, 'stray')")  # fmt: skip
            counted = run("cdc_quality_checks")["row_count_parity"]
            assert not counted.passed and counted.metadata["difference"].value == 1, counted.description
            found = run("cdc_checksum_checks")["checksum_reconciliation"]
            assert not found.passed and found.severity == dg.AssetCheckSeverity.ERROR
            assert found.metadata["differences"].value == [
                {"key": "id=100001", "kind": "extra"},
                {"key": "id=5", "kind": "missing"},
                {"key": "id=6", "kind": "missing"},
                {"key": "id=7", "kind": "changed", "columns": ["v"]},
            ], found.description

            # repaired (the source's rows replicate again, the stray row goes), then a busy source
            target.run(f"DELETE FROM {t} WHERE id = 100001")
            # (a real change: MariaDB logs no event for an UPDATE that leaves the row as it was)
            source.run("UPDATE t SET v = CONCAT(v, '!') WHERE id IN (5, 6, 7)")
            wait_for_equal(source.rows, target.rows)
            writer = SlowWriter(_writer(source), 10_000)
            writer.start()
            try:
                for attempt in range(20):
                    busy = run_checks(defs, instance, ("row_count_parity", "checksum_reconciliation"))
                    assert set(busy) == {"row_count_parity", "checksum_reconciliation"}
                    assert all(e.passed for e in busy.values()), (
                        attempt,
                        {k: e.description for k, e in busy.items()},
                    )
            finally:
                writer.stop_event.set()
                writer.join()
            assert writer.next_id > 10_020 and writer.errors == 0
        finally:
            teardown(stack, connect, specs, name)


def test_a_load_that_does_not_reproduce_the_source_fails_its_run(stack, connect, tmp_path):
    """Counts and checksums block: a target trigger that alters one value during the copy makes the
    materialization run (which runs the table's checks after the load) fail, naming the key."""
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 200) g")
        with pg_connect(stack, tgt) as conn:  # the target table exists already, with a trigger that lies
            conn.execute("CREATE SCHEMA replica")
            conn.execute("CREATE TABLE replica.t (id int PRIMARY KEY, v text)")
            conn.execute("CREATE FUNCTION replica.lie() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                         "IF NEW.id = 42 THEN NEW.v := 'not what the source holds'; END IF; RETURN NEW; END $$")  # fmt: skip
            conn.execute(
                "CREATE TRIGGER lie BEFORE INSERT ON replica.t FOR EACH ROW EXECUTE FUNCTION replica.lie()"
            )
        name = unique("block")
        specs = write_specs(tmp_path / "specs", {"src": connection(stack, "postgresql", src),
                                                 "tgt": connection(stack, "postgresql", tgt)},
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
                              "mode": "full_load_only", "tables": {"names": ["public.t"]}}])  # fmt: skip
        defs = component_defs(specs)
        instance = dg.DagsterInstance.ephemeral()
        table_key = dg.AssetKey(["tgt", "replica", "t"])
        job = defs.resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(instance=instance, asset_selection=[table_key], raise_on_error=False)
        checks = evaluations(result)
        assert {"row_count_parity", "checksum_reconciliation", "schema_drift"} <= set(checks)
        assert checks["row_count_parity"].passed
        lie = checks["checksum_reconciliation"]
        assert not lie.passed and lie.metadata["differences"].value == [
            {"key": "id=42", "kind": "changed", "columns": ["v"]}
        ]
        assert not result.success  # the blocking check failed the run that loaded the table
        record = instance.get_latest_materialization_event(table_key)
        assert record is not None  # the load itself happened; its check is what failed
