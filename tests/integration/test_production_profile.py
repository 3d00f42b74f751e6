"""Issue 33: the production profile, started from a fresh clone of this repository, and the three
roles it enforces, tried as users try them: through the TLS proxy's sign-in form in Debian's
Chromium, and with GraphQL requests sent straight past the page with each user's session.

It runs its own stack (a state dir in the clone, every port moved by +10000), so the shared test
stack is untouched; it is `serial` because a second stack takes the machine's two cores for a while.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from cdc_platform.alerts.history import AlertHistory
from cdc_platform.demo import SEED, SHOP_DDL
from cdc_platform.settings import PORT_VARIABLES, read_properties
from tests.ui_support import chromium

pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parents[2]
SHIFT = 10000
PIPELINE = "shop_to_analytics"
LOCATION = {"repositoryLocationName": "cdc_platform", "repositoryName": "__repository__"}
PASSWORDS = {"ada": "admin-password-for-tests", "otto": "operator-password-for-tests",
             "vera": "viewer-password-for-tests"}  # fmt: skip
ROLES = {"ada": "admin", "otto": "operator", "vera": "viewer"}
SERVICES = {"postgres", "mariadb", "kafka", "connect", "connect-2", "s3", "code-admin", "code-operator",
            "dagster-daemon", "webserver-admin", "webserver-operator", "webserver-viewer", "auth", "proxy"}  # fmt: skip
TARGET_TABLES = ("customers", "order_lines", "orders", "products")
MATERIALIZE_KEYS = [["analytics_pg", "shop", t] for t in TARGET_TABLES] + [
    [PIPELINE, part] for part in ("target_schema", "source_connector", "sink_connector")
]

LAUNCH = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId status tags { key value } } }
  ... on UnauthorizedError { message } ... on PipelineNotFoundError { message } ... on PythonError { message } } }"""
SENSOR = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename
  ... on Sensor { id sensorState { status } } } }"""
STOP_SENSOR = """mutation($id: String!) { stopSensor(id: $id) { __typename
  ... on StopSensorMutationResult { instigationState { status } } ... on UnauthorizedError { message } } }"""
START_SENSOR = """mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename
  ... on Sensor { sensorState { status } } ... on UnauthorizedError { message } } }"""
RUN = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }"""


@dataclass
class Stack:
    clone: Path
    env: dict[str, str]
    sessions: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{PORT_VARIABLES['proxy'][1] + SHIFT}"

    @property
    def certificate(self) -> Path:
        return self.clone / ".stack" / "config" / "proxy.crt"

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cdc_platform.cli", *args], cwd=self.clone, env=self.env,
                              input=stdin, capture_output=True, text=True, timeout=timeout)  # fmt: skip

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, verify=ssl.create_default_context(cafile=str(self.certificate)), timeout=60
        )

    def sign_in(self, user: str) -> httpx.Client:
        session = self.client()
        answer = session.post(
            "/oauth2/sign_in", data={"username": user, "password": PASSWORDS[user], "rd": "/"}
        )
        assert answer.status_code == 302 and "_cdc_session" in session.cookies, (user, answer.status_code)
        self.sessions[user] = session
        return session

    def pg(self, database: str) -> psycopg.Connection:
        password = read_properties(self.clone / ".stack" / "secrets" / "stack.properties")[
            "postgres.password"
        ]
        return psycopg.connect(host="127.0.0.1", port=PORT_VARIABLES["postgres"][1] + SHIFT, user="cdc",
                               password=password, dbname=database, autocommit=True)  # fmt: skip

    def platform_url(self) -> str:
        password = read_properties(self.clone / ".stack" / "secrets" / "stack.properties")[
            "postgres.password"
        ]
        return f"postgresql+psycopg://cdc:{password}@127.0.0.1:{PORT_VARIABLES['postgres'][1] + SHIFT}/cdc_platform"


def gql(session: httpx.Client, query: str, **variables) -> dict:
    answer = session.post("/graphql", json={"query": query, "variables": variables})
    assert answer.status_code == 200, (answer.status_code, answer.text[:500])
    body = answer.json()
    assert not body.get("errors"), body["errors"]
    return body["data"]


def launch(session: httpx.Client, job: str, config: dict | None = None, **selector) -> dict:
    params = {"selector": {**LOCATION, "jobName": job, **selector}, "mode": "default",
              "runConfigData": json.dumps(config or {}),
              # a client's own claim of who launched it: the proxy's webserver replaces it
              "executionMetadata": {"tags": [{"key": "dagster/user", "value": "somebody-else"}]}}  # fmt: skip
    return gql(session, LAUNCH, p=params)["launchRun"]


