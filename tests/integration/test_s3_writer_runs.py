"""An Iceberg pipeline whose table topic has four partitions, written by two S3 writer runs in two
processes of their own, on the real stack.

Through Dagster's machinery: the S3 writer sensor asks for the runs (one per share), each run is the
writer job executed in its own Python process against a shared instance, as a run launcher would
start it; one is SIGKILLed (Dagster is not told), the sensor takes it for gone once its lease expires,
marks the run failed and asks for a new one, which writes what the dead one left. Every change is in
the change log exactly once, the changes of each key in their order, and the current state equals the
source. A pause ends the runs and a resume starts them again; a teardown ends them for good."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest

from cdc_platform.dagster import s3_writer_runs
from cdc_platform.pipeline.lifecycle import connectors_of, pause, resume
from cdc_platform.pipeline.plan import PipelineNames, table_topic
from cdc_platform.s3.iceberg_catalog import lake_catalog
from tests.integration.test_lake_tables import iceberg_pipeline, plain, wait_captured
from tests.pipeline_support import materialize, teardown
from tests.support import pg_connect, pg_database

pytestmark = pytest.mark.integration

#: one writer run in a process of its own: the job from the code location, on the shared instance
WRITER_RUN = """
import pickle, sys
import dagster as dg
from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.specs.loader import load_specs
from tests.pipeline_support import reloaded_defs
specs_dir, home, bootstrap, job_name, run_config, tags = pickle.loads(open(sys.argv[1], "rb").read())
job = reloaded_defs(load_specs(specs_dir)).get_job_def(job_name)
job.execute_in_process(run_config=run_config, tags=tags, instance=dg.DagsterInstance.from_config(home),
                       resources={"cdc_settings": CdcSettingsResource(specs_dir=str(specs_dir), kafka_bootstrap=bootstrap)})
