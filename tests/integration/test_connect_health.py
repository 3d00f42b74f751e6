"""The Kafka Connect health sensor on the real stack, ticked through Dagster's `build_sensor_context`
with a real instance: failed sink tasks restarted with backoff (recovering, or giving up), the
worker killed and restarted, the target database stopped for a minute. Rows are compared after each."""

from __future__ import annotations

import signal
import time

import dagster as dg
import pytest

from cdc_platform.audit import entries
from cdc_platform.dagster.connect_health import CHECK_NAME
from cdc_platform.health.metrics_store import MetricsStore
from tests.dagster_support import Ticker
from tests.faults import BLOCKER, SlowWriter, wait_task_state
from tests.pipeline_support import (
    component_defs,
    connection,
    materialize,
    pg_to_pg_specs,
    run_request,
    teardown,
    write_specs,
)
from tests.support import (
    mariadb_database,
    mariadb_rows,
    pg_connect,
    pg_database,
    pg_inserter,
    unique,
    wait_for_equal,
)

pytestmark = pytest.mark.integration


def test_a_failed_sink_is_restarted_with_backoff_recovers_and_finally_gives_up(
    stack, connect, tmp_path, monkeypatch
):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'metrics.sqlite'}")
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g")
        name = unique("heal")
        specs = pg_to_pg_specs(stack, tmp_path, src, tgt, name, ["public.t"])
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs, restart_first_delay_seconds=0, restart_max_attempts=3, grace_seconds=0)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        sink = f"{name}-sink"
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            ticker = Ticker(defs, instance, connect)
            first = ticker.tick()
            assert first["sink_connector"].passed and first["source_connector"].passed
            assert first["sink_connector"].check_name == CHECK_NAME

            # the target refuses writes: the sink task fails and the sensor restarts it
            with pg_connect(stack, tgt) as conn:
                conn.execute(BLOCKER)
                conn.execute("INSERT INTO replica.block VALUES ('on')")
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t VALUES (501, 'refused at first')")
            wait_task_state(connect, sink, "FAILED")
            failed = ticker.tick()["sink_connector"]
            assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
            # the table the sink writes turns red in the same tick, saying why
            table = ticker.latest["t"]
            assert table.check_name == "pipeline_running" and not table.passed
            assert (
                table.severity == dg.AssetCheckSeverity.ERROR and f"{sink} task 0 FAILED" in table.description
            )
            assert f"{name} ERROR - sink: FAILED: restart 1 of" in ticker.said
            assert "blocked by the test" in failed.metadata["last_error"].value
            assert ticker.memory(sink).restarts == 1
            # repaired before the attempts run out: the pipeline recovers and nothing is lost
            with pg_connect(stack, tgt) as conn:
                conn.execute("DELETE FROM replica.block")
            with pg_connect(stack, src) as conn:
                conn.execute("UPDATE t SET v = 'after repair' WHERE id <= 20")
            ticker.until(lambda e: "sink_connector" in e and e["sink_connector"].passed and e["t"].passed)
            wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall(),
                           lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall())  # fmt: skip

            # refused again and left refused: after the last attempt the check ends "gave up"
            with pg_connect(stack, tgt) as conn:
                conn.execute("INSERT INTO replica.block VALUES ('on')")
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t VALUES (502, 'refused for good')")
            wait_task_state(connect, sink, "FAILED")
            gave_up = ticker.until(lambda e: "sink_connector" in e and "gave up" in e["sink_connector"].description,
                                   timeout=120, every=2)["sink_connector"]  # fmt: skip
            assert not gave_up.passed and gave_up.metadata["recovery"].value == "gave_up"
            restarts = ticker.memory(sink).restarts
            # on demand (the UI's "Execute" on a check): the pipeline's check op, narrowed to the
            # sink's and the table's checks, gives the same verdict and restarts nothing
            wanted = {
                dg.AssetCheckKey(gave_up.asset_key, CHECK_NAME),
                dg.AssetCheckKey(table.asset_key, "pipeline_running"),
            }
            on_demand = defs.resolve_implicit_global_asset_job_def().get_subset(
                asset_selection=set(), asset_check_selection=wanted
            )
            result = on_demand.execute_in_process(instance=instance, raise_on_error=False)
            evaluations = {e.asset_check_key: e for e in result.get_asset_check_evaluations()}
            assert set(evaluations) == wanted
            assert not any(e.passed for e in evaluations.values())
            assert ticker.memory(sink).restarts == restarts
            assert "blocked by the test" in gave_up.metadata["last_error"].value
            restarts = ticker.memory(sink).restarts
            ticker.tick()
            assert ticker.memory(sink).restarts == restarts, "no restart after giving up"
            assert (connect.status(sink) or {})["tasks"][0]["state"] == "FAILED"
            # failures and restarts are a time series too, beside lag and latency
            store = MetricsStore()
            assert 1.0 in [v for _, v in store.series(name, "sink", "failed_tasks", since=0)]
            assert max(v for _, v in store.series(name, "sink", "restarts", since=0)) == restarts
            assert [v for _, v in store.series(name, "sink", "connector_running", since=0)][-1] == 0.0
            # each restart is in the audit log, done by the sensor
            restarted = [e for e in entries(pipeline=name) if e.action == "connector.restarted"]
            assert len(restarted) == restarts and all(
                e.actor == "sensor cdc_connect_health" for e in restarted
            )

            # a human repairs it; the next restart brings every row across
            with pg_connect(stack, tgt) as conn:
                conn.execute("DELETE FROM replica.block")
            connect.restart(sink)
            wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall(),
                           lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall())  # fmt: skip
        finally:
            teardown(stack, connect, specs, name)


