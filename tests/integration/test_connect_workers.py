"""Two Connect workers in one group on the real stack: the worker running a pipeline's source task is
killed (SIGKILL, no goodbye to the group) while rows are inserted, updated and deleted. The group
hands its connectors and tasks to the surviving worker, the platform's REST client and metrics move on
to it, and the target ends equal to the source: zero rows lost."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

import dagster as dg
import pytest

from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.settings import StackSettings
from cdc_platform.stack.manager import up
from cdc_platform.stack.processes import stop
from cdc_platform.stack.services import Connect
from tests.dagster_support import Ticker, observations
from tests.pipeline_support import (
    component_defs,
    materialize,
    pg_to_pg_specs,
    teardown,
)
from tests.support import pg_connect, pg_database, unique, wait_for_equal

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # a second worker or cluster


class MixedWriter(threading.Thread):
    """Inserts row i, updates an earlier row every 5th step and deletes one every 7th, 20 steps a second."""

    def __init__(self, stack: StackSettings, database: str):
        super().__init__(daemon=True)
        self.stack, self.database = stack, database
        self.stop_event, self.steps, self.errors = threading.Event(), 0, 0

    def run(self) -> None:
        i = 1
        while not self.stop_event.is_set():
            try:
                with pg_connect(self.stack, self.database) as conn:
                    conn.execute("INSERT INTO t VALUES (%s, %s)", (i, f"row {i}"))
                    if i % 5 == 0:
                        conn.execute("UPDATE t SET v = v || ' updated' WHERE id = %s", (i - 3,))
                    if i % 7 == 0:
                        conn.execute("DELETE FROM t WHERE id = %s", (i - 5,))
                i += 1
                self.steps = i - 1
            except Exception:  # noqa: BLE001 - the source stays up; counted, the test asserts none
                self.errors += 1
            time.sleep(0.05)


@pytest.fixture
def two_workers(stack: StackSettings):
    """``CDC_CONNECT_WORKERS=2 cdc-platform stack up`` as a user runs it; afterwards the stack is as
    the other tests expect it: worker 1 running, worker 2 stopped."""
    env = {**os.environ, "CDC_CONNECT_WORKERS": "2"}
    started = subprocess.run([sys.executable, "-m", "cdc_platform.cli", "stack", "up"], env=env,
                             capture_output=True, text=True, timeout=400)  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    assert "connect-2" in started.stdout, started.stdout
    two = dataclasses.replace(stack, connect_workers=2)
    status = subprocess.run([sys.executable, "-m", "cdc_platform.cli", "stack", "status"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert any(line.startswith("connect-2") and " running " in line for line in status.stdout.splitlines())
    try:
        yield two
    finally:
        up(stack, echo=lambda *_: None)  # worker 1 again, if it was the one killed
        stop(Connect(two, worker=2).pid_file)


def worker_of(status: dict) -> str:
    (task,) = status["tasks"]
    return task["worker_id"]


def test_a_killed_worker_hands_its_tasks_over_and_no_row_is_lost(stack, two_workers, connect, tmp_path,
                                                                  monkeypatch):  # fmt: skip
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'metrics.sqlite'}")
    workers = {
        f"{stack.host}:{Connect(two_workers, worker=k).port}": Connect(two_workers, worker=k) for k in (1, 2)
    }
    cluster = KafkaConnectResource(url=two_workers.connect_cluster_url, timeout_seconds=60)
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        name = unique("workers")
        specs = pg_to_pg_specs(stack, tmp_path, src, tgt, name, ["public.t"])
        writer = MixedWriter(stack, src)
        # the code location as `CDC_CONNECT_WORKERS=2` configures it: both workers' URLs and agents
        monkeypatch.setenv("CDC_CONNECT_WORKERS", "2")
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            source, sink = f"{name}-source", f"{name}-sink"
            writer.start()
            time.sleep(3)
            doomed = worker_of(cluster.wait_running(source))
            assert doomed in workers, (doomed, list(workers))
            survivor = next(w for w in workers if w != doomed)
            pid = workers[doomed].pid_file.running_pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)

            # the dead worker first: each request must move on to the next
            dead, alive = workers[doomed], workers[survivor]
            client = KafkaConnectResource(url=f"{dead.url},{alive.url}", timeout_seconds=60)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                placed = {c: client.status(c) or {} for c in (source, sink)}
                if all(
                    s.get("connector", {}).get("worker_id") == survivor
                    and [t["state"] for t in s.get("tasks", [])] == ["RUNNING"]
                    and worker_of(s) == survivor
                    for s in placed.values()
                ):
                    break
                time.sleep(1)
            else:
                raise AssertionError(f"the tasks never moved to {survivor}: {placed}")

            # the health sensor, through Dagster, sees both connectors healthy on the survivor
            ticker = Ticker(defs, instance, client)
            ticker.until(lambda e: {"source_connector", "sink_connector"} <= set(e)
                         and all(x.passed for x in e.values()), timeout=60)  # fmt: skip

            time.sleep(5)
            writer.stop_event.set()
            writer.join()
            assert writer.errors == 0 and writer.steps > 100
            rows = wait_for_equal(
                lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall(),
                lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall(),
                timeout=120,
            )
            assert len(rows) > 80 and any(v.endswith(" updated") for _, v in rows)

            time.sleep(2)  # the sink commits its offsets every second
            # the metrics job reads the surviving worker's agent and says which one did not answer
            metrics = observations(
                defs.resolve_job_def("cdc_collect_metrics").execute_in_process(instance=instance)
            )
            source_figures = metrics[f"{name}/source_connector"]
            assert source_figures.get("source_connected") == 1.0, source_figures
            sink_figures = metrics[f"{name}/sink_connector"]
            assert dead.jolokia_url in sink_figures["jmx_error"] and sink_figures["lag_messages"] == 0
        finally:
            writer.stop_event.set()
            teardown(stack, cluster, specs, name)
