"""Kafka Connect's REST API as a Dagster resource.

Every call has a timeout; a rebalance in progress (409, or a 500 saying a rebalance is expected, or
that the worker could not reach the leader it knew) is retried with backoff; every error names the
connector and carries the worker's own message, so a failed materialization says what to fix.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dagster import ConfigurableResource
from pydantic import Field

from cdc_platform.audit import record
from cdc_platform.connectors.diff import config_diff

if TYPE_CHECKING:
    import httpx


def _leader_changing(body: str) -> bool:
    """A 500 that a moment fixes: a rebalance is expected, or the worker forwarded a write to a leader
    that has just left the group and refused the connection (the request never reached it, so it
    can be sent again). The group elects a new leader within a session, 6 s on the stack."""
    text = body.lower()
    return "rebalance" in text or ("trying to forward rest request" in text and "connectexception" in text)


class KafkaConnectError(RuntimeError):
    def __init__(self, message: str, *, connector: str | None = None, status_code: int | None = None):
        super().__init__(message)
        self.connector = connector
        self.status_code = status_code


class ConnectorConfigInvalid(KafkaConnectError):
    """The worker's validate endpoint rejected fields; ``errors`` maps field name -> messages."""

    def __init__(self, connector: str, errors: dict[str, list[str]]):
        listing = "; ".join(f"{k}: {' '.join(v)}" for k, v in sorted(errors.items()))
        super().__init__(f"Connector {connector!r} config is invalid: {listing}", connector=connector)
        self.errors = errors