@pytest.mark.serial  # stops a service every test shares
def test_connect_killed_fails_every_check_and_recovers_with_no_row_lost(stack, connect, tmp_path):
    from cdc_platform.settings import load_stack_settings
    from cdc_platform.stack.manager import up
    from cdc_platform.stack.services import Connect

    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        name = unique("kill")
        specs = pg_to_pg_specs(stack, tmp_path, src, tgt, name, ["public.t"])
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs, grace_seconds=0)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))

        writer = SlowWriter(pg_inserter(stack, src), 1)
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            ticker = Ticker(defs, instance, connect)
            writer.start()
            assert ticker.tick()["sink_connector"].passed
            pid = Connect(stack).pid_file.running_pid()
            assert pid is not None
            import os

            os.kill(pid, signal.SIGKILL)
            roles = ("source_connector", "sink_connector", "t")  # both connectors and the table they write
            down = ticker.until(
                lambda e: set(roles) <= set(e) and not any(e[r].passed for r in roles), timeout=30
            )
            assert all("Kafka Connect unreachable" in down[r].description for r in roles)
            time.sleep(3)
            up(load_stack_settings(), echo=lambda *_: None)
            ticker.until(lambda e: {"source_connector", "sink_connector"} <= set(e) and all(x.passed for x in e.values()),
                         timeout=120, every=2)  # fmt: skip
            writer.stop_event.set()
            writer.join()
            assert writer.errors == 0
            wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall(),
                           lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall(),
                           timeout=120)  # fmt: skip
            # the recovery asked for the pipeline's counts and checksums, once; run as the daemon would
            (request,) = ticker.requests
            assert request.job_name == "__ASSET_JOB" and request.tags["cdc/pipeline"] == name
            assert {k.name for k in request.asset_check_keys} == {
                "row_count_parity",
                "checksum_reconciliation",
            }
            result = run_request(defs, instance, request, raise_on_error=True)
            checks = [
                e.event_specific_data
                for e in result.all_events
                if e.event_type_value == "ASSET_CHECK_EVALUATION"
            ]
            assert len(checks) == 2 and all(c.passed for c in checks), [c.description for c in checks]
        finally:
            writer.stop_event.set()
            up(load_stack_settings(), echo=lambda *_: None)
            teardown(stack, connect, specs, name)


