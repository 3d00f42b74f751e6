"""The pipeline component through Dagster's own tools: `dg scaffold defs`, `dg utils refresh-defs-state`,
`dg list defs`, and the stored table catalog that lets a code location load with its source down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipeline_support import connection, teardown, write_specs
from tests.support import pg_connect, pg_database, unique, wait_for_equal

pytestmark = pytest.mark.integration

LIST_KEYS = (
    "import json, time; t = time.monotonic(); from cdc_platform.definitions import defs; "
    "keys = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()); "
    "print(json.dumps({'seconds': time.monotonic() - t, 'keys': keys}))"
)


def _load(env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", LIST_KEYS], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _cli(args: list[str], env: dict, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_glob_tables_come_from_the_stored_catalog_and_load_with_the_source_down(stack, connect, tmp_path):
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            for t in ("alpha", "beta"):
                conn.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, v text)")
                conn.execute(f"INSERT INTO {t} SELECT g, 'v' || g FROM generate_series(1, 100) g")
        name = unique("state")
        connections = {
            "src": connection(stack, "postgresql", src),
            "tgt": connection(stack, "postgresql", tgt),
        }
        specs = write_specs(tmp_path / "specs", connections,
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
                              "tables": {"schema": "public", "include": ["*"]}}])  # fmt: skip
        home = tmp_path / "home"
        home.mkdir()
        env = {**os.environ, "CDC_SPECS_DIR": str(specs.directory), "DAGSTER_HOME": str(home)}
        tables = {f"tgt/replica/{t}" for t in ("alpha", "beta")}

        before = _load(env)  # never discovered: a glob has no tables yet, and loading says so
        assert not tables & set(before["keys"])
        refreshed = _cli([sys.executable, "-m", "cdc_platform.cli", "refresh"], env)
        assert refreshed.returncode == 0 and f"pipeline {name}: 2 tables" in refreshed.stdout, (
            refreshed.stderr
        )
        up = _load(env)
        assert tables <= set(up["keys"])

        # the source unreachable (a blackhole address would hang any connection attempt)
        down_conn = {**connections, "src": {**connections["src"], "host": "10.255.255.1"}}
        (specs.directory / "connections.yaml").write_text(yaml.safe_dump({"connections": down_conn}))
        down = _load(env)
        assert tables <= set(down["keys"])
        print(
            f"code location load: source up {up['seconds']:.2f} s, source unreachable {down['seconds']:.2f} s"
        )
        assert down["seconds"] < up["seconds"] + 5
        (specs.directory / "connections.yaml").write_text(yaml.safe_dump({"connections": connections}))

        try:
            # a table created after the refresh: the run refuses to capture it without its copy
            with pg_connect(stack, src) as conn:
                conn.execute("CREATE TABLE gamma (id int PRIMARY KEY, v text)")
                conn.execute("INSERT INTO gamma VALUES (1, 'g')")
            materialize = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "cdc_platform.definitions",
                           "--select", f"group:{name}"]  # fmt: skip
            stale = _cli(materialize, env)
            assert stale.returncode != 0
            assert "tables ['public.gamma'] are selected on the source now but have no asset" in stale.stderr
            assert "cdc-platform refresh" in stale.stderr
            assert connect.get_config(f"{name}-source") is None, "nothing may be deployed"

            assert _cli([sys.executable, "-m", "cdc_platform.cli", "refresh"], env).returncode == 0
            done = _cli(materialize, env)
            assert done.returncode == 0, done.stderr[-3000:]
            with pg_connect(stack, src) as conn:
                conn.execute("UPDATE gamma SET v = 'changed'")
            for t in ("alpha", "beta", "gamma"):
                wait_for_equal(lambda t=t: pg_connect(stack, src).execute(f"SELECT * FROM {t} ORDER BY 1").fetchall(),
                               lambda t=t: pg_connect(stack, tgt).execute(f"SELECT * FROM replica.{t} ORDER BY 1").fetchall())  # fmt: skip
        finally:
            teardown(stack, connect, specs, name)


def test_a_user_project_scaffolds_refreshes_and_lists_a_pipeline_with_dg(stack, tmp_path):
    """A Dagster project of a user's own: `dg scaffold defs` writes the defs.yaml, `dg utils
    refresh-defs-state` stores the catalog, `dg list defs` shows the pipeline's assets and job."""
    with pg_database(stack, "src") as src, pg_database(stack, "tgt") as tgt:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, label text)")
        name = unique("dgproj")
        specs = write_specs(tmp_path / "specs",
                            {"src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt)},
                            [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
                              "tables": {"schema": "public", "include": ["it*"]}}])  # fmt: skip
        project = tmp_path / "userproj"
        (project / "userproj" / "defs").mkdir(parents=True)
        (project / "pyproject.toml").write_text(
            '[project]\nname = "userproj"\nversion = "0.1"\n\n[tool.dg]\ndirectory_type = "project"\n\n'
            '[tool.dg.project]\nroot_module = "userproj"\n'
        )
        (project / "userproj" / "__init__.py").write_text("")
        (project / "userproj" / "defs" / "__init__.py").write_text("")
        (project / "userproj" / "definitions.py").write_text(
            "from pathlib import Path\n\nimport dagster as dg\n\n"
            "defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)\n"
        )
        env = {**os.environ, "PYTHONPATH": str(project), "DAGSTER_HOME": str(tmp_path)}
        env.pop("CDC_SPECS_DIR", None)
        scaffold = _cli(["dg", "scaffold", "defs", "cdc_platform.CdcPipelineComponent", "replica_of_src",
                         "--specs-dir", str(specs.directory), "--pipelines", name], env, project)  # fmt: skip
        assert scaffold.returncode == 0, scaffold.stdout + scaffold.stderr
        written = yaml.safe_load((project / "userproj" / "defs" / "replica_of_src" / "defs.yaml").read_text())
        assert written == {"type": "cdc_platform.CdcPipelineComponent",
                           "attributes": {"specs_dir": str(specs.directory), "pipelines": [name]}}  # fmt: skip

        refresh = _cli(["dg", "utils", "refresh-defs-state"], env, project)
        assert refresh.returncode == 0, refresh.stdout + refresh.stderr
        listed = _cli(["dg", "list", "defs", "--json"], env, project)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        defs = json.loads(listed.stdout)
        assets = {a["asset_key"]: a for a in defs["assets"]}
        assert {"tgt/replica/items", "src/public/items", f"{name}/source_connector"} <= set(assets)
        assert "postgres" in assets["tgt/replica/items"]["kinds"]
        # the scaffolded instance is limited to the one pipeline: its jobs carry its name
        assert f"cdc_teardown_{name}" in {j["name"] for j in defs["jobs"]}
