"""The metrics collection on the real stack: the job the schedule launches, run through Dagster with
a real instance. Lag, throughput, row estimates and the slot land as observations on the right assets
and in the platform's time series; an unreachable source costs one timeout and is reported."""

from __future__ import annotations

import json
import time

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from cdc_platform.cli import cli
from cdc_platform.health.metrics_store import MetricsStore
from tests.dagster_support import observations
from tests.pipeline_support import (
    component_defs,
    connection,
    materialize,
    reloaded_defs,
    teardown,
    write_specs,
)
from tests.support import mariadb_connect, mariadb_database, pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration


def test_lag_throughput_rows_and_slot_are_observed_per_asset(stack, connect, tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'metrics.sqlite'}")
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            for t in ("a", "b"):
                conn.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
                conn.execute(f"INSERT INTO {t} SELECT g, 'v' FROM generate_series(1, 300) g")
        name = unique("metrics")
        connections = {
            "src": connection(stack, "postgresql", src),
            "tgt": connection(stack, "postgresql", tgt),
        }
        specs = write_specs(tmp_path / "specs", connections,
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
                              "tables": {"names": ["public.a", "public.b"]}}])  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        job = defs.resolve_job_def("cdc_collect_metrics")
        assert defs.get_schedule_def("cdc_collect_metrics_schedule").cron_schedule == "* * * * *"
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            first = observations(job.execute_in_process(instance=instance))
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO a SELECT g, 'new' FROM generate_series(301, 1300) g")
            wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT count(*) FROM a").fetchall(),
                           lambda: pg_connect(stack, tgt).execute("SELECT count(*) FROM replica.a").fetchall())  # fmt: skip
            time.sleep(2)  # the sink commits its offsets every second
            with pg_connect(stack, tgt) as conn:
                conn.execute("ANALYZE replica.a")
            second = observations(job.execute_in_process(instance=instance))
            table_a, table_b = "tgt/replica/a", "tgt/replica/b"
            assert {table_a, table_b, f"{name}/sink_connector", f"{name}/source_connector"} <= set(first)
            assert first[table_a]["lag_messages"] >= 0 and "captured_per_second" not in first[table_a]
            assert second[table_a]["captured_per_second"] > 0 and second[table_a]["applied_per_second"] > 0
            assert second[table_a]["lag_messages"] == 0 and second[table_b]["captured_per_second"] == 0
            assert second[table_a]["dagster/row_count"] == 1300
            slot = second[f"{name}/source_connector"]
            assert (
                slot["slot_active"] == 1.0
                and slot["slot_wal_status_ok"] == 1.0
                and slot["slot_retained_wal_bytes"] >= 0
            )
            # Debezium's own streaming metrics and the sink's task metrics, through Jolokia
            assert slot.get("source_connected") == 1.0 and slot["source_events_seen"] >= 1000, second[
                f"{name}/sink_connector"
            ]
            assert slot["source_queue_remaining"] <= slot["source_queue_capacity"]
            # bytes per second per table, from the connectors' producer and consumer
            assert (
                second[table_a]["captured_bytes_per_second"] > 0
                and second[table_a]["applied_bytes_per_second"] > 0
            )
            sink = second[f"{name}/sink_connector"]
            assert sink["sink_record_failures"] == 0 and "sink_put_batch_avg_ms" in sink
            stored = MetricsStore().series(name, "public.a", "captured_per_second", since=0)
            assert len(stored) == 1 and stored[0][1] > 0

            # the terminal view of the same figures
            out = CliRunner().invoke(cli, ["status", "--specs", str(specs.directory), "--json"])
            assert out.exit_code == 0, out.output
            row = json.loads(out.output)[0]
            assert row["connectors"][f"{name}-sink"] == {"state": "RUNNING", "tasks": ["RUNNING"]}
            assert (
                row["metrics"]["sink.lag_messages"] == 0
                and "source.slot_retained_wal_bytes" in row["metrics"]
            )
            text = CliRunner().invoke(cli, ["status", name, "--specs", str(specs.directory)]).output
            assert f"pipeline {name}: lag 0 messages; latency " in text and "; slot retains" in text
            assert f"{name}-sink: RUNNING" in text

            # the source unreachable: one timeout, reported on the source connector, the rest collected
            down = {**connections, "src": {**connections["src"], "host": "10.255.255.1"}}
            (specs.directory / "connections.yaml").write_text(yaml.safe_dump({"connections": down}))
            # an edited spec takes effect when the code location reloads, for every part at once
            unchanged = observations(job.execute_in_process(instance=instance))
            assert "collection_error" not in unchanged[f"{name}/source_connector"]
            job = reloaded_defs(specs).resolve_job_def("cdc_collect_metrics")
            started = time.monotonic()
            third = observations(job.execute_in_process(instance=instance))
            assert time.monotonic() - started < 30
            assert "collection_error" in third[f"{name}/source_connector"]
            assert third[table_a]["lag_messages"] == 0
        finally:
            (specs.directory / "connections.yaml").write_text(yaml.safe_dump({"connections": connections}))
            teardown(stack, connect, specs, name)


def test_binlog_retention_and_dead_letter_topic_sizes(stack, connect, tmp_path, monkeypatch):
    """A MariaDB source: its binlogs against the connector's position. A sink with a dead-letter
    topic (configured on the target connection): a message the sink cannot read lands there and is
    counted."""
    from confluent_kafka import Producer

    from cdc_platform.health.collect import binlog_figures

    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'metrics.sqlite'}")
    with mariadb_database(stack, "my") as my, pg_database(stack, "tgt") as tgt:
        with mariadb_connect(stack, my) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
            cur.execute("INSERT INTO t VALUES (1, 'a')")
        name, dlq = unique("binlog"), unique("dlq")
        target = {**connection(stack, "postgresql", tgt), "options": {
            "errors.tolerance": "all", "errors.deadletterqueue.topic.name": dlq,
            "errors.deadletterqueue.topic.replication.factor": "1"}}  # fmt: skip
        specs = write_specs(tmp_path / "specs", {"src": connection(stack, "mariadb", my), "tgt": target},
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
                              "tables": {"names": [f"{my}.t"]}}])  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        job = defs.resolve_job_def("cdc_collect_metrics")
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            first = observations(job.execute_in_process(instance=instance))
            source = first[f"{name}/source_connector"]
            assert source["binlog_position_available"] == 1.0 and source["binlog_files"] >= 1
            assert 0 <= source["binlog_behind_bytes"] < source["binlog_total_bytes"]
            assert first[f"{name}/sink_connector"]["dlq_messages"] == 0  # configured, nothing sent yet

            # a message no converter can read, on a topic the sink consumes
            producer = Producer({"bootstrap.servers": stack.kafka_bootstrap})
            producer.produce(f"{name}.{my}.t", key=b"not json", value=b"{not json either")
            producer.flush(10)
            deadline, seen = time.monotonic() + 60, None
            while time.monotonic() < deadline:
                seen = observations(job.execute_in_process(instance=instance))[f"{name}/sink_connector"]
                if seen.get("dlq_messages") == 1:
                    break
                time.sleep(2)
            assert seen and seen["dlq_messages"] == 1, seen
            # a position in a purged file is what the alert needs to see
            gone = binlog_figures(specs, name, {"file": "mysql-bin.000000", "pos": 4})
            assert gone["binlog_position_available"] == 0.0 and "binlog_behind_bytes" not in gone
        finally:
            teardown(stack, connect, specs, name)