@pytest.mark.serial  # stops a service every test shares
def test_target_database_stopped_for_a_minute_loses_no_row(stack, connect, tmp_path):
    from cdc_platform.settings import load_stack_settings
    from cdc_platform.stack.manager import up
    from cdc_platform.stack.processes import stop
    from cdc_platform.stack.services import MariaDB

    with pg_database(stack, "src") as src, mariadb_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        name = unique("outage")
        specs = write_specs(tmp_path, {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "mariadb", tgt)},
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": tgt,
                              "tables": {"names": ["public.t"]}}])  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs, restart_first_delay_seconds=10, grace_seconds=0)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))

        writer = SlowWriter(pg_inserter(stack, src), 1)
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            ticker = Ticker(defs, instance, connect)
            writer.start()
            time.sleep(2)
            assert stop(MariaDB(stack).pid_file)
            outage_end = time.monotonic() + 60
            while time.monotonic() < outage_end:
                ticker.tick()
                time.sleep(5)
            up(load_stack_settings(), echo=lambda *_: None)
            time.sleep(5)
            writer.stop_event.set()
            writer.join()
            ticker.until(lambda e: "sink_connector" in e and e["sink_connector"].passed, timeout=180, every=5)

            wait_for_equal(lambda: [tuple(r) for r in pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall()],
                           lambda: mariadb_rows(stack, tgt, "SELECT id, v FROM t ORDER BY 1"), timeout=180)  # fmt: skip
            print(
                f"target stopped 60 s; {writer.next_id - 1} rows written; sink restarts by the sensor: "
                f"{ticker.memory(f'{name}-sink').restarts}"
            )
        finally:
            writer.stop_event.set()
            up(load_stack_settings(), echo=lambda *_: None)
            teardown(stack, connect, specs, name)


def test_connectors_no_spec_owns_are_observed_on_the_worker_asset(stack, connect, tmp_path):
    from cdc_platform.connectors import DatabaseEndpoint, jdbc_sink_config

    with pg_database(stack, "src") as src:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        specs = write_specs(tmp_path, {"src": connection(stack, "postgresql", src),
                                       "tgt": connection(stack, "postgresql", src)},
                            [{"name": unique("owned"), "source": "src", "target": "tgt", "target_schema": "replica",
                              "tables": {"names": ["public.t"]}}])  # fmt: skip
        defs = component_defs(specs)
        sensor = defs.get_sensor_def("cdc_connect_health")
        stray = unique("stray") + "-sink"
        endpoint = DatabaseEndpoint("postgresql", stack.host, stack.postgres_port, "postgres", "cdc",
                                    stack.secret_reference("postgres"))  # fmt: skip
        connect.put_config(stray, jdbc_sink_config(stray, endpoint, "public", {unique("nothing"): "nothing"}))
        try:
            instance = dg.DagsterInstance.ephemeral()
            result = sensor(dg.build_sensor_context(instance=instance, resources={"kafka_connect": connect}))
            worker = [e for e in result.asset_events if e.asset_key == dg.AssetKey("kafka_connect_worker")]
            assert len(worker) == 1
            metadata = worker[0].metadata
            assert stray in metadata["orphans"].value and metadata["orphan_count"].value >= 1
            assert metadata["reachable"].value == 1.0
            # unchanged: not reported again on the next tick (only on change, or every few minutes).
            # Tests beside this one add and delete connectors on the same worker, so a tick may see
            # a changed worker: then it reports, and what it reports must differ from the last report.
            again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor,
                                                   resources={"kafka_connect": connect}))  # fmt: skip
            for event in [
                e for e in again.asset_events if e.asset_key == dg.AssetKey("kafka_connect_worker")
            ]:
                before = (metadata["orphans"].value, metadata["connectors"].value)
                assert (event.metadata["orphans"].value, event.metadata["connectors"].value) != before
        finally:
            connect.delete(stray)
