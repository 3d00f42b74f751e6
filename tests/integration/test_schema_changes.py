"""Source schema changes on a running pipeline, on the real stack, under a writer of ~150 rows/s,
into PostgreSQL and MariaDB.

Each change here stops the sink at the first row the target's table cannot take: a widened varchar
(the change issue 32 saw take a pipeline down) and a dropped NOT NULL column. The schema_drift check
names the change with the target DDL derived by the platform's own mapping; `cdc-platform
apply-drift --yes` applies it; the sink, restarted, applies every change held in Kafka, and the
target equals the source row by row.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pytest
from click.testing import CliRunner

from cdc_platform.cli import cli
from tests.dagster_support import run_checks
from tests.faults import SlowWriter, wait_task_state
from tests.pipeline_support import component_defs, connection, materialize, teardown, write_specs
from tests.support import mariadb_database, mariadb_rows, pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Change:
    """A source table, the change made to it while a writer inserts, and what drift must say."""

    create: str
    change: str
    #: ten rows a call (``%s`` is the call's first id), in the table's shape after the change
    insert: str
    problem: str
    #: the proposed DDL, per target kind
    ddl: dict[str, str]
    #: the columns compared on both sides
    columns: str


WIDEN = Change(
    "CREATE TABLE t (id bigint PRIMARY KEY, note varchar(64))",
    "ALTER TABLE t ALTER COLUMN note TYPE varchar(200)",
    "INSERT INTO t SELECT g, repeat('w', 150) FROM generate_series(%s::bigint, %s::bigint + 9) g",
    "column 'note' was widened on the source",
    {"postgresql": 'ALTER COLUMN "note" TYPE varchar(200)', "mariadb": "MODIFY `note` VARCHAR(200) NULL"},
    "id, note",
)
DROP_NOT_NULL = Change(
    "CREATE TABLE t (id bigint PRIMARY KEY, note text, price numeric(10,2) NOT NULL DEFAULT 1)",
    "ALTER TABLE t DROP COLUMN price",
    "INSERT INTO t SELECT g, 'after the drop' FROM generate_series(%s::bigint, %s::bigint + 9) g",
    "column 'price' was dropped on the source and is NOT NULL on the target",
    {"postgresql": 'ALTER COLUMN "price" DROP NOT NULL'},
    "id, note",
)


# A dropped NOT NULL numeric into MariaDB stops nothing: the target created it NULL-able (NaN has no
# MariaDB form), later rows hold NULL there, and drift only warns (tests/unit/test_quality_drift.py).
@pytest.mark.parametrize(
    ("change", "target_kind"),
    [(WIDEN, "postgresql"), (WIDEN, "mariadb"), (DROP_NOT_NULL, "postgresql")],
    ids=["widened_varchar-postgresql", "widened_varchar-mariadb", "dropped_not_null_column-postgresql"],
)
def test_a_change_the_target_cannot_take_is_proposed_applied_and_nothing_is_lost(
    stack, connect, tmp_path, monkeypatch, target_kind, change
):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'platform.sqlite'}")
    on_pg = target_kind == "postgresql"
    with (
        pg_database(stack, "src") as src,
        pg_database(stack, "tgt") if on_pg else mariadb_database(stack, "tgt") as tgt,
    ):
        with pg_connect(stack, src) as conn:
            conn.execute(change.create)
            conn.execute("INSERT INTO t (id, note) SELECT g, 'before ' || g FROM generate_series(1, 200) g")
        name = unique("change")
        schema = "replica" if on_pg else tgt
        specs = write_specs(tmp_path / "specs", {"src": connection(stack, "postgresql", src),
                                                 "tgt": connection(stack, target_kind, tgt)},
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": schema,
                              "tables": {"names": ["public.t"]}}])  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        sink = f"{name}-sink"

        def write(i: int) -> None:
            with pg_connect(stack, src) as conn:
                conn.execute(change.insert, (1000 + i * 10, 1000 + i * 10))

        writer = SlowWriter(write, 0)
        query = f"SELECT {change.columns} FROM {{}}t ORDER BY 1"

        def src_rows() -> list[tuple]:
            return pg_connect(stack, src).execute(query.format("")).fetchall()

        def tgt_rows() -> list[tuple]:
            if on_pg:
                return pg_connect(stack, tgt).execute(query.format("replica.")).fetchall()
            return [tuple(r) for r in mariadb_rows(stack, tgt, query.format(""))]

        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            with pg_connect(stack, src) as conn:
                conn.execute(change.change)
            writer.start()
            wait_task_state(connect, sink, "FAILED")

            drift = run_checks(defs, instance, ("schema_drift",))["schema_drift"]
            assert not drift.passed and drift.severity == dg.AssetCheckSeverity.ERROR
            assert change.problem in drift.description, drift.description
            proposed = drift.metadata["proposed_ddl"].value
            assert change.ddl[target_kind] in proposed, proposed

            applied = CliRunner().invoke(cli, ["apply-drift", name, "--specs", str(specs.directory), "--yes"])
            assert applied.exit_code == 0 and "applied 1 statement(s)" in applied.output, applied.output
            connect.restart(sink)
            wait_task_state(connect, sink, "RUNNING")
            writer.stop_event.set()
            writer.join()
            assert writer.errors == 0 and writer.next_id > 5
            final = wait_for_equal(src_rows, tgt_rows, timeout=180)
            assert len(final) == 200 + writer.next_id * 10
            after = run_checks(defs, instance, ("schema_drift",))["schema_drift"]
            assert after.passed or after.severity == dg.AssetCheckSeverity.WARN, after.description
        finally:
            writer.stop_event.set()
            teardown(stack, connect, specs, name)