class KafkaConnectResource(ConfigurableResource):
    """Create-or-update, status, restart, pause/resume/stop, delete, validate and plugins of one Connect cluster."""

    url: str = Field(
        description="Base URL of a worker of the Connect cluster, e.g. http://127.0.0.1:8083; several "
        "workers' URLs separated by commas are tried in order, so a stopped worker costs nothing"
    )
    timeout_seconds: float = Field(default=30.0, description="Per-request timeout")
    rebalance_retries: int = Field(
        default=10, description="How often a 409 (rebalance in progress) is retried"
    )

    # -- plumbing ------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        connector: str | None = None,
        json: Any = None,
        ok=(200, 201, 202, 204),
    ) -> httpx.Response:
        delay = 0.5
        for attempt in range(self.rebalance_retries + 1):
            response = self._send(method, path, connector=connector, json=json)
            rebalancing = response.status_code == 409 or (
                response.status_code == 500 and _leader_changing(response.text)
            )
            if rebalancing and attempt < self.rebalance_retries:
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if response.status_code not in ok:
                try:
                    message = response.json().get("message", response.text)
                except ValueError:
                    message = response.text
                subject = f"connector {connector!r}" if connector else path
                raise KafkaConnectError(
                    f"Kafka Connect {method} {path} for {subject} failed with {response.status_code}: {message}",
                    connector=connector,
                    status_code=response.status_code,
                )
            return response
        raise AssertionError("unreachable")

    @property
    def worker_urls(self) -> list[str]:
        return [u.strip().rstrip("/") for u in self.url.split(",") if u.strip()]

    def _send(self, method: str, path: str, *, connector: str | None, json: Any) -> httpx.Response:
        """Any worker answers for the whole cluster (it forwards writes to the leader), so a worker
        that cannot be reached hands the request to the next one."""
        # lazy: only a call to Connect imports httpx, not every code-location load
        import httpx

        failures = []
        for base in self.worker_urls:
            try:
                return httpx.request(method, f"{base}{path}", json=json, timeout=self.timeout_seconds)
            except httpx.TransportError as exc:
                failures.append(f"{base} ({type(exc).__name__}: {exc})")
        what = f"connector {connector!r}" if connector else path
        raise KafkaConnectError(
            f"Kafka Connect could not be reached for {what}: {'; '.join(failures) or 'no worker URL configured'}",
            connector=connector,
        )

    @staticmethod
    def _path(name: str) -> str:
        return f"/connectors/{quote(name, safe='')}"

    # -- reads ---------------------------------------------------------------------------------
    def plugins(self) -> list[dict]:
        return self._request("GET", "/connector-plugins?connectorsOnly=true").json()

    def overview(self) -> dict[str, dict]:
        """Every connector's status and config in one request: name -> {"status": ..., "info": ...}."""
        return self._request("GET", "/connectors?expand=status&expand=info").json()

    def list_connectors(self) -> list[str]:
        return self._request("GET", "/connectors").json()

    def get_config(self, name: str) -> dict[str, str] | None:
        """The stored config (config-provider references unresolved), or None if no such connector."""
        try:
            return self._request("GET", f"{self._path(name)}/config", connector=name).json()
        except KafkaConnectError as exc:
            if exc.status_code == 404:
                return None
            raise

    def status(self, name: str) -> dict | None:
        try:
            return self._request("GET", f"{self._path(name)}/status", connector=name).json()
        except KafkaConnectError as exc:
            if exc.status_code == 404:
                return None
            raise

    def offsets(self, name: str) -> dict:
        return self._request("GET", f"{self._path(name)}/offsets", connector=name).json()

    # -- writes --------------------------------------------------------------------------------
    def validate(self, config: dict[str, str]) -> None:
        """Ask the plugin to validate ``config``; raise with every failing field named."""
        name = config.get("name", "?")
        plugin = quote(config["connector.class"], safe="")
        result = self._request(
            "PUT", f"/connector-plugins/{plugin}/config/validate", connector=name, json=config
        ).json()
        if result.get("error_count", 0) == 0:
            return
        errors = {
            item["value"]["name"]: item["value"]["errors"]
            for item in result.get("configs", [])
            if item.get("value", {}).get("errors")
        }
        raise ConnectorConfigInvalid(name, errors)

    def put_config(self, name: str, config: dict[str, str], *, fresh_offsets: bool = False) -> str:
        """Create or update; returns ``created``, ``updated`` or ``unchanged`` (no call made).

        ``fresh_offsets``: a connector that does not exist yet is created STOPPED, any offsets an
        earlier connector of the same name left in Connect's offset topic are deleted, and then it
        starts. A source connector must start from the position its pipeline just set up, never
        from one a deleted namesake stored.
        """
        current = self.get_config(name)
        desired = {**config, "name": name}
        if current is not None and current == desired:
            return "unchanged"
        if current is None and fresh_offsets:
            self._request("POST", "/connectors", connector=name,
                          json={"name": name, "config": desired, "initial_state": "STOPPED"})  # fmt: skip
            self._request("DELETE", f"{self._path(name)}/offsets", connector=name)
            _audit("connector.created", name, "created stopped, stored offsets cleared, then started",
                   old=None, new=desired)  # fmt: skip
            self.resume(name)
            return "created"
        self._request("PUT", f"{self._path(name)}/config", connector=name, json=desired)
        action = "created" if current is None else "updated"
        _audit(f"connector.{action}", name, old=current, new=desired)
        return action

    def restart(self, name: str, *, only_failed: bool = True, include_tasks: bool = True) -> dict | None:
        query = f"includeTasks={str(include_tasks).lower()}&onlyFailed={str(only_failed).lower()}"
        response = self._request("POST", f"{self._path(name)}/restart?{query}", connector=name)
        _audit("connector.restarted", name, query)
        return response.json() if response.content else None

    def pause(self, name: str) -> None:
        self._request("PUT", f"{self._path(name)}/pause", connector=name)
        _audit("connector.paused", name)

    def resume(self, name: str) -> None:
        self._request("PUT", f"{self._path(name)}/resume", connector=name)
        _audit("connector.resumed", name)

    def stop(self, name: str) -> None:
        self._request("PUT", f"{self._path(name)}/stop", connector=name)
        _audit("connector.stopped", name)

    def forget_offsets(self, name: str, *, timeout: float = 30.0) -> None:
        """Stop the connector and delete its stored source offsets (Connect keeps them after a
        DELETE, and a new connector of the same name would resume from them)."""
        self.stop(name)
        deadline = time.monotonic() + timeout
        while (self.status(name) or {}).get("connector", {}).get("state") != "STOPPED":
            if time.monotonic() > deadline:
                raise KafkaConnectError(
                    f"connector {name!r} did not stop within {timeout:.0f} s", connector=name
                )
            time.sleep(0.3)
        self._request("DELETE", f"{self._path(name)}/offsets", connector=name)
        _audit("connector.offsets_deleted", name)

    def delete(self, name: str) -> bool:
        """Delete; False if it did not exist."""
        try:
            self._request("DELETE", self._path(name), connector=name)
        except KafkaConnectError as exc:
            if exc.status_code == 404:
                return False
            raise
        _audit("connector.deleted", name)
        return True

    # -- waiting -------------------------------------------------------------------------------
    def await_restart(self, name: str, *, timeout: float = 3.0) -> None:
        """After a restart request, until the status stops showing the FAILED it was restarted from.

        Connect accepts a restart (202) and applies it afterwards, so a status read at once can
        still carry the old failure: ``wait_running`` would raise it for a task that is about to
        run. A status that stays FAILED for ``timeout`` seconds is a task that failed again at once,
        and ``wait_running`` reports it then.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "FAILED" not in _states(self.status(name) or {}):
                return
            time.sleep(0.1)

    def wait_running(self, name: str, *, timeout: float = 90.0, settle: float = 3.0) -> dict:
        """Wait until the connector and all its tasks run, and keep running for ``settle`` seconds.

        Right after a config change the status topic can still show the previous generation's
        RUNNING tasks; only a RUNNING that holds for ``settle`` seconds (and no FAILED seen meanwhile)
        counts. A FAILED connector or task raises at once with its trace.
        """
        deadline = time.monotonic() + timeout
        last: dict | None = None
        running_since: float | None = None
        while time.monotonic() < deadline:
            last = self.status(name)
            if last:
                failed = [t for t in last.get("tasks", []) if t["state"] == "FAILED"]
                if last["connector"]["state"] == "FAILED" or failed:
                    trace = (failed[0] if failed else last["connector"]).get("trace", "")
                    raise ConnectorFailed(name, trace)
                states = _states(last)
                if last.get("tasks") and all(s == "RUNNING" for s in states):
                    running_since = running_since or time.monotonic()
                    if time.monotonic() - running_since >= settle:
                        return last
                else:
                    running_since = None
            time.sleep(0.5)
        raise KafkaConnectError(
            f"Connector {name!r} was not RUNNING within {timeout:.0f} s: {last}", connector=name
        )


def _states(status: dict) -> list[str | None]:
    """The connector's state, then each task's."""
    return [status.get("connector", {}).get("state")] + [t["state"] for t in status.get("tasks", [])]


def _audit(action: str, name: str, detail: str | None = None, *, old: dict | None = None,
           new: dict | None = None) -> None:  # fmt: skip
    """Every write to the worker goes to the audit log; configs as a masked diff."""

    record(action, name, detail=detail, diff=config_diff(old, new) if new is not None else None)


class ConnectorFailed(KafkaConnectError):
    """A connector or task is FAILED; the message carries the trace's first line and its root cause."""

    def __init__(self, connector: str, trace: str):
        lines = trace.strip().splitlines()
        causes = [line for line in lines if line.startswith("Caused by: ")]
        detail = lines[0] if lines else "no trace"
        if causes and causes[-1] not in detail:
            detail += f" ({causes[-1]})"
        super().__init__(f"Connector {connector!r} failed: {detail}", connector=connector)
        self.trace = trace
