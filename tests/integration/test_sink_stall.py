"""Issue 34: a sink that shows RUNNING but applies nothing is reported as stalled, by the metrics job
the schedule launches, by the tables' ``pipeline_running`` check the health sensor writes, and by
``cdc-platform status``; and it is no longer once the sink moves again. The stall is real: the
target table is locked (ACCESS EXCLUSIVE) in an open transaction, so the sink's write waits while
Kafka Connect still reports every task RUNNING, as after a worker's crash (issue 34)."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest
from click.testing import CliRunner

import cdc_platform.health.collect as collect_module
from cdc_platform.cli import cli
from tests.dagster_support import Ticker, observations
from tests.pipeline_support import component_defs, materialize, pg_to_pg_specs, teardown
from tests.support import pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration

#: the collection judges a stall over this much time (the default, 30 s, would only make the test slow)
STALL_AFTER = 5.0


def test_a_sink_blocked_on_its_target_is_reported_stalled_though_running(
    stack, connect, tmp_path, monkeypatch
):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'metrics.sqlite'}")
    monkeypatch.setattr(collect_module, "STALL_AFTER_SECONDS", STALL_AFTER)
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g")
        name = unique("stall")
        specs = pg_to_pg_specs(stack, tmp_path / "specs", src, tgt, name, ["public.t"])
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs, grace_seconds=0)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        job = defs.resolve_job_def("cdc_collect_metrics")
        sink_key = f"{name}/sink_connector"
        status_args = ["status", name, "--specs", str(specs.directory)]
        lock = None
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            ticker = Ticker(defs, instance, connect)
            observations(job.execute_in_process(instance=instance))
            lock = pg_connect(stack, tgt)
            lock.execute("BEGIN")  # held: the transaction stays open until the ROLLBACK below
            lock.execute("LOCK TABLE replica.t IN ACCESS EXCLUSIVE MODE")
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t SELECT g, 'while locked' FROM generate_series(101, 600) g")
            time.sleep(STALL_AFTER + 3)
            stalled = observations(job.execute_in_process(instance=instance))
            assert stalled[sink_key]["sink_stalled"] == 1.0 and stalled[sink_key]["lag_messages"] > 0, stalled
            assert (connect.status(f"{name}-sink") or {})["tasks"][0]["state"] == "RUNNING"

            ticker.tick()
            table, sink = ticker.latest["t"], ticker.latest["sink_connector"]
            assert sink.passed, "the connector itself runs: its own check cannot tell"
            assert table.check_name == "pipeline_running" and not table.passed
            assert table.severity == dg.AssetCheckSeverity.ERROR
            assert "pipeline RUNNING, but its sink applied nothing while" in table.description
            assert table.metadata["sink_stalled"].value is True

            out = CliRunner().invoke(cli, [*status_args, "--json"])
            assert out.exit_code == 4, out.output
            row = json.loads(out.output)[0]
            assert row["sink_stalled"] is True and "stalled" in row["stall"]
            assert "SINK STALLED: its sink applied nothing" in CliRunner().invoke(cli, status_args).output

            lock.execute("ROLLBACK")  # the sink's write goes through: every change arrives
            wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall(),
                           lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall())  # fmt: skip
            time.sleep(STALL_AFTER + 3)  # and its offsets are committed (every second)
            moving = observations(job.execute_in_process(instance=instance))
            assert moving[sink_key]["sink_stalled"] == 0.0, moving[sink_key]
            ticker.tick()
            assert ticker.latest["t"].passed, ticker.latest["t"].description
            out = CliRunner().invoke(cli, [*status_args, "--json"])
            assert out.exit_code == 0 and json.loads(out.output)[0]["sink_stalled"] is False, out.output
        finally:
            if lock is not None:
                lock.close()
            teardown(stack, connect, specs, name)
