"""The Dagster UI in a real browser, as an operator watches a pipeline fail and heal.

`dg dev` runs the webserver and the daemon as `make demo` does; nothing is ticked by the test. The
sink is made to fail (its target refuses writes). A person then sees, on each target table's Checks
tab, `pipeline_running` failed, and on the sink connector's Events, the opened alert saying who it
reached; the sensor's page says what it saw. Once the target accepts writes again the daemon's
sensor restarts the sink, the tables turn green, the alert resolves, and target equals source.
Each step is asserted twice: on the page Chromium renders, and on the GraphQL answers behind it.
Screenshots go to the test's tmp dir, or to ``$CDC_UI_SHOTS`` when set.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults import BLOCKER, wait_task_state
from tests.pipeline_support import pg_to_pg_specs, teardown
from tests.support import pg_connect, pg_database, unique, wait_for_equal
from tests.ui_support import DagsterUI, deployed_home

pytestmark = pytest.mark.integration

BLOCK_SECOND_TABLE = "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON replica.u FOR EACH ROW EXECUTE FUNCTION replica.refuse()"


def running_on_every_table(ui: DagsterUI, tables: list[list[str]], when: str, timeout: float) -> None:
    """Every table's pipeline_running check passed with the state RUNNING, on the server and on the page."""
    for key in tables:
        # (a pipeline just deployed or restarted may first read STARTING, which passes with a warning)
        ui.wait_for(
            lambda key=key: (e := ui.latest_check(key, "pipeline_running")) and e["success"]
            and e["metadata"]["pipeline_state"] == "RUNNING",
            f"a passed pipeline_running check, pipeline RUNNING, on {key} ({when})", timeout,
        )  # fmt: skip
        assert ui.check_status_shown(key, "pipeline_running") == "Succeeded"


def test_an_operator_sees_a_failed_sink_on_every_table_and_its_alert_then_the_recovery(
    stack, connect, tmp_path
):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            for table in ("t", "u"):
                conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
                conn.execute(f"INSERT INTO {table} SELECT g, 'v' FROM generate_series(1, 50) g")
        name = unique("ui")
        specs = pg_to_pg_specs(stack, tmp_path / "specs", src, tgt, name, ["public.t", "public.u"])
        env = deployed_home(stack, tmp_path, specs.directory, name)
        tables = [["tgt", "replica", "t"], ["tgt", "replica", "u"]]
        sink = [name, "sink_connector"]
        shots = Path(os.environ.get("CDC_UI_SHOTS") or tmp_path / "shots")
        try:
            with DagsterUI(stack.project_root, env, tmp_path / "dg-dev.log", shots) as ui:
                # healthy: the daemon's health sensor has judged every table
                running_on_every_table(ui, tables, "the first judgement", 180)
                ui.screenshot("1-healthy-table-checks")

                # the target refuses writes: the sink task fails
                with pg_connect(stack, tgt) as conn:
                    conn.execute(BLOCKER)
                    conn.execute(BLOCK_SECOND_TABLE)
                    conn.execute("INSERT INTO replica.block VALUES ('on')")
                with pg_connect(stack, src) as conn:
                    conn.execute("INSERT INTO t VALUES (51, 'refused for a while')")
                wait_task_state(connect, f"{name}-sink", "FAILED")

                # every table of the pipeline turns red within a sensor interval, saying why
                for key in tables:
                    failed = ui.wait_for(
                        lambda key=key: (e := ui.latest_check(key, "pipeline_running")) and not e["success"] and e,
                        f"a failed pipeline_running check on {key}", 120,
                    )  # fmt: skip
                    assert (
                        failed["severity"] == "ERROR"
                        and f"{name}-sink task 0 FAILED" in failed["description"]
                    )
                    assert failed["metadata"]["pipeline_state"] == "ERROR"
                    assert ui.check_status_shown(key, "pipeline_running") == "Failed"
                ui.page.get_by_text("pipeline_running", exact=True).first.click()
                ui.page.get_by_text(f"{name}-sink task 0 FAILED").first.wait_for(timeout=60_000)
                ui.screenshot("2-failed-table-check")

                # the alert, on the sink connector's page, saying it reached no one (no channel here).
                # sink_stalled may fire and resolve too: the sink stays RUNNING, changes waiting and none
                # applied, for the minute its write retries last
                opened = ui.wait_for(
                    lambda: [o for o in ui.observations(sink) if o["description"].startswith("ALERT TRIGGERED")
                             and "sink_connector_failed" in o["description"]],
                    "the sink_connector_failed alert on the sink connector", 120,
                )[0]  # fmt: skip
                assert "sink_connector_failed (critical)" in opened["description"]
                assert "[notified: no channel configured]" in opened["description"]
                assert "[notified: no channel configured]" in ui.event_shown(
                    sink, opened["timestamp"], "ALERT TRIGGERED #"
                )
                ui.screenshot("3-alert-on-the-sink")
                # the sensors' pages say what they saw, not "empty result"
                lines = ui.sensor_lines("cdc_connect_health") + ui.sensor_lines("cdc_alerts")
                assert any(f"{name} ERROR" in line for line in lines), lines
                assert any(
                    f"sink_connector_failed (critical) on {name} sink since" in line for line in lines
                ), lines

                # repaired: the daemon's sensor restarts the sink (30 s after it saw the failure)
                with pg_connect(stack, tgt) as conn:
                    conn.execute("DELETE FROM replica.block")
                running_on_every_table(ui, tables, "green again after the sensor's restart", 240)
                ui.screenshot("4-recovered-table-checks")
                wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall(),
                               lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall())  # fmt: skip
                # the alert resolves once the sink has run for its resolve_after (60 s)
                resolved = ui.wait_for(
                    lambda: [o for o in ui.observations(sink) if o["description"].startswith("ALERT RESOLVED")
                             and "sink_connector_failed" in o["description"]],
                    "the resolved alert on the sink connector", 180,
                )[0]  # fmt: skip
                assert "sink_connector_failed" in ui.event_shown(
                    sink, resolved["timestamp"], "ALERT RESOLVED #"
                )
                ui.screenshot("5-alert-resolved")
        finally:
            teardown(stack, connect, specs, name)
