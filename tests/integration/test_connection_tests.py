"""Connection tests on the real stack: a privileged user passes; a user without the replication
privilege or SELECT, a wrong password and a closed port each fail with the check that says what to
grant or set; the job stores the result, marks the source assets and opens the alert."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from cdc_platform.alerts.history import AlertHistory
from cdc_platform.ops.connection_test import connection_test_history
from tests.pipeline_support import component_defs, connection, write_specs
from tests.support import mariadb_connect, mariadb_database, pg_connect, pg_database, unique

pytestmark = pytest.mark.integration

LIMITED_PASSWORD = "limited-pw-4711"


def _run(specs_dir, *args, env=None):
    return subprocess.run([sys.executable, "-m", "cdc_platform.cli", "test-connection", "--specs", str(specs_dir),
                           *args], capture_output=True, text=True, env={**os.environ, **(env or {})})  # fmt: skip


def test_privileges_settings_and_login_are_checked_with_fixes(stack, tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'platform.sqlite'}")
    monkeypatch.setenv("LIMITED_PW", LIMITED_PASSWORD)
    pg_role, my_user = unique("lim"), unique("lim")
    with (
        pg_database(stack, "src") as src,
        pg_database(stack, "tgt") as tgt,
        mariadb_database(stack, "my") as my,
    ):
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
            conn.execute(f"CREATE ROLE {pg_role} LOGIN PASSWORD '{LIMITED_PASSWORD}'")
        with mariadb_connect(stack, my) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
            cur.execute(f"CREATE USER '{my_user}'@'%' IDENTIFIED BY '{LIMITED_PASSWORD}'")
        limited = {"password": {"env": "LIMITED_PW"}}
        connections = {
            "src": connection(stack, "postgresql", src), "tgt": connection(stack, "postgresql", tgt),
            "src_limited": {**connection(stack, "postgresql", src), "username": pg_role, **limited},
            "my_limited": {**connection(stack, "mariadb", my), "username": my_user, **limited},
            "wrong_password": {**connection(stack, "postgresql", src), "username": pg_role,
                               "password": {"env": "NOT_THE_PASSWORD"}},
            "closed_port": {**connection(stack, "postgresql", src), "port": 1},
        }  # fmt: skip
        monkeypatch.setenv("NOT_THE_PASSWORD", "definitely-wrong")
        pipelines = [{"name": unique("good"), "source": "src", "target": "tgt", "target_schema": "replica",
                      "tables": {"names": ["public.t"]}}]  # fmt: skip
        for source, table, schema in (
            ("src_limited", "public.t", "r1"),
            ("my_limited", f"{my}.t", "r2"),
            ("wrong_password", "public.t", "r3"),
            ("closed_port", "public.t", "r4"),
        ):
            pipelines.append({"name": unique("p"), "source": source, "target": "tgt", "target_schema": schema,
                              "mode": "cdc_only", "tables": {"names": [table]}})  # fmt: skip
        specs = write_specs(tmp_path / "specs", connections, pipelines)
        try:
            good = _run(specs.directory, "src", "tgt")
            assert good.returncode == 0, good.stdout + good.stderr
            assert "connection src [postgresql]: ok" in good.stdout and "ok   wal_level" in good.stdout

            bad = _run(specs.directory, "--json")
            assert bad.returncode == 6
            results = {r["connection"]: r for r in json.loads(bad.stdout)}
            failed = {
                name: {c["check"]: c for c in r["checks"] if not c["ok"]} for name, r in results.items()
            }
            assert failed["src"] == {} and failed["tgt"] == {}
            assert (
                failed["src_limited"]["replication privilege"]["fix"]
                == f"ALTER ROLE {pg_role} WITH REPLICATION;"
            )
            assert failed["src_limited"]["SELECT on public.t"]["fix"].startswith(
                'GRANT SELECT ON "public"."t"'
            )
            assert (
                "ALTER TABLE" in failed["src_limited"]["publish public.t"]["fix"]
            )  # it does not own the table
            checked = {c["check"] for c in results["src_limited"]["checks"]}
            assert "CREATE on schema public (heartbeat table)" in checked and "wal_level" in checked
            assert set(failed["my_limited"]) >= {
                "REPLICATION SLAVE",
                "REPLICATION CLIENT",
                f"SELECT on {my}.t",
            }
            assert (
                failed["my_limited"]["REPLICATION SLAVE"]["fix"]
                == f"GRANT REPLICATION SLAVE ON *.* TO '{my_user}'@'%';"
            )
            assert "username and the secret" in failed["wrong_password"]["login"]["fix"]
            assert "reachable" in failed["closed_port"]
            for secret in ("definitely-wrong", LIMITED_PASSWORD, stack.password("postgres")):
                assert secret not in bad.stdout + bad.stderr

            # the job: history, the source assets, and the alert rule reading its figures
            defs = component_defs(specs, discover=[pipelines[0]["name"]])  # the others cannot be read
            instance = dg.DagsterInstance.ephemeral()
            job = defs.resolve_job_def("cdc_test_connections")
            result = job.execute_in_process(instance=instance, raise_on_error=False)
            assert not result.success
            observed = [e.event_specific_data.asset_observation for e in result.all_events
                        if e.event_type_value == "ASSET_OBSERVATION"]  # fmt: skip
            limited_obs = [o for o in observed if o.metadata["connection"].value == "src_limited"]
            assert limited_obs and limited_obs[0].metadata["connection_ok"].value == 0.0, [
                (o.asset_key, o.metadata.get("connection")) for o in observed
            ]
            assert connection_test_history("src_limited")[0]["ok"] is False
            assert connection_test_history("src")[0]["ok"] is True
            sensor = defs.get_sensor_def("cdc_alerts")
            sensor(
                dg.build_sensor_context(
                    instance=instance, resources={"cdc_settings": defs.resources["cdc_settings"]}
                )
            )
            opened = {(a.rule, a.pipeline) for a in AlertHistory().listing()}
            assert ("source_connection_test_failed", pipelines[1]["name"]) in opened
            assert not any(p == pipelines[0]["name"] for _, p in opened)
        finally:
            with pg_connect(stack, src) as conn:
                conn.execute(f"DROP OWNED BY {pg_role}")
                conn.execute(f"DROP ROLE {pg_role}")
            with mariadb_connect(stack) as conn, conn.cursor() as cur:
                cur.execute(f"DROP USER IF EXISTS '{my_user}'@'%'")
