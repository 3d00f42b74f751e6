"""The heartbeat table on the real stack: the latency the metrics report is the latency a writer sees,
an idle source's slot stops retaining WAL, discovery never offers the table, teardown removes it."""

from __future__ import annotations

import statistics
import time

import dagster as dg
import pytest

from cdc_platform.health.collect import collect, heartbeat_figures, pipeline_watch
from tests.dagster_support import observations
from tests.pipeline_support import (
    build_assets,
    component_defs,
    connection,
    materialize,
    teardown,
    write_specs,
)
from tests.support import mariadb_connect, mariadb_database, mariadb_rows, pg_connect, pg_database, unique

pytestmark = pytest.mark.integration

INTERVAL_MS = 1000


def wait_heartbeat(specs, name, beat, timeout: float = 60.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        figures = heartbeat_figures(specs, name, beat)
        if figures:
            return figures
        time.sleep(0.5)
    raise AssertionError(f"no heartbeat of {name} reached the target within {timeout:.0f} s")


def measured_latency(stack, src: str, tgt: str, key: int) -> float:
    """Seconds from a committed source insert to the row being visible on the target (20 ms polls)."""
    with pg_connect(stack, src) as conn:
        conn.execute("INSERT INTO t VALUES (%s, 'probe')", (key,))
        committed = time.monotonic()
    with pg_connect(stack, tgt) as conn:
        while conn.execute("SELECT 1 FROM replica.t WHERE id = %s", (key,)).fetchone() is None:
            if time.monotonic() - committed > 30:
                raise AssertionError(f"row {key} did not arrive within 30 s")
            time.sleep(0.02)
        return time.monotonic() - committed


def test_reported_latency_matches_a_measured_change_and_teardown_removes_the_table(
    stack, connect, tmp_path, monkeypatch
):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'metrics.sqlite'}")
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g")
        name = unique("beat")
        connections = {
            "src": connection(stack, "postgresql", src),
            "tgt": connection(stack, "postgresql", tgt),
        }
        specs = write_specs(tmp_path / "specs", connections,
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
                              "tables": {"schema": "public", "include": ["*"]},
                              "options": {"heartbeat_interval_ms": INTERVAL_MS}}])  # fmt: skip
        instance = dg.DagsterInstance.ephemeral()
        defs = component_defs(specs)
        assets = next(a for a in defs.assets if isinstance(a, dg.AssetsDefinition))
        try:
            materialize(stack, specs, name, assets=assets, instance=instance)
            watch = pipeline_watch(specs, name, None)
            assert watch is not None and watch.heartbeat is not None
            beat = watch.heartbeat
            assert beat.source_qualified == f"public.cdc_heartbeat_{name}"
            # discovery with a schema pattern must not offer the heartbeat table as a pipeline table
            rebuilt = build_assets(specs, name)
            assert not [k for k in rebuilt.keys if "cdc_heartbeat" in k.to_user_string()]
            wait_heartbeat(specs, name, beat)

            measured = [measured_latency(stack, src, tgt, 1000 + i) for i in range(5)]
            reported = []
            for _ in range(5):
                time.sleep(INTERVAL_MS / 1000)
                reported.append(heartbeat_figures(specs, name, beat)["latency_seconds"])
            print(f"measured {measured}, reported {reported}")
            # the bar: the figure lies within one heartbeat interval of what a writer measures
            assert abs(statistics.median(reported) - statistics.median(measured)) <= INTERVAL_MS / 1000
            age = heartbeat_figures(specs, name, beat)["heartbeat_age_seconds"]
            assert 0 <= age <= 3 * INTERVAL_MS / 1000 + 2

            # the metrics job puts the figures on every table asset and the sink connector
            job = defs.resolve_job_def("cdc_collect_metrics")
            seen = observations(job.execute_in_process(instance=instance))
            assert seen["tgt/replica/t"]["latency_seconds"] >= 0
            assert "heartbeat_age_seconds" in seen[f"{name}/sink_connector"]
        finally:
            teardown(stack, connect, specs, name)
        with pg_connect(stack, src) as conn:
            assert (
                conn.execute("SELECT to_regclass(%s)", (f"public.cdc_heartbeat_{name}",)).fetchone()[0]
                is None
            )


def test_an_idle_source_slot_keeps_up_while_other_databases_write(stack, connect, tmp_path):
    """Without a change in its own database a slot cannot confirm anything, and retains all the WAL
    the cluster writes; the heartbeat row is that change."""
    with (
        pg_database(stack, "src") as src,
        pg_database(stack, "tgt") as tgt,
        pg_database(stack, "busy") as busy,
    ):
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        name = unique("idle")
        connections = {
            "src": connection(stack, "postgresql", src),
            "tgt": connection(stack, "postgresql", tgt),
        }
        specs = write_specs(tmp_path / "specs", connections,
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
                              "tables": {"names": ["public.t"]},
                              "options": {"heartbeat_interval_ms": INTERVAL_MS}}])  # fmt: skip
        try:
            materialize(stack, specs, name)
            with pg_connect(stack, busy) as conn:
                conn.execute("CREATE TABLE filler (v text)")
                conn.execute("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 64000)")
            written = 64000 * 1000
            deadline, lag = time.monotonic() + 60, None
            watch = pipeline_watch(specs, name, None)
            while time.monotonic() < deadline:
                figures = collect(specs, [watch], stack.kafka_bootstrap, {})[name]
                lag = next(s.value for s in figures.samples if s.metric == "slot_flush_lag_bytes")
                if lag < written / 4:
                    break
                time.sleep(1)
            assert lag is not None and lag < written / 4, f"the idle slot still holds {lag:,.0f} bytes"
        finally:
            teardown(stack, connect, specs, name)


@pytest.mark.parametrize("direction", ["mariadb_to_pg", "pg_to_mariadb"])
def test_heartbeat_crosses_engines(stack, connect, tmp_path, direction):
    with pg_database(stack, "pg") as pg, mariadb_database(stack, "my") as my:
        if direction == "mariadb_to_pg":
            with mariadb_connect(stack, my) as conn, conn.cursor() as cur:
                cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)")
                cur.execute("INSERT INTO t VALUES (1, 'a')")
            source, target = connection(stack, "mariadb", my), connection(stack, "postgresql", pg)
            tables, target_schema = [f"{my}.t"], "replica"
        else:
            with pg_connect(stack, pg) as conn:
                conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
                conn.execute("INSERT INTO t VALUES (1, 'a')")
            source, target = connection(stack, "postgresql", pg), connection(stack, "mariadb", my)
            tables, target_schema = ["public.t"], my
        name = unique("beatx")
        specs = write_specs(tmp_path / "specs", {"src": source, "tgt": target},
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": target_schema,
                              "tables": {"names": tables}, "options": {"heartbeat_interval_ms": INTERVAL_MS}}])  # fmt: skip
        try:
            materialize(stack, specs, name)
            beat = pipeline_watch(specs, name, None).heartbeat
            figures = wait_heartbeat(specs, name, beat)
            time.sleep(3 * INTERVAL_MS / 1000)
            figures = heartbeat_figures(specs, name, beat)
            print(direction, figures)
            assert 0 <= figures["latency_seconds"] < 5 and figures["heartbeat_age_seconds"] < 10
        finally:
            teardown(stack, connect, specs, name)
        if direction == "mariadb_to_pg":
            assert mariadb_rows(stack, my, f"SHOW TABLES LIKE 'cdc_heartbeat_{name}'") == []