"""


def test_two_writer_runs_share_the_partitions_and_a_killed_one_is_replaced(
    stack, connect, tmp_path, lake_conn, monkeypatch
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    instance = dg.DagsterInstance.from_config(str(home))
    processes: list[subprocess.Popen] = []
    torn_down = False
    with pg_database(stack, "src") as src:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL, note text)")
            conn.execute("INSERT INTO t SELECT g, 0, 'row ' || g FROM generate_series(1, 300) g")
        ice = iceberg_pipeline(stack, tmp_path, src, lake_conn,
                               options={"topic_partitions": 4, "s3_writer_runs": 2})  # fmt: skip
        name, specs, defs = ice.name, ice.specs, ice.defs
        sensor = defs.get_sensor_def("cdc_s3_writer")
        job_name = "cdc_s3_writer_run"
        catalog = lake_catalog(specs.connection("lake"), specs.directory)
        topic = table_topic(specs.connection("src"), PipelineNames(name), "public.t")

        def tick() -> dg.SensorResult:
            result = sensor(
                dg.build_sensor_context(instance=instance, resources={"cdc_settings": ice.settings})
            )
            assert isinstance(result, dg.SensorResult), result
            return result

        def launch(request: dg.RunRequest) -> subprocess.Popen:
            args = tmp_path / f"run-{len(processes)}.pickle"
            args.write_bytes(pickle.dumps((specs.directory, str(home), stack.kafka_bootstrap, request.job_name,
                                           request.run_config, request.tags)))  # fmt: skip
            process = subprocess.Popen([sys.executable, "-c", WRITER_RUN, str(args)], env={**os.environ},
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
            processes.append(process)
            return process

        def changes() -> list[dict]:
            rows = catalog.load_table(("replica", "t_changes")).scan().to_arrow().to_pylist()
            return [r for r in rows if r["_cdc_op"] != "r"]

        def wait_written(count: int) -> list[dict]:
            deadline = time.monotonic() + 120
            while len(found := changes()) < count:
                assert time.monotonic() < deadline, f"{len(found)} of {count} changes written within 120 s"
                for p in processes:
                    assert p.poll() is None or p.returncode == -signal.SIGKILL, p.stderr.read().decode()[
                        -3000:
                    ]
                time.sleep(1)
            return found

        try:
            materialize(stack, specs, name, assets=ice.pipeline_assets, instance=instance)
            requests = tick().run_requests
            assert sorted(r.tags[s3_writer_runs.SHARE_TAG] for r in requests) == ["0/2", "1/2"]
            assert {r.job_name for r in requests} == {job_name}
            for request in requests:
                launch(request)

            # every row changed three times, in three transactions: the order per key matters
            with pg_connect(stack, src) as conn:
                for round_ in (1, 2, 3):
                    conn.execute(f"UPDATE t SET n = {round_}, note = 'round {round_}'")
                conn.execute("DELETE FROM t WHERE id % 7 = 0")
            written = wait_written(3 * 300 + 42)
            assert {r["_cdc_partition"] for r in written} == {0, 1, 2, 3}, (
                "the key spreads over the partitions"
            )
            by_key: dict[int, list[tuple[int, int]]] = {}
            for r in written:
                by_key.setdefault(r["id"], []).append((r["_cdc_partition"], r["_cdc_seq"]))
            assert all(len({p for p, _ in seen}) == 1 for seen in by_key.values()), "one partition per key"

            # both runs wrote, as materializations of the table's asset in their own runs
            materialized = instance.fetch_materializations(
                dg.AssetKey(["lake", "replica", "t_changes"]), limit=200
            )
            writers = {r.asset_materialization.metadata["writer"].value for r in materialized.records
                       if "writer" in r.asset_materialization.metadata}  # fmt: skip
            assert writers == {"1 of 2", "2 of 2"}
            assert not tick().run_requests, "both runs are alive: nothing to start"

            # share 1's process dies without a word to Dagster; changes keep coming
            processes[1].send_signal(signal.SIGKILL)
            processes[1].wait(timeout=30)
            with pg_connect(stack, src) as conn:
                conn.execute("UPDATE t SET n = 4 WHERE id % 2 = 0")
                conn.execute("INSERT INTO t SELECT g, 5, 'new' FROM generate_series(301, 340) g")
            wait_captured(stack, name, topic, 1)
            # a lease longer than the live run's flush interval (5 s idle), shorter than the test's patience
            monkeypatch.setattr(s3_writer_runs, "LEASE_SECONDS", 25.0)

            def lease_age() -> float:
                return time.time() - (s3_writer_runs.lease_renewed_at(name, 1, 2) or 0)

            while lease_age() < 22:  # ticked only well inside the lease: the dead run counts as alive
                assert not tick().run_requests, "the dead run's lease has not expired yet"
                time.sleep(1)
            while lease_age() <= 25.5:
                time.sleep(0.5)
            dead_run = instance.get_run_records(
                dg.RunsFilter(job_name=job_name, tags={s3_writer_runs.SHARE_TAG: "1/2"})
            )[0]
            replacement = tick().run_requests
            assert [r.tags[s3_writer_runs.SHARE_TAG] for r in replacement] == ["1/2"]
            failed = instance.get_run_by_id(dead_run.dagster_run.run_id)
            assert failed.status == dg.DagsterRunStatus.FAILURE
            launch(replacement[0])
            monkeypatch.setattr(s3_writer_runs, "LEASE_SECONDS", 180.0)
            even = len([i for i in range(1, 301) if i % 7 and i % 2 == 0])
            written = wait_written(3 * 300 + 42 + even + 40)
            positions = [(r["_cdc_partition"], r["_cdc_seq"]) for r in written]
            assert len(positions) == len(set(positions)) == 3 * 300 + 42 + even + 40, (
                "every change exactly once"
            )

            merged = dg.materialize(
                [ice.current_assets], instance=instance, resources={"cdc_settings": ice.settings}
            )
            assert merged.success
            current = catalog.load_table(("replica", "t")).scan().to_arrow().to_pylist()
            with pg_connect(stack, src) as conn:
                source = [dict(zip(("id", "n", "note"), r, strict=True))
                          for r in conn.execute("SELECT id, n, note FROM t ORDER BY id").fetchall()]  # fmt: skip
            assert plain(current, ["id"]) == source

            # paused: the runs end by themselves, successfully, and the sensor starts none until the
            # pipeline is resumed, then one per share again
            connectors = connectors_of(specs, name)
            pause(name, connectors, connect, reason="test")
            for process in (processes[0], processes[2]):
                assert process.wait(timeout=60) == 0, process.stderr.read().decode()[-3000:]
            assert not tick().run_requests
            resume(name, connectors, connect)
            for request in tick().run_requests:
                launch(request)
            assert len(processes) == 5

            # torn down, the pipeline has nothing to write: the live runs end by themselves, successfully,
            # and the sensor starts none
            teardown(stack, connect, specs, name)
            torn_down = True
            for process in processes[3:]:
                assert process.wait(timeout=60) == 0, process.stderr.read().decode()[-3000:]
            ended = instance.get_run_records(dg.RunsFilter(job_name=job_name))
            assert sorted(r.dagster_run.status.value for r in ended) == ["FAILURE"] + ["SUCCESS"] * 4
            assert not tick().run_requests
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
                    p.wait(timeout=30)
            if not torn_down:
                teardown(stack, connect, specs, name)
