"""A busy pipeline on the stack's second Connect cluster (``CDC_CONNECT_BULK=1``), placed there by a
code location of its own, as a user isolates one: its connectors run on that cluster only (at the
CPU priority asked for), while a quiet pipeline of the main location stays on the main cluster; both
replicate, and the bulk location's health sensor and metrics job read their own cluster and agent."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from cdc_platform.dagster.component import CdcPipelineComponent
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.stack.processes import stop
from cdc_platform.stack.services import BulkConnect, Connect
from tests.dagster_support import Ticker, observations
from tests.pipeline_support import connection, teardown, write_specs
from tests.support import pg_connect, pg_database, unique, wait_for_equal

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # a second worker or cluster


@pytest.fixture
def bulk_cluster(stack):
    """``CDC_CONNECT_BULK=1 cdc-platform stack up`` as a user runs it; stopped afterwards, so the
    stack is as the other tests expect it."""
    env = {**os.environ, "CDC_CONNECT_BULK": "1", "CDC_CONNECT_BULK_NICE": "7"}
    started = subprocess.run([sys.executable, "-m", "cdc_platform.cli", "stack", "up"], env=env,
                             capture_output=True, text=True, timeout=400)  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    assert "connect-bulk" in started.stdout, started.stdout
    status = subprocess.run([sys.executable, "-m", "cdc_platform.cli", "stack", "status"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert any(line.startswith("connect-bulk") and " running " in line for line in status.stdout.splitlines())
    bulk = dataclasses.replace(stack, connect_bulk=True, connect_bulk_nice=7)
    try:
        yield bulk
    finally:
        stop(BulkConnect(bulk).pid_file)


def _niceness(pid: int) -> int:
    # /proc/<pid>/stat: the fields after the command's closing parenthesis start at field 3; nice is 19
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _location(specs, name: str, **attributes) -> dg.Definitions:
    """A code location of one component instance, after its own catalog refresh."""
    component = CdcPipelineComponent.from_attributes_dict(
        attributes={"specs_dir": str(specs.directory), **attributes}
    )
    state = specs.directory / f"state-{name}"
    component.write_state_to_path(state)
    return component.build_defs_from_state(None, state)  # type: ignore[arg-type]


def _materialize(defs: dg.Definitions, pipeline: str, instance: dg.DagsterInstance) -> None:
    """The pipeline's asset with the location's own resources, as its UI would run it."""
    assets = next(
        a
        for a in defs.assets
        if isinstance(a, dg.AssetsDefinition) and a.node_def.name == f"{pipeline}_pipeline"
    )
    assert dg.materialize([assets], resources=dict(defs.resources), instance=instance).success


def test_a_busy_pipeline_on_the_bulk_cluster_replicates_apart_from_the_others(
    stack, bulk_cluster, connect, tmp_path, monkeypatch
):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'metrics.sqlite'}")
    pid = BulkConnect(bulk_cluster).pid_file.running_pid()
    assert pid is not None and _niceness(pid) == bulk_cluster.connect_bulk_nice == 7
    main_pid = Connect(stack).pid_file.running_pid()
    assert main_pid is not None and _niceness(main_pid) == 0  # the main cluster keeps its priority

    bulk = KafkaConnectResource(url=bulk_cluster.connect_bulk_url, timeout_seconds=60)
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            for table in ("quiet", "busy"):
                conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
                conn.execute(f"INSERT INTO {table} SELECT g, 'before ' || g FROM generate_series(1, 500) g")
        quiet, busy = unique("quiet"), unique("busy")
        specs = write_specs(
            tmp_path / "specs",
            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
            [{"name": quiet, "source": "src", "target": "tgt", "target_schema": "quiet",
              "tables": {"names": ["public.quiet"]}},
             {"name": busy, "source": "src", "target": "tgt", "target_schema": "busy",
              "tables": {"names": ["public.busy"]}}],
        )  # fmt: skip
        # the main location: every pipeline but the busy one, on the main cluster
        main_location = _location(specs, "main", exclude_pipelines=[busy])
        bulk_location = _location(specs, "bulk", pipelines=[busy], connect_url=bulk_cluster.connect_bulk_url,
                                  jolokia_url=bulk_cluster.jolokia_bulk_url)  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        try:
            defined_in_main = {
                a.node_def.name for a in main_location.assets if isinstance(a, dg.AssetsDefinition)
            }
            assert f"{quiet}_pipeline" in defined_in_main and f"{busy}_pipeline" not in defined_in_main
            _materialize(main_location, quiet, instance)
            _materialize(bulk_location, busy, instance)
            on_main, on_bulk = set(connect.list_connectors()), set(bulk.list_connectors())
            assert {f"{busy}-source", f"{busy}-sink"} <= on_bulk and not {
                f"{quiet}-source",
                f"{quiet}-sink",
            } & on_bulk
            assert {f"{quiet}-source", f"{quiet}-sink"} <= on_main and not {
                f"{busy}-source",
                f"{busy}-sink",
            } & on_main

            with pg_connect(stack, src) as conn:
                for table in ("quiet", "busy"):
                    conn.execute(
                        f"INSERT INTO {table} SELECT g, 'after ' || g FROM generate_series(501, 2500) g"
                    )
                    conn.execute(f"UPDATE {table} SET v = v || ' updated' WHERE id % 7 = 0")
                    conn.execute(f"DELETE FROM {table} WHERE id % 11 = 0")
            for table in ("quiet", "busy"):
                rows = wait_for_equal(
                    lambda t=table: pg_connect(stack, src).execute(f"SELECT * FROM {t} ORDER BY 1").fetchall(),
                    lambda t=table: pg_connect(stack, tgt).execute(f"SELECT * FROM {t}.{t} ORDER BY 1").fetchall(),
                    timeout=120,
                )  # fmt: skip
                assert len(rows) == 2500 - 2500 // 11 and any(v.endswith(" updated") for _, v in rows)

            # the bulk location's sensor watches its cluster, where its connectors run
            ticker = Ticker(bulk_location, instance, bulk, sensor=f"cdc_connect_health_{busy}")
            ticker.until(lambda e: {"source_connector", "sink_connector"} <= set(e)
                         and all(x.passed for x in e.values()), timeout=60)  # fmt: skip
            # and its metrics job reads the bulk cluster's agent: Debezium's MBeans live there
            time.sleep(2)  # the sink commits its offsets every second
            metrics = observations(
                bulk_location.resolve_job_def(f"cdc_collect_metrics_{busy}").execute_in_process(
                    instance=instance
                )
            )
            source_figures, sink_figures = (
                metrics[f"{busy}/source_connector"],
                metrics[f"{busy}/sink_connector"],
            )
            assert source_figures.get("source_connected") == 1.0, source_figures
            assert "jmx_error" not in sink_figures and sink_figures["lag_messages"] == 0, sink_figures
        finally:
            teardown(stack, connect, specs, quiet)
            teardown(stack, bulk, specs, busy)
