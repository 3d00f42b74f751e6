"""The user-facing commands around pipelines: validate, plan, discover, and the dagster CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.pipeline_support import connection, teardown, write_specs
from tests.support import pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "cdc_platform.cli"]


def _run(args, specs_dir, **env):
    return subprocess.run([*CLI, *args], capture_output=True, text=True,
                          env={**os.environ, "CDC_SPECS_DIR": str(specs_dir), **env})  # fmt: skip


def test_missing_secret_variable_and_missing_table_fail_validate_and_deploy_nothing(stack, connect, tmp_path):
    with pg_database(stack, "src") as src:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE real_one (id int PRIMARY KEY)")
        name = unique("bad")
        good = connection(stack, "postgresql", src)
        env_conn = {**good, "password": {"env": "CDC_TEST_UNSET_PASSWORD"}}
        write_specs(tmp_path, {"src": env_conn, "tgt": good},
                    [{"name": name, "source": "src", "target": "tgt", "tables": {"names": ["public.real_one"]},
                      "target_schema": "replica"}])  # fmt: skip
        os.environ.pop("CDC_TEST_UNSET_PASSWORD", None)
        result = _run(["validate"], tmp_path)
        assert result.returncode == 1
        assert f"pipeline '{name}'" in result.stderr and "connections.src.password" in result.stderr
        assert "CDC_TEST_UNSET_PASSWORD is not set" in result.stderr and "connections.yaml" in result.stderr

        write_specs(tmp_path, {"src": good, "tgt": good},
                    [{"name": name, "source": "src", "target": "tgt", "tables": {"names": ["public.not_there"]},
                      "target_schema": "replica"}])  # fmt: skip
        result = _run(["validate"], tmp_path)
        assert result.returncode == 1
        assert "public.not_there does not exist" in result.stderr and f"pipeline '{name}'" in result.stderr
        assert "pipelines.yaml" in result.stderr and "Traceback" not in result.stderr
        assert not [c for c in connect.list_connectors() if c.startswith(name)]


def test_plan_masks_secrets_and_discover_lists_columns(stack, tmp_path):
    with pg_database(stack, "src") as src:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v numeric(10,2))")
            conn.execute("CREATE TABLE nokey (v int)")
        good = connection(stack, "postgresql", src)
        write_specs(tmp_path, {"src": good, "tgt": good},
                    [{"name": "plan_me", "source": "src", "target": "tgt", "tables": {"names": ["public.t"]},
                      "target_schema": "replica"},
                     {"name": "keyless", "source": "src", "target": "tgt", "tables": {"names": ["public.nokey"]},
                      "target_schema": "replica"}])  # fmt: skip
        plan = _run(["plan", "plan_me"], tmp_path)
        assert plan.returncode == 0, plan.stderr
        assert (
            'CREATE TABLE IF NOT EXISTS "replica"."t"' in plan.stdout and '"v" numeric(10,2)' in plan.stdout
        )
        assert stack.password("postgres") not in plan.stdout and "${file:" in plan.stdout
        discover = _run(["discover", "src", "--schema", "public"], tmp_path)
        assert "table t  primary key: id" in discover.stdout and "numeric(10,2)" in discover.stdout
        keyless = _run(["plan", "keyless"], tmp_path)
        assert (
            keyless.returncode == 1
            and "has no primary key" in keyless.stderr
            and "primary_key" in keyless.stderr
        )


def test_dagster_definitions_validate_on_the_demo_specs():
    result = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-m", "cdc_platform.definitions"],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dagster_asset_materialize_on_the_cli_replicates_a_pipeline(stack, connect, tmp_path):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g")
        name = unique("cli")
        specs = write_specs(tmp_path / "specs",
                            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
                            [{"name": name, "source": "src", "target": "tgt", "tables": {"names": ["public.t"]},
                              "target_schema": "replica"}])  # fmt: skip
        home = tmp_path / "home"
        home.mkdir()
        env = {**os.environ, "CDC_SPECS_DIR": str(specs.directory), "DAGSTER_HOME": str(home)}
        result = subprocess.run([sys.executable, "-m", "dagster", "asset", "materialize", "-m", "cdc_platform.definitions",
                                 "--select", f"group:{name}"], capture_output=True, text=True, env=env)  # fmt: skip
        try:
            assert result.returncode == 0, result.stderr[-3000:]
            with pg_connect(stack, src) as conn:
                conn.execute("UPDATE t SET v = 'changed' WHERE id <= 10")
                conn.execute("DELETE FROM t WHERE id > 990")
            wait_for_equal(lambda: pg_connect(stack, src).execute("SELECT * FROM t ORDER BY 1").fetchall(),
                           lambda: pg_connect(stack, tgt).execute("SELECT * FROM replica.t ORDER BY 1").fetchall())  # fmt: skip
        finally:
            teardown(stack, connect, specs, name)


def test_orphans_reports_connectors_that_no_spec_owns(stack, connect, tmp_path):
    from cdc_platform.connectors import DatabaseEndpoint, jdbc_sink_config

    write_specs(tmp_path, {}, [])
    name = unique("stray") + "-sink"
    endpoint = DatabaseEndpoint("postgresql", stack.host, stack.postgres_port, "postgres", "cdc",
                                stack.secret_reference("postgres"))  # fmt: skip
    connect.put_config(name, jdbc_sink_config(name, endpoint, "public", {unique("nothing"): "nothing"}))
    try:
        result = _run(["orphans"], tmp_path)
        assert result.returncode == 3, result.stdout + result.stderr
        assert f"orphan connector {name}" in result.stdout
    finally:
        connect.delete(name)


def test_plan_warns_about_columns_a_value_rule_would_change(stack, tmp_path):
    from tests.support import mariadb_database

    with pg_database(stack, "src") as src, mariadb_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE m (id int PRIMARY KEY, reading double precision NOT NULL, label text)")
        write_specs(tmp_path, {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "mariadb", tgt)},
                    [{"name": "warn_me", "source": "src", "target": "tgt", "tables": {"names": ["public.m"]},
                      "target_schema": tgt}])  # fmt: skip
        plan = _run(["plan", "warn_me"], tmp_path)
        assert plan.returncode == 0, plan.stderr
        assert (
            "-- warning: public.m.reading (double precision): NaN, Infinity, -Infinity -> NULL" in plan.stdout
        )
        assert "-0 (negative zero) -> 0" in plan.stdout and "public.m.label" not in plan.stdout
        # a NOT NULL column whose values a rule can turn into NULL is created NULL-able
        assert "`reading` DOUBLE,\n" in plan.stdout
