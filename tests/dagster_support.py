"""Running the platform's Dagster parts as the daemon and the UI run them, and reading what they report."""

from __future__ import annotations

import json
import time

import dagster as dg

from cdc_platform.dagster.check_runs import checks_request
from cdc_platform.dagster.health_memory import ConnectorMemory, load_cursor
from tests.pipeline_support import run_request


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def run_checks(defs: dg.Definitions, instance, names: tuple[str, ...], tags: dict | None = None) -> dict:
    """The named checks of every table, requested as the schedules and the health sensor do."""
    keys = [k for c in defs.asset_checks or [] for k in c.check_keys if k.name in names]
    return evaluations(run_request(defs, instance, checks_request(keys, tags or {})))


def run_schedule(defs: dg.Definitions, instance, schedule: str) -> dict[str, dg.AssetCheckEvaluation]:
    """One tick of a quality schedule, its run request executed as the daemon would."""
    tick = defs.get_schedule_def(schedule).evaluate_tick(dg.build_schedule_context(instance=instance))
    (request,) = tick.run_requests or []
    return evaluations(run_request(defs, instance, request))


def observations(result) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_OBSERVATION":
            data = event.event_specific_data.asset_observation
            out[data.asset_key.to_user_string()] = {
                k: getattr(v, "value", v) for k, v in data.metadata.items()
            }
    return out


class Ticker:
    """Ticks the sensor like the daemon does: same instance, cursor carried from tick to tick."""

    def __init__(
        self, defs: dg.Definitions, instance: dg.DagsterInstance, connect, sensor: str = "cdc_connect_health"
    ):
        self.sensor = defs.get_sensor_def(sensor)
        self.instance, self.connect, self.cursor = instance, connect, None
        #: the runs the sensor asked for (the consistency checks after a recovery)
        self.requests: list[dg.RunRequest] = []
        #: the newest evaluation per connector, as the UI shows it (a tick writes only changes)
        self.latest: dict[str, dg.AssetCheckEvaluation] = {}
        #: what the last tick said it saw (the line the sensor's page shows), when it launched no run
        self.said: str | None = None

    def tick(self) -> dict[str, dg.AssetCheckEvaluation]:
        """This tick's evaluations (only connectors whose health changed)."""
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                          resources={"kafka_connect": self.connect})  # fmt: skip
        result = self.sensor(context)
        self.cursor = result.cursor
        self.requests += result.run_requests or []
        self.said = result.skip_reason.skip_message if result.skip_reason else None
        events = {
            e.asset_key.path[-1]: e
            for e in result.asset_events or []
            if isinstance(e, dg.AssetCheckEvaluation)
        }
        self.latest.update(events)
        return events

    def memory(self, connector: str) -> ConnectorMemory:
        """What the cursor remembers of a connector, read as the sensor reads it."""
        return load_cursor(self.cursor)[connector]

    def until(self, predicate, timeout: float = 90.0, every: float = 1.0) -> dict:
        deadline, seen = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            self.tick()
            seen = dict(self.latest)
            if predicate(seen):
                return seen
            time.sleep(every)
        statuses = {
            w: self.connect.status(w)
            for w in json.loads(self.cursor or "{}").get("connectors", {})
            if not w.startswith("__")  # the worker's and the tables' entries are not connectors
        }
        raise AssertionError(
            f"sensor never reached the expected state; last evaluations: {seen}; "
            f"cursor: {self.cursor}; worker: {statuses}"
        )
