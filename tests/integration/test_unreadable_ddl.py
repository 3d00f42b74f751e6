"""DDL the capture cannot read (MariaDB's INET4/INET6: Debezium's DDL parser has no rule for them)
never stops what it does not concern, on the real stack:

- ``plan`` refuses a captured table with such a column, naming the table and the column;
- tables with such columns beside the captured ones, existing at the first schema snapshot or
  created and altered while a writer runs, stop nothing: the captured table stays equal;
- a table added to the running pipeline is copied and streamed with them present;
- the same DDL on a captured table holds the pipeline (paused, an alert naming the column and its
  type) at the schema_changes sensor's next tick, with the source connector still running.
"""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from cdc_platform.alerts.history import AlertHistory
from cdc_platform.cli import cli
from cdc_platform.pipeline.lifecycle import Intent, control_of
from cdc_platform.quality.schema_follow import HELD_RULE
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


def test_inet_columns_beside_captured_tables_stop_nothing_and_on_a_captured_one_hold_it(
    stack, connect, tmp_path, monkeypatch
):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'platform.sqlite'}")
    with mariadb_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:

        def on_source(*statements: str) -> None:
            with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)

        on_source(
            "CREATE TABLE t (id bigint PRIMARY KEY, v int)",
            "CREATE TABLE u (id bigint PRIMARY KEY, v int)",
            "CREATE TABLE c_inet4 (id int PRIMARY KEY, ip INET4)",
            "CREATE TABLE c_inet6 (id int PRIMARY KEY, ip INET6)",
            "INSERT INTO c_inet4 VALUES (1, '10.0.0.1')",
            "INSERT INTO t SELECT seq, seq FROM seq_1_to_100",
            "INSERT INTO u SELECT seq, seq FROM seq_1_to_50",
        )
        name = unique("inet")
        conns = {"src": connection(stack, "mariadb", src), "tgt": connection(stack, "postgresql", tgt)}
        pipeline = {"name": name, "source": "src", "target": "tgt", "target_schema": "replica"}

        refused = write_specs(
            tmp_path / "refused", conns, [{**pipeline, "tables": {"names": [f"{src}.c_inet4"]}}]
        )
        planned = CliRunner().invoke(cli, ["plan", name, "--specs", str(refused.directory)])
        assert planned.exit_code != 0, planned.output
        assert "c_inet4.ip" in planned.output and "inet4" in planned.output.lower(), planned.output

        specs = write_specs(tmp_path / "specs", conns, [{**pipeline, "tables": {"names": [f"{src}.t"]}}])

        def write(i: int) -> None:
            with mariadb_connect(stack, src) as conn, conn.cursor() as cur:
                cur.executemany("INSERT INTO t VALUES (%s, %s)", [(1000 + i * 10 + k, i) for k in range(10)])

        def rows(table: str):
            return (lambda: mariadb_rows(stack, src, f"SELECT id, v FROM {table} ORDER BY id"),
                    lambda: pg_connect(stack, tgt).execute(f"SELECT id, v FROM replica.{table} ORDER BY id").fetchall())  # fmt: skip

        writer = SlowWriter(write, 0)
        source = f"{name}-source"
        try:
            materialize(stack, specs, name)
            writer.start()
            on_source(
                "CREATE TABLE c_more (id int PRIMARY KEY, ip INET6, ip4 INET4)",
                "ALTER TABLE c_inet4 ADD COLUMN ip2 INET4",
                "INSERT INTO c_more VALUES (1, '::1', '127.0.0.1')",
                "INSERT INTO c_inet6 VALUES (1, '2001:db8::1')",
            )
            wait_for_equal(*rows("t"), timeout=120)
            assert all(t["state"] == "RUNNING" for t in connect.status(source)["tasks"])

            # a table added to the running pipeline, with the unreadable tables still there
            specs = write_specs(tmp_path / "specs", conns,
                                [{**pipeline, "tables": {"names": [f"{src}.t", f"{src}.u"]}}])  # fmt: skip
            materialize(stack, specs, name)
            on_source("UPDATE u SET v = v + 1 WHERE id % 5 = 0", "INSERT INTO u VALUES (1000, 1)")
            wait_for_equal(*rows("u"), timeout=120)

            # the same DDL on a captured table: held at the next tick, capture still running
            defs = component_defs(specs)
            sensor = defs.get_sensor_def("cdc_schema_changes")
            resources = {"kafka_connect": connect, "cdc_settings": defs.resources["cdc_settings"]}
            on_source("ALTER TABLE t ADD COLUMN ip INET4")
            result = sensor(
                dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources=resources)
            )
            assert "held" in result.skip_reason.skip_message, result.skip_reason
            control = control_of(name)
            assert control is not None and control.intent is Intent.PAUSED and "ip" in control.reason
            alert = AlertHistory().open_alert(HELD_RULE, name, f"{src}.t")
            assert alert is not None and "t.ip" in alert.message and "inet4" in alert.message.lower(), alert
            wait_task_state(connect, source, "PAUSED")
        finally:
            writer.stop_event.set()
            teardown(stack, connect, specs, name)
