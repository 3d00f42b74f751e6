"""Source schema changes on a running pipeline, on the real stack, under a writer of ~150 rows/s, for
PostgreSQL and MariaDB on both sides.

The ``cdc_schema_changes`` sensor (ticked through Dagster's ``build_sensor_context``, as the daemon
would) follows each change: a new NULL-able column, a new NOT NULL column with a default, a widened
varchar, a widened numeric, int -> bigint and a dropped NOT NULL column are applied to the target by
the platform, audited, and rows using the new shape replicate with no sink task FAILED (except, at
most briefly, a new column: the sink's own ADD COLUMN can race the platform's, and the next tick
restarts the task). A
type change (bigint -> varchar) is unsafe: the tick pauses the pipeline with an alert naming it and
the DDL; ``cdc-platform apply-drift --yes`` applies it and resumes. The writer runs throughout, and
the target equals the source row by row at the end.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import dagster as dg
import pytest
from click.testing import CliRunner

from cdc_platform.alerts.history import AlertHistory
from cdc_platform.audit import entries
from cdc_platform.cli import cli
from cdc_platform.pipeline.lifecycle import Intent, control_of
from cdc_platform.quality.schema_follow import HELD_RULE, SCHEMA_HOLD
from tests.dagster_support import run_checks
from tests.faults import SlowWriter, wait_task_state
from tests.pipeline_support import component_defs, connection, materialize, teardown, write_specs
from tests.support import (
    mariadb_connect,
    mariadb_database,
    mariadb_rows,
    pg_connect,
    pg_database,
    unique,
    wait_for_equal,
)

pytestmark = pytest.mark.integration

COLUMNS = ["id", "note", "qty", "amount", "note2", "flag"]


@dataclass(frozen=True)
class Dialect:
    """The source's DDL for each step, in its own syntax."""

    create: str
    add_nullable: str
    add_default: str
    widen_varchar: str
    widen_numeric: str
    int_to_bigint: str
    drop_not_null: str
    retype: str


PG = Dialect(
    "CREATE TABLE t (id bigint PRIMARY KEY, note varchar(64), qty integer, amount numeric(10,2), "
    "price numeric(10,2) NOT NULL DEFAULT 1)",
    "ALTER TABLE t ADD COLUMN note2 text",
    "ALTER TABLE t ADD COLUMN flag integer NOT NULL DEFAULT 7",
    "ALTER TABLE t ALTER COLUMN note TYPE varchar(200)",
    "ALTER TABLE t ALTER COLUMN amount TYPE numeric(14,4)",
    "ALTER TABLE t ALTER COLUMN qty TYPE bigint",
    "ALTER TABLE t DROP COLUMN price",
    "ALTER TABLE t ALTER COLUMN qty TYPE varchar(30)",
)
MARIADB = Dialect(
    "CREATE TABLE t (id bigint PRIMARY KEY, note varchar(64), qty int, amount decimal(10,2), "
    "price decimal(10,2) NOT NULL DEFAULT 1)",
    "ALTER TABLE t ADD COLUMN note2 text",
    "ALTER TABLE t ADD COLUMN flag int NOT NULL DEFAULT 7",
    "ALTER TABLE t MODIFY note varchar(200)",
    "ALTER TABLE t MODIFY amount decimal(14,4)",
    "ALTER TABLE t MODIFY qty bigint",
    "ALTER TABLE t DROP COLUMN price",
    "ALTER TABLE t MODIFY qty varchar(30)",
)


class SinkWatch(threading.Thread):
    """Polls the sink's task states: which step saw a FAILED one, and the longest it stayed FAILED."""

    def __init__(self, connect, sink: str):
        super().__init__(daemon=True)
        self.connect, self.sink, self.step = connect, sink, "start"
        self.failed_in: set[str] = set()
        self.longest_failed, self._since = 0.0, None
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            status = self.connect.status(self.sink) or {}
            now = time.monotonic()
            if any(t.get("state") == "FAILED" for t in status.get("tasks", [])):
                self.failed_in.add(self.step)
                self._since = self._since or now
                self.longest_failed = max(self.longest_failed, now - self._since)
            else:
                self._since = None
            time.sleep(0.3)


