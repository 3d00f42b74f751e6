"""The audit log on the real stack: a materialization, a re-deploy after a hand edit, and a teardown
from the CLI each leave who/what/when, with config diffs whose secrets stay references."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from cdc_platform.audit import entries
from tests.pipeline_support import component_defs, materialize, pg_to_pg_specs
from tests.support import pg_connect, pg_database, unique

pytestmark = pytest.mark.integration


def test_changes_are_recorded_with_actor_and_masked_diff(stack, connect, tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'platform.sqlite'}")
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        name = unique("audited")
        specs = pg_to_pg_specs(stack, tmp_path / "specs", src, tgt, name, ["public.t"])
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        instance = dg.DagsterInstance.ephemeral()
        sink = f"{name}-sink"
        try:
            result = materialize(stack, specs, name, assets=assets, instance=instance)
            run_id = result.run_id
            actions = {e.action for e in entries(pipeline=name)}
            assert {
                "ddl.applied",
                "heartbeat.ensured",
                "publication.created",
                "slot.created",
                "connector.created",
            } <= actions
            created = [e for e in entries(pipeline=name) if e.action == "connector.created"]
            assert {e.target for e in created} == {f"{name}-source", sink}
            assert all(e.actor == f"dagster run {run_id}" for e in entries(pipeline=name))
            password_keys = [
                json.loads(e.diff)["connection.password"]["new"] for e in created if e.target == sink
            ]
            assert password_keys[0].startswith("${file:")  # a reference, never the password

            # a hand edit, put right by the next materialization: the diff shows the key, old and new
            edited = {**connect.get_config(sink), "batch.size": "17"}
            connect.put_config(sink, edited)
            materialize(stack, specs, name, assets=assets, instance=instance)
            updates = [e for e in entries(pipeline=name) if e.action == "connector.updated"]
            assert json.loads(updates[0].diff)["batch.size"] == {"old": "17", "new": "10000"}
            assert updates[-1].actor.endswith("(cli)")  # the hand edit went through this process, not a run
            # the connector asset links its latest entries
            latest = instance.get_latest_materialization_event(dg.AssetKey([name, "sink_connector"]))
            audit_md = latest.asset_materialization.metadata["audit"].value
            assert "connector.updated" in audit_md
        finally:
            env = {"CDC_METRICS_URL": f"sqlite:///{tmp_path / 'platform.sqlite'}"}
            done = subprocess.run([sys.executable, "-m", "cdc_platform.cli", "teardown", name, "--specs",
                                   str(specs.directory), "--delete-topics"], capture_output=True, text=True,
                                  env={**os.environ, **env})  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
        dropped = {e.action for e in entries(pipeline=name) if e.actor.endswith("(cli)")}
        assert {"connector.deleted", "slot.dropped", "publication.dropped", "heartbeat.dropped"} <= dropped
        shown = subprocess.run([sys.executable, "-m", "cdc_platform.cli", "audit", "--pipeline", name],
                               capture_output=True, text=True, env={**os.environ, **env})  # fmt: skip
        assert (
            shown.returncode == 0
            and "slot.dropped" in shown.stdout
            and "batch.size: '17' -> '10000'" in shown.stdout
        )
        assert stack.password("postgres") not in shown.stdout
        every_row = json.dumps([e.__dict__ for e in entries(limit=100_000)])
        assert stack.password("postgres") not in every_row and stack.password("mariadb") not in every_row