def wait_for_run(session: httpx.Client, run_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = gql(session, RUN, id=run_id)["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return run
        time.sleep(2)
    raise AssertionError(f"run {run_id} did not finish within {timeout:.0f} s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    clone = tmp_path_factory.mktemp("fresh-clone") / "cdc-platform"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DAGSTER_HOME", "CDC_METRICS_URL", "CDC_SPECS_DIR", "CDC_CONNECT_URL", "CDC_USERS_FILE",
                        "CDC_KAFKA_BOOTSTRAP", "CDC_CONNECT_WORKERS")}  # fmt: skip
    env.update({variable: str(port + SHIFT) for variable, port in PORT_VARIABLES.values()})
    env.update(PYTHONPATH=str(clone), CDC_STACK_DIR=str(clone / ".stack"))
    built = Stack(clone, env)
    try:
        yield built
    finally:
        for session in built.sessions.values():
            session.close()
        built.cli("stack", "down", timeout=300)
        # a private clone's state lives under /var/lib/cdc-platform (stack/prerequisites.py): remove it all
        state = (clone / ".stack").resolve()
        if state.is_relative_to(Path("/var/lib/cdc-platform")):
            shutil.rmtree(state, ignore_errors=True)


def test_production_profile_roles_sign_in_and_restarts(stack: Stack) -> None:
    # -- 1. no admin, no start; then the admin adds the users ---------------------------------------
    refused = stack.cli("stack", "up", "--profile", "production")
    assert refused.returncode != 0 and "needs at least one admin user" in refused.stderr, refused.stderr
    assert not list((stack.clone / ".stack" / "run").glob("*.pid")), "something started without an admin"
    for user, password in PASSWORDS.items():
        added = stack.cli(
            "users", "add", user, "--role", ROLES[user], "--password-stdin", stdin=password + "\n"
        )
        assert added.returncode == 0, added.stderr
    secrets = stack.clone / ".stack" / "secrets"
    assert oct((secrets / "users.htpasswd").stat().st_mode & 0o777) == "0o600"
    assert PASSWORDS["ada"] not in (secrets / "users.htpasswd").read_text()

    # -- 2. the whole profile starts, and says each service is healthy ------------------------------
    started = stack.cli("stack", "up", "--profile", "production")
    assert started.returncode == 0, started.stdout[-3000:] + started.stderr[-3000:]
    rows = json.loads(stack.cli("stack", "status", "--json").stdout)
    assert {r["name"] for r in rows} == SERVICES
    assert all(r["state"] == "running" and r["health"] == "ok" for r in rows), rows

    # -- 3. nobody gets the UI or GraphQL without signing in ----------------------------------------
    with stack.client() as anonymous:
        for method, path in (("GET", "/"), ("GET", "/assets"), ("POST", "/graphql")):
            answer = anonymous.request(method, path, json={"query": "{ version }"},
                                       headers={"X-Forwarded-User": "ada"})  # fmt: skip
            assert answer.status_code == 302 and "/oauth2/sign_in" in answer.headers["location"], (
                path,
                answer,
            )
        wrong = anonymous.post("/oauth2/sign_in", data={"username": "ada", "password": "not-her-password"})
        assert wrong.status_code == 401 and "Wrong user or password" in wrong.text

    # -- 4. the demo source, its catalog, and each role's code server reloaded ----------------------
    with stack.pg("postgres") as admin:
        for database in ("shop", "analytics"):
            admin.execute(f'CREATE DATABASE "{database}"')
    with stack.pg("shop") as shop:
        shop.execute(SHOP_DDL)
        shop.execute(SEED)
    refreshed = stack.cli("refresh")
    assert refreshed.returncode == 0, refreshed.stderr
    ada, otto, vera = (stack.sign_in(user) for user in ("ada", "otto", "vera"))
    for session in (ada, otto):  # the admin's location (daemon, admin, viewer) and the operator's
        reloaded = gql(session, 'mutation { reloadRepositoryLocation(repositoryLocationName: "cdc_platform") '
                                "{ __typename } }")  # fmt: skip
        assert reloaded["reloadRepositoryLocation"]["__typename"] == "WorkspaceLocationEntry"

    # -- 5. each role's permissions, as its own webserver states them -------------------------------
    allowed = {user: {p["permission"]: p["value"] for p in gql(s, "{ permissions { permission value } }")["permissions"]}
               for user, s in (("ada", ada), ("otto", otto), ("vera", vera))}  # fmt: skip
    assert allowed["vera"]["launch_pipeline_execution"] is False and not any(allowed["vera"].values())
    assert allowed["otto"]["launch_pipeline_execution"] and not allowed["otto"]["edit_sensor"]
    assert allowed["ada"]["launch_pipeline_execution"] and allowed["ada"]["edit_sensor"]

    # -- 6. a materialization: refused to the viewer; the operator's runs through the queue ---------
    assert launch(vera, "__ASSET_JOB", assetSelection=[{"path": k} for k in MATERIALIZE_KEYS])[
        "__typename"
    ] == ("UnauthorizedError")
    launched = launch(otto, "__ASSET_JOB", assetSelection=[{"path": k} for k in MATERIALIZE_KEYS])
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    assert launched["run"]["status"] == "QUEUED"  # the QueuedRunCoordinator: the daemon starts it
    assert {"key": "dagster/user", "value": "otto"} in launched["run"]["tags"]
    assert {"key": "dagster/user", "value": "somebody-else"} not in launched["run"]["tags"]

    # -- 7. the daemon and the operator's webserver restart under it: no run lost -------------------
    pids = {r["name"]: r["pid"] for r in rows}
    for service in ("dagster-daemon", "webserver-operator"):
        os.kill(pids[service], 15)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _alive(pids["dagster-daemon"]) | _alive(pids["webserver-operator"]):
        time.sleep(0.5)
    restarted = stack.cli("stack", "up")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    otto = stack.sign_in("otto")  # the same session cookie would do; a new one proves sign-in after a restart
    run = wait_for_run(otto, run_id)
    assert run["status"] == "SUCCESS", run
    with stack.pg("shop") as shop, stack.pg("analytics") as analytics:
        shop.execute(
            "INSERT INTO customers (id, email, full_name) VALUES (900001, 'prod@example.com', 'Prod')"
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if analytics.execute("SELECT count(*) FROM shop.customers WHERE id = 900001").fetchone()[0] == 1:
                break
            time.sleep(1)
        else:
            raise AssertionError("a change made after the restarts never reached the target")
        assert (
            shop.execute("SELECT count(*) FROM orders").fetchone()
            == analytics.execute("SELECT count(*) FROM shop.orders").fetchone()
        )
    actors = _actors(stack)
    assert f"dagster run {run_id} by otto" in actors, actors

    # -- 8. toggling a sensor: the admin only --------------------------------------------------------
    selector = {**LOCATION, "sensorName": "cdc_schema_changes"}
    sensor_id = gql(ada, SENSOR, s=selector)["sensorOrError"]["id"]
    for session in (vera, otto):
        assert gql(session, STOP_SENSOR, id=sensor_id)["stopSensor"]["__typename"] == "UnauthorizedError"
        assert gql(session, START_SENSOR, s=selector)["startSensor"]["__typename"] == "UnauthorizedError"
    stopped = gql(ada, STOP_SENSOR, id=sensor_id)["stopSensor"]
    assert stopped["instigationState"]["status"] == "STOPPED", stopped
    assert gql(vera, SENSOR, s=selector)["sensorOrError"]["sensorState"]["status"] == "STOPPED"
    assert gql(ada, START_SENSOR, s=selector)["startSensor"]["sensorState"]["status"] == "RUNNING"

    # -- 9. acknowledging an alert: operator and admin, in their own name ---------------------------
    history = AlertHistory(stack.platform_url())
    alert = history.open("sink_connector_failed", PIPELINE, "sink", "critical", "injected by the test", 1.0,
                         time.time())  # fmt: skip
    ack_config = {
        "ops": {"cdc_acknowledge_alert_op": {"config": {"alert_id": alert.id, "by": "somebody-else"}}}
    }
    assert launch(vera, "cdc_acknowledge_alert", ack_config)["__typename"] == "UnauthorizedError"
    acked = launch(otto, "cdc_acknowledge_alert", ack_config)
    assert acked["__typename"] == "LaunchRunSuccess", acked
    assert wait_for_run(otto, acked["run"]["runId"])["status"] == "SUCCESS"
    assert history.get(alert.id).acknowledged_by == "otto"

    # -- 10. the browser: the sign-in form, the UI, and the page's own session asking GraphQL -------
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            for user in ("vera", "otto", "ada"):
                context = browser.new_context(
                    ignore_https_errors=True, viewport={"width": 1400, "height": 900}
                )
                page = context.new_page()
                page.goto(f"{stack.url}/locations/cdc_platform/sensors/cdc_schema_changes")
                assert "/oauth2/sign_in" in page.url
                page.fill("#username", user)
                page.fill("#password", PASSWORDS[user])
                page.click("#sign-in")
                page.wait_for_url("**/sensors/cdc_schema_changes", timeout=60_000)
                page.get_by_text("cdc_schema_changes").first.wait_for(timeout=60_000)
                # the page follows the role's permissions: the sensor's Running switch is the admin's only
                switch = page.locator("input[type=checkbox]").first
                switch.wait_for(state="attached", timeout=60_000)
                assert switch.is_disabled() is (user != "ada"), user
                # what the page's session may do, from the server, then a launch straight past the page
                answer = page.request.post(
                    f"{stack.url}/graphql", data={"query": "{ permissions { permission value } }"}
                )
                assert answer.status == 200
                edit = {p["permission"]: p["value"] for p in answer.json()["data"]["permissions"]}[
                    "edit_sensor"
                ]
                assert edit is (user == "ada"), (user, edit)
                teardown = page.request.post(f"{stack.url}/graphql", data={"query": LAUNCH, "variables": {"p": {
                    "selector": {**LOCATION, "jobName": "cdc_teardown"}, "runConfigData": "{}"}}})  # fmt: skip
                kind = teardown.json()["data"]["launchRun"]["__typename"]
                expected = {"vera": "UnauthorizedError", "otto": "PipelineNotFoundError",
                            "ada": "RunConfigValidationInvalid"}  # fmt: skip
                assert kind == expected[user], (user, kind)  # the admin's reached the job's config check
                context.close()
        finally:
            browser.close()

    # -- 11. a removed user's session is refused at the next request ------------------------------
    removed = stack.cli("users", "remove", "vera")
    assert removed.returncode == 0 and "the running proxy re-read the users' roles" in removed.stdout, removed
    deadline = time.monotonic() + 10
    while (refused := vera.post("/graphql", json={"query": "{ version }"})).status_code != 403:
        assert time.monotonic() < deadline, (
            f"vera's session still answers after her removal: {refused.status_code}"
        )
        time.sleep(0.5)
    assert "has no role" in refused.text

    # -- 12. guessing passwords is rate limited ------------------------------------------------------
    with stack.client() as guesser:
        codes = [guesser.post("/oauth2/sign_in", data={"username": "ada", "password": f"guess-{n}"}).status_code
                 for n in range(25)]  # fmt: skip
    assert codes[0] == 401 and 429 in codes, codes

    # -- 13. the admin tears the pipeline down; the stack stops cleanly ------------------------------
    torn = launch(ada, "cdc_teardown", {"pipeline": PIPELINE})
    assert torn["__typename"] == "LaunchRunSuccess", torn
    assert wait_for_run(ada, torn["run"]["runId"])["status"] == "SUCCESS"
    with stack.pg("shop") as shop:
        assert shop.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0] == 0
    assert f"dagster run {torn['run']['runId']} by ada" in _actors(stack)
    # no password of the stack or of a user in any service's log or in the proxy's config
    state = (stack.clone / ".stack").resolve()
    secrets = [
        v
        for k, v in read_properties(state / "secrets" / "stack.properties").items()
        if k.endswith("password")
    ]
    for log in [*(state / "logs").glob("*"), *(state / "config").glob("*")]:
        text = log.read_text(errors="replace") if log.is_file() else ""
        for secret in [*secrets, *PASSWORDS.values()]:
            assert secret not in text, f"a password is in {log}"
    down = stack.cli("stack", "down", timeout=300)
    assert down.returncode == 0, down.stderr
    after = json.loads(stack.cli("stack", "status", "--json").stdout)
    assert all(r["state"] == "stopped" for r in after), after
    assert not any(_alive(pid) for pid in pids.values() if pid)


def _actors(stack: Stack) -> set[str]:
    audit = stack.cli("audit", "--pipeline", PIPELINE, "--json")
    assert audit.returncode == 0, audit.stderr
    return {entry["actor"] for entry in json.loads(audit.stdout)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and " Z " not in Path(f"/proc/{pid}/stat").read_text()