@pytest.mark.parametrize(
    ("source_kind", "target_kind"),
    [
        ("postgresql", "postgresql"),
        ("postgresql", "mariadb"),
        ("mariadb", "postgresql"),
        ("mariadb", "mariadb"),
    ],
    ids=["pg-pg", "pg-mariadb", "mariadb-pg", "mariadb-mariadb"],
)
def test_safe_changes_are_followed_and_an_unsafe_one_pauses_until_applied(
    stack, connect, tmp_path, monkeypatch, source_kind, target_kind
):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'platform.sqlite'}")
    pg_source, pg_target = source_kind == "postgresql", target_kind == "postgresql"
    dialect = PG if pg_source else MARIADB
    with (
        pg_database(stack, "src") if pg_source else mariadb_database(stack, "src") as src,
        pg_database(stack, "tgt") if pg_target else mariadb_database(stack, "tgt") as tgt,
    ):

        def on_source(sql: str, args=None) -> None:
            if pg_source:
                with pg_connect(stack, src) as conn:
                    conn.execute(sql, args)
            else:
                with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
                    cur.execute(sql, args)

        on_source(dialect.create)
        if pg_source:
            on_source("INSERT INTO t (id, note, qty, amount) SELECT g, 'before ' || g, g, g / 100.0 "
                      "FROM generate_series(1, 200) g")  # fmt: skip
        else:
            with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
                cur.executemany("INSERT INTO t (id, note, qty, amount) VALUES (%s, %s, %s, %s)",
                                [(g, f"before {g}", g, g / 100) for g in range(1, 201)])  # fmt: skip
        name = unique("schema")
        schema = "replica" if pg_target else tgt
        table = "public.t" if pg_source else f"{src}.t"
        specs = write_specs(tmp_path / "specs", {"src": connection(stack, source_kind, src),
                                                 "tgt": connection(stack, target_kind, tgt)},
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": schema,
                              "tables": {"names": [table]}}])  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        sensor = defs.get_sensor_def("cdc_schema_changes")
        resources = {"kafka_connect": connect, "cdc_settings": defs.resources["cdc_settings"]}
        sink = f"{name}-sink"

        cursor: list[str | None] = [None]

        def tick() -> str:
            result = sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor[0]))
            cursor[0] = result.cursor
            return result.skip_reason.skip_message if result.skip_reason else ""

        def write(i: int) -> None:
            rows = [(n, f"w{n}", n, n / 100) for n in range(1000 + i * 10, 1010 + i * 10)]
            if pg_source:
                with pg_connect(stack, src) as conn, conn.cursor() as cur:
                    cur.executemany("INSERT INTO t (id, note, qty, amount) VALUES (%s, %s, %s, %s)", rows)
            else:
                with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
                    cur.executemany("INSERT INTO t (id, note, qty, amount) VALUES (%s, %s, %s, %s)", rows)

        query = f"SELECT {', '.join(COLUMNS)} FROM {{}}t ORDER BY id"

        def normal(rows) -> list[tuple]:
            return [tuple(None if v is None else str(v) for v in r) for r in rows]

        def src_rows() -> list[tuple]:
            if pg_source:
                return normal(pg_connect(stack, src).execute(query.format("")).fetchall())
            return normal(mariadb_rows(stack, src, query.format("")))

        def tgt_rows() -> list[tuple]:
            if pg_target:
                return normal(pg_connect(stack, tgt).execute(query.format("replica.")).fetchall())
            return normal(mariadb_rows(stack, tgt, query.format("")))

        writer, watch = SlowWriter(write, 0), SinkWatch(connect, sink)
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            writer.start()
            watch.start()
            assert "no schema change" in tick()
            steps = [
                (
                    "add_nullable",
                    dialect.add_nullable,
                    "UPDATE t SET note2 = CONCAT('n', id) WHERE id % 7 = 0",
                ),
                ("add_default", dialect.add_default, "UPDATE t SET flag = 8 WHERE id % 11 = 0"),
                (
                    "widen_varchar",
                    dialect.widen_varchar,
                    "UPDATE t SET note = REPEAT('w', 150) WHERE id % 5 = 0",
                ),
                (
                    "widen_numeric",
                    dialect.widen_numeric,
                    "UPDATE t SET amount = 1234567890.1234 WHERE id % 6 = 0",
                ),
                ("int_to_bigint", dialect.int_to_bigint, "UPDATE t SET qty = 5000000000000 WHERE id % 4 = 0"),
                ("drop", dialect.drop_not_null, None),
            ]
            for step, ddl, use in steps:
                watch.step = step
                on_source(ddl)
                said = tick()
                assert "applied" in said and "held" not in said, (step, said)
                if use:
                    on_source(use)  # rows in the new shape, once the platform has followed it
                for _ in range(3):  # the sensor's next ticks (every 5 s under the daemon; faster here)
                    time.sleep(1)
                    assert "held" not in tick()
            watch.step = "after"
            wait_task_state(connect, sink, "RUNNING")
            # every safe step was applied by the platform, audited as such
            followed = [e for e in entries(name) if e.action == "schema.followed"]
            assert len(followed) == len(steps) and all(
                e.actor == "platform (schema changes)" for e in followed
            )
            audited = [e for e in entries(name) if e.action == "apply_ddl"]  # the widenings at least
            assert len(audited) >= 3 and all(e.actor == "platform (schema changes)" for e in audited), audited
            assert all("source change:" in (e.detail or "") for e in audited)
            # a widening or a drop never fails the sink (non-key target columns are NULL-able); a new
            # column may (the sink's own ADD COLUMN racing the platform's): the schema sensor restarts
            # the task at its next tick
            assert watch.failed_in <= {"add_nullable", "add_default"}, watch.failed_in
            assert watch.longest_failed < 8, (watch.failed_in, watch.longest_failed)

            # the unsafe change: the pipeline pauses, with an alert naming the change and the DDL
            watch.step = "retype"
            on_source(dialect.retype)
            said = tick()
            assert "held" in said, said
            control = control_of(name)
            assert control is not None and control.intent is Intent.PAUSED
            assert control.reason.startswith(SCHEMA_HOLD) and "qty" in control.reason
            wait_task_state(connect, sink, "PAUSED")
            alert = AlertHistory().open_alert(HELD_RULE, name, table)
            assert (
                alert is not None
                and "changed type" in alert.message
                and "proposed target DDL" in alert.message
            )
            drift = run_checks(defs, instance, ("schema_drift",))["schema_drift"]
            assert not drift.passed and drift.severity == dg.AssetCheckSeverity.ERROR
            on_source("UPDATE t SET qty = CONCAT('q', id) WHERE id % 9 = 0")  # held in Kafka meanwhile

            if pg_target:  # reviewed from the CLI
                applied = CliRunner().invoke(cli, ["apply-drift", name, "--specs", str(specs.directory)])
                assert applied.exit_code == 0 and "not applied" in applied.output and "qty" in applied.output
                applied = CliRunner().invoke(
                    cli, ["apply-drift", name, "--specs", str(specs.directory), "--yes"]
                )
                assert applied.exit_code == 0 and "applied 1 statement(s)" in applied.output, applied.output
            else:  # from the UI's job
                job = defs.resolve_job_def("cdc_apply_drift")
                run = job.execute_in_process(instance=instance, run_config={"ops": {"cdc_apply_drift_op": {
                    "config": {"pipeline": name}}}})  # fmt: skip
                assert run.success
                assert any(e.action == "apply_ddl" and "reviewed" in (e.detail or "") and "run" in e.actor
                           for e in entries(name)), entries(name)[:5]  # fmt: skip
            assert control_of(name).intent is Intent.RUNNING
            assert AlertHistory().open_alert(HELD_RULE, name, table) is None
            wait_task_state(connect, sink, "RUNNING")
            assert "no schema change" in tick()

            writer.stop_event.set()
            writer.join()
            assert writer.errors == 0 and writer.next_id > 20, (writer.errors, writer.next_id)
            final = wait_for_equal(src_rows, tgt_rows, timeout=180)
            assert len(final) == 200 + writer.next_id * 10
            after = run_checks(defs, instance, ("schema_drift",))["schema_drift"]
            assert after.passed, after.description
            assert "price" in str(after.metadata["kept_on_target"].value)
        finally:
            writer.stop_event.set()
            watch.stop_event.set()
            teardown(stack, connect, specs, name)
