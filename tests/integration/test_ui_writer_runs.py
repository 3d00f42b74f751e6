"""The Dagster UI in a real browser, as an operator runs an Iceberg pipeline written by two writer runs.

`dg dev` runs the webserver and the daemon as `make demo` does; nothing is ticked by the test. The
daemon's S3 writer sensor starts one run of the writer job per share, the instance's run launcher
starts each in a process of its own, and the Runs page lists them with their shares. Source rows
reach the change log through them. The operator terminates one run, as the run page's Terminate
button does (the UI's own GraphQL mutation); the sensor starts a new run for that share, which writes
the rows captured since. Each step is asserted on the page and on the server's answers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cdc_platform.dagster.s3_writer_runs import SHARE_TAG
from cdc_platform.s3.iceberg_catalog import lake_catalog
from tests.integration.test_lake_tables import iceberg_pipeline
from tests.pipeline_support import teardown
from tests.support import pg_connect, pg_database
from tests.ui_support import DagsterUI, deployed_home

pytestmark = pytest.mark.integration

WRITER_JOB = "cdc_s3_writer_run"
RUNS = """query($statuses: [RunStatus!]) { runsOrError(filter: {pipelineName: "cdc_s3_writer_run", statuses: $statuses}) {
            ... on Runs { results { runId status tags { key value } } } } }"""


def writer_runs(ui: DagsterUI, *statuses: str) -> dict[str, str]:
    """share -> run id of the writer runs in ``statuses``, as the Runs page's query answers."""
    results = ui.graphql(RUNS, statuses=list(statuses))["runsOrError"]["results"]
    return {next(t["value"] for t in r["tags"] if t["key"] == SHARE_TAG): r["runId"] for r in results}


def test_an_operator_sees_the_writer_runs_and_a_terminated_one_comes_back(
    stack, connect, tmp_path, lake_conn
):
    with pg_database(stack, "src") as src:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 20) g")
        ice = iceberg_pipeline(stack, tmp_path / "specs", src, lake_conn,
                               options={"topic_partitions": 2, "s3_writer_runs": 2})  # fmt: skip
        name, specs = ice.name, ice.specs
        env = deployed_home(stack, tmp_path, specs.directory, name)
        catalog = lake_catalog(specs.connection("lake"), specs.directory)

        def changes_written() -> int:
            rows = catalog.load_table(("replica", "t_changes")).scan().to_arrow()
            return sum(1 for op in rows["_cdc_op"].to_pylist() if op != "r")

        shots = Path(os.environ.get("CDC_UI_SHOTS") or tmp_path / "shots")
        try:
            with DagsterUI(stack.project_root, env, tmp_path / "dg-dev.log", shots) as ui:
                started = ui.wait_for(lambda: len(runs := writer_runs(ui, "STARTED")) == 2 and runs,
                                      "the sensor's two writer runs", 180)  # fmt: skip
                assert set(started) == {"0/2", "1/2"}
                with pg_connect(stack, src) as conn:
                    conn.execute("UPDATE t SET v = 'changed'")
                ui.wait_for(lambda: changes_written() >= 20, "20 changes in the change log", 120)

                text = ui.open("/runs", until=WRITER_JOB)
                assert text.count(WRITER_JOB) >= 2, text[:2000]
                ui.screenshot("1-two-writer-runs")
                page = ui.open(f"/runs/{started['1/2']}", until=("Terminate", name))
                assert "Terminate" in page and f"{name}" in page

                # the operator stops share 1 (what the run page's Terminate button asks the server)
                answer = ui.graphql(
                    "mutation($runId: String!) { terminateRun(runId: $runId) { __typename } }",
                    runId=started["1/2"],
                )["terminateRun"]["__typename"]
                assert answer == "TerminateRunSuccess", answer
                ui.wait_for(lambda: started["1/2"] in writer_runs(ui, "CANCELED").values(),
                            "the terminated run to be canceled", 120)  # fmt: skip
                replaced = ui.wait_for(
                    lambda: (runs := writer_runs(ui, "STARTED")).get("1/2") not in (None, started["1/2"]) and runs,
                    "a new run for share 1/2", 180,
                )  # fmt: skip
                assert replaced["0/2"] == started["0/2"], "the other share's run went on"
                with pg_connect(stack, src) as conn:
                    conn.execute("INSERT INTO t SELECT g, 'new' FROM generate_series(21, 60) g")
                ui.wait_for(lambda: changes_written() >= 60, "the 40 new rows in the change log", 120)
                text = ui.open("/runs", until="Canceled")
                assert text.count(WRITER_JOB) >= 3, text[:2000]
                ui.screenshot("2-terminated-run-replaced")
        finally:
            teardown(stack, connect, specs, name)
