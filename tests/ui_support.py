"""The Dagster UI as a person meets it: `dg dev` (webserver and daemon) in its own process group,
its GraphQL API for what the server says, and Debian's Chromium driven by Playwright for what the
page shows. Chromium is required, not optional: `make test` installs it, and a missing browser
fails the test rather than skipping it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

#: the location's name in every loader (pyproject.toml's code_location_name, workspace.yaml)
LOCATION = "cdc_platform"
REPOSITORY = "__repository__"
#: what the Checks tab lists under a check's name once its status has loaded
STATUSES = ("Succeeded", "Failed", "Warning", "Not evaluated", "Skipped", "Execution failed", "In progress")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise AssertionError(
            "Debian's chromium is not installed: `make test` installs it (apt-get install chromium)"
        )
    return found


def deployed_home(stack, tmp_path: Path, specs_dir: Path, pipeline: str) -> dict:
    """The environment ``dg dev`` runs in (DAGSTER_HOME of the test's own with the project's
    dagster.yaml, CDC_SPECS_DIR), after the catalog refresh and the pipeline's materialization a user
    would run first, from the CLI."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((stack.project_root / "dagster_home" / "dagster.yaml").read_text())
    env = {**os.environ, "CDC_SPECS_DIR": str(specs_dir), "DAGSTER_HOME": str(home)}
    for args in (["-m", "cdc_platform.cli", "refresh"],
                 ["-m", "dagster", "asset", "materialize", "-m", "cdc_platform.definitions", "--select", f"group:{pipeline}"]):  # fmt: skip
        done = subprocess.run([sys.executable, *args], env=env, cwd=stack.project_root, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DagsterUI:
    """`dg dev` on a free port with ``env`` (DAGSTER_HOME, CDC_SPECS_DIR), until the block ends."""

    def __init__(self, root: Path, env: dict, log_path: Path, shots: Path):
        self.root, self.env, self.log_path, self.shots = root, env, log_path, shots
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None
        self._playwright = self._browser = self.page = None

    def __enter__(self) -> DagsterUI:
        self._log = open(self.log_path, "w")  # noqa: SIM115 - dg dev writes to it until __exit__
        dg = shutil.which("dg")
        assert dg, "the dg CLI (dagster-dg-cli) is not installed: make install"
        self._process = subprocess.Popen(
            [dg, "dev", "--host", "127.0.0.1", "--port", str(self.port)], cwd=self.root, env=self.env,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            self.wait_for(self._serving, "the webserver to answer", 180)
            # lazy: only this harness needs Playwright
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self._browser = self._playwright.chromium.launch(
                executable_path=chromium(), args=["--no-sandbox"]
            )
            self.page = self._browser.new_page(viewport={"width": 1500, "height": 1000})
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
        self._log.close()

    def _serving(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise AssertionError(f"dg dev exited ({self._process.returncode}):\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/server_info", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_for(self, predicate, what: str, timeout: float, every: float = 3.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(every)
        raise AssertionError(
            f"timed out after {timeout:.0f} s waiting for {what}; dg dev log tail:\n{self.log_tail()}"
        )

    # --- what the server says -------------------------------------------------------------------

    def graphql(self, query: str, **variables) -> dict:
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def latest_check(self, key: list[str], check: str) -> dict | None:
        """The newest evaluation of a check as the UI reads it: passed, severity, description, metadata."""
        data = self.graphql(
            """query($key: AssetKeyInput!, $check: String!) {
                 assetCheckExecutions(assetKey: $key, checkName: $check, limit: 1) {
                   status evaluation { success severity description
                     metadataEntries { label ... on TextMetadataEntry { text } } } } }""",
            key={"path": key}, check=check,
        )  # fmt: skip
        executions = data["assetCheckExecutions"]
        if not executions or executions[0]["evaluation"] is None:
            return None
        evaluation = executions[0]["evaluation"]
        evaluation["metadata"] = {e["label"]: e.get("text") for e in evaluation.pop("metadataEntries")}
        return evaluation

    def observations(self, key: list[str], limit: int = 20) -> list[dict]:
        """The asset's newest observations: ``timestamp`` (ms, as the Events tab's URL takes it) and
        ``description``."""
        data = self.graphql(
            """query($key: AssetKeyInput!, $limit: Int) { assetNodeOrError(assetKey: $key) {
                 ... on AssetNode { assetObservations(limit: $limit) { timestamp description } } } }""",
            key={"path": key}, limit=limit,
        )  # fmt: skip
        return [{"timestamp": o["timestamp"], "description": o["description"] or ""}
                for o in data["assetNodeOrError"]["assetObservations"]]  # fmt: skip

    def sensor_lines(self, sensor: str, limit: int = 5) -> list[str]:
        """What the sensor's latest ticks said (their skip reasons), newest first."""
        data = self.graphql(
            """query($selector: SensorSelector!, $limit: Int) { sensorOrError(sensorSelector: $selector) {
                 ... on Sensor { sensorState { ticks(limit: $limit) { status skipReason } } } } }""",
            selector={"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION, "sensorName": sensor},
            limit=limit,
        )  # fmt: skip
        return [t["skipReason"] or "" for t in data["sensorOrError"]["sensorState"]["ticks"]]

    # --- what the page shows --------------------------------------------------------------------

    def open(self, path: str, until: str | tuple[str, ...]) -> str:
        """The page's visible text once every text of ``until`` shows on it. The UI renders after
        its queries answer, later on a loaded machine than networkidle says, and a page's parts
        answer apart: a run page shows its Terminate button before its tags and logs."""
        self.page.goto(f"{self.url}{path}", wait_until="networkidle")
        for text in (until,) if isinstance(until, str) else until:
            self.page.get_by_text(text).first.wait_for(timeout=60_000)
        return self.page.inner_text("body")

    def check_status_shown(self, key: list[str], check: str) -> str:
        """The status the asset's Checks tab lists beside ``check`` (Succeeded, Failed, ...)."""
        deadline = time.monotonic() + 60
        while True:
            text = self.open(f"/assets/{'/'.join(key)}?view=checks", until=check)
            lines = [line.strip() for line in text.splitlines()]
            status = next((line for line in lines[lines.index(check) :] if line and line != check), "")
            if status in STATUSES or time.monotonic() > deadline:
                return status
            time.sleep(2)

    def event_shown(self, key: list[str], timestamp: str, until: str) -> str:
        """The text of the asset's Events tab with one event selected, as a click on it shows it."""
        return self.open(f"/assets/{'/'.join(key)}?view=events&time={timestamp}", until=until)

    def screenshot(self, name: str) -> Path:
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
