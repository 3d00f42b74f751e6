"""Alert rules and channels, declared in YAML beside the pipeline specs (a file with an ``alerts:`` key).

A rule is a condition on one figure of the platform's time series (the metrics schedule's and the
health sensor's), held for a duration: ``lag_messages`` of the sink above 10,000 for 5 minutes.
Built-in rules cover what a team running Debezium must hear about (a failed connector, recovery
that gave up, lag, latency, a stale heartbeat, slot WAL at risk, a purged binlog position, records
in the dead-letter topic); a rule of the same name in the file replaces one, ``enabled: false``
switches it off. Every error names the file, the rule or channel, and the field.
"""

from __future__ import annotations

import fnmatch
import re
from enum import Enum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BeforeValidator, Field, ValidationError, model_validator

from cdc_platform.specs.loader import SpecError, SpecErrors, _field_path, default_specs_dir
from cdc_platform.specs.models import SecretRef, Strict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def seconds(value: str | float | int) -> float:
    """``90``, ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"`` -> seconds."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration: use seconds or a number with s, m, h or d (e.g. 5m)")
    return float(match.group(1)) * _UNITS[match.group(2)]


#: seconds, written as a number or as 30s / 5m / 2h / 1d
Duration = Annotated[float, BeforeValidator(seconds)]


class Severity(str, Enum):
    info = "info"
    warning = "warning"
    critical = "critical"


class TlsMode(str, Enum):
    none = "none"
    starttls = "starttls"
    ssl = "ssl"


class EmailChannel(Strict):
    kind: str = Field(pattern="^email$")
    smtp_host: str
    smtp_port: int = Field(default=587, ge=1, le=65535)
    tls: TlsMode = TlsMode.starttls
    username: str | None = None
    password: SecretRef | None = None
    sender: str
    recipients: list[str] = Field(min_length=1)
    timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _login(self) -> EmailChannel:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together (both, or neither for no login)")
        return self


class WebhookChannel(Strict):
    kind: str = Field(pattern="^webhook$")
    url: str = Field(pattern=r"^https?://")
    #: ``slack``: a Slack-compatible body (``text`` plus the fields); ``json``: the alert as JSON
    format: str = Field(default="json", pattern="^(json|slack)$")
    #: HMAC-SHA256 of the body in ``X-CDC-Signature: sha256=<hex>``, when given
    secret: SecretRef | None = None
    timeout_seconds: float = Field(default=5.0, gt=0)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_seconds: float = Field(default=1.0, ge=0)


Channel = EmailChannel | WebhookChannel


class Comparison(str, Enum):
    above = "above"
    below = "below"


class AlertRule(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    description: str | None = None
    enabled: bool = True
    #: a figure of the time series, e.g. lag_messages, latency_seconds, slot_retained_wal_bytes
    metric: str
    #: where the figure lives: sink | source | pipeline | table (every table of the pipeline)
    subject: str = Field(pattern="^(sink|source|pipeline|table)$")
    above: float | None = None
    below: float | None = None
    #: how long the condition must hold before the alert opens
    for_: Duration = Field(default=0.0, alias="for", ge=0)
    #: how long it must be clear before the alert resolves (a flapping condition stays one alert)
    resolve_after: Duration = Field(default=60.0, ge=0)
    severity: Severity = Severity.warning
    #: channel names; empty: the defaults' channels
    channels: list[str] | None = None
    pipelines: list[str] = Field(default_factory=lambda: ["*"])
    tables: list[str] = Field(default_factory=lambda: ["*"])

    @model_validator(mode="after")
    def _one_threshold(self) -> AlertRule:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of `above` or `below`")
        return self

    @property
    def comparison(self) -> tuple[Comparison, float]:
        return (Comparison.above, self.above) if self.above is not None else (Comparison.below, self.below)  # type: ignore[return-value]

    def holds(self, value: float) -> bool:
        kind, threshold = self.comparison
        return value > threshold if kind is Comparison.above else value < threshold

    def applies_to(self, pipeline: str, table: str | None = None) -> bool:
        if not any(fnmatch.fnmatchcase(pipeline, p) for p in self.pipelines):
            return False
        return table is None or any(fnmatch.fnmatchcase(table, t) for t in self.tables)

    def describe(self) -> str:
        kind, threshold = self.comparison
        held = f" for {self.for_:.0f} s" if self.for_ else ""
        return f"{self.metric} of the {self.subject} {kind.value} {threshold:g}{held}"


def _rule(name: str, metric: str, subject: str, severity: str, description: str, **condition) -> AlertRule:
    return AlertRule.model_validate({"name": name, "metric": metric, "subject": subject, "severity": severity,
                                     "description": description, **condition})  # fmt: skip


#: metrics a pause or stop makes look bad on purpose: their rules are not evaluated for a pipeline
#: paused or stopped by a person. The slot and binlog rules still are: a paused pipeline's retained
#: WAL or purged binlog position is exactly what must still reach someone.
MUTED_WHILE_HELD = frozenset(
    {"connector_running", "failed_tasks", "restarts", "recovery_gave_up", "lag_messages", "latency_seconds",
     "sink_stalled",
     "heartbeat_age_seconds", "source_ms_behind"}
)  # fmt: skip
#: what every pipeline is watched for unless the alerts file replaces or disables it
BUILT_IN_RULES: tuple[AlertRule, ...] = (
    _rule("source_connector_failed", "connector_running", "source", "critical",
          "The source connector or a task is FAILED, missing, or Kafka Connect is down.", below=1),
    _rule("sink_connector_failed", "connector_running", "sink", "critical",
          "The sink connector or a task is FAILED, missing, or Kafka Connect is down.", below=1),
    _rule("recovery_gave_up", "recovery_gave_up", "sink", "critical",
          "The health sensor stopped restarting the sink: it failed again after the last attempt, or "
          "with an error a restart cannot fix.", above=0),
    _rule("sink_stalled", "sink_stalled", "sink", "critical",
          "Changes wait in Kafka and the sink applied none of them between two collections, although it may "
          "show RUNNING (a consumer group that has not rebalanced, a hung task).", above=0, **{"for": "1m"}),
    _rule("sink_lag", "lag_messages", "sink", "warning",
          "Changes wait in Kafka for the sink.", above=10_000, **{"for": "5m"}),
    _rule("latency", "latency_seconds", "pipeline", "warning",
          "A change takes this long from the source's commit to the target.", above=60, **{"for": "5m"}),
    _rule("heartbeat_stale", "heartbeat_age_seconds", "pipeline", "critical",
          "No heartbeat reached the target for this long: some part of the chain has stopped.", above=300),
    _rule("slot_wal_retained", "slot_retained_wal_bytes", "source", "warning",
          "The replication slot keeps this much WAL on the source's disk.", above=4 * 2**30, **{"for": "10m"}),
    _rule("slot_wal_at_risk", "slot_wal_status_ok", "source", "critical",
          "The slot's WAL is unreserved or lost: the pipeline is about to need, or needs, a new full load.",
          below=1),
    _rule("binlog_position_purged", "binlog_position_available", "source", "critical",
          "The binlog file the connector would resume from is purged: the pipeline needs a new full load.",
          below=1),
    _rule("dead_letter_records", "dlq_messages", "sink", "warning",
          "Records the sink could not read went to its dead-letter topic.", above=0),
    _rule("source_connection_test_failed", "source_connection_ok", "source", "critical",
          "The source connection's test failed: see `cdc-platform test-connection` for the check and its fix.",
          below=1),
    _rule("row_counts_differ", "row_count_parity_ok", "table", "critical",
          "The table's row counts differ by more than the changes in flight can explain (row_count_parity).",
          below=1),
    _rule("rows_differ", "checksum_reconciliation_ok", "table", "critical",
          "Rows of the table differ between source and target (checksum_reconciliation names the keys).",
          below=1),
    _rule("schema_change_held", "schema_change_held", "table", "critical",
          "A source schema change the platform does not apply by itself (schema_changes policy) is held for "
          "review; the alert names the change and the proposed target DDL. Opened and resolved by the "
          "schema_changes sensor and apply-drift.", above=0),
    _rule("target_connection_test_failed", "target_connection_ok", "sink", "critical",
          "The target connection's test failed: see `cdc-platform test-connection` for the check and its fix.",
          below=1),
)  # fmt: skip


class AlertDefaults(Strict):
    channels: list[str] = Field(default_factory=list)
    #: an open, unacknowledged alert is sent again this often
    renotify_after: Duration = Field(default=3600.0, ge=60)
    #: a figure older than this is no evidence either way (the collector stopped)
    stale_after: Duration = Field(default=900.0, ge=60)


class AlertsFile(Strict):
    defaults: AlertDefaults = Field(default_factory=AlertDefaults)
    channels: dict[str, Channel] = Field(default_factory=dict)
    rules: list[AlertRule] = Field(default_factory=list)


class AlertConfig:
    """The rules in force (built-ins, replaced or disabled by the file's) and the channels."""

    def __init__(self, file: AlertsFile | None = None, source: Path | None = None):
        self.file = file or AlertsFile()
        self.source = source
        by_name = {r.name: r for r in BUILT_IN_RULES}
        for rule in self.file.rules:
            by_name[rule.name] = rule
        self.rules = [r for r in by_name.values() if r.enabled]
        self.channels = self.file.channels
        self.defaults = self.file.defaults

    def channels_of(self, rule: AlertRule) -> list[str]:
        return list(rule.channels if rule.channels is not None else self.defaults.channels)


def load_alert_config(directory: Path | None = None) -> AlertConfig:
    """The ``alerts:`` file of the specs directory (at most one), validated; built-ins when there is none."""
    directory = (directory or default_specs_dir()).resolve()
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml")):
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            continue  # reported by the specs loader
        if isinstance(raw, dict) and "alerts" in raw:
            found.append((path, raw["alerts"] or {}))
    if not found:
        return AlertConfig()
    if len(found) > 1:
        raise SpecErrors(
            [SpecError(p, "a second `alerts:` file; keep the rules in one") for p, _ in found[1:]]
        )
    path, raw = found[0]
    try:
        parsed = AlertsFile.model_validate(raw)
    except ValidationError as exc:
        raise SpecErrors([_located(path, raw, e) for e in exc.errors()]) from None
    errors = []
    for index, rule in enumerate(parsed.rules):
        for channel in rule.channels or []:
            if channel not in parsed.channels:
                errors.append(SpecError(path, f"rule {rule.name!r} names unknown channel {channel!r}; known: "
                                        f"{', '.join(sorted(parsed.channels)) or 'none'}", field=f"alerts.rules[{index}].channels"))  # fmt: skip
    for channel in parsed.defaults.channels:
        if channel not in parsed.channels:
            errors.append(SpecError(path, f"unknown channel {channel!r}", field="alerts.defaults.channels"))
    if errors:
        raise SpecErrors(errors)
    return AlertConfig(parsed, path)


def _located(path: Path, raw: dict, error: dict) -> SpecError:
    loc = error["loc"]
    where = "alerts." + _field_path(loc)
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = raw.get("rules") or []
        name = rules[loc[1]].get("name") if loc[1] < len(rules) and isinstance(rules[loc[1]], dict) else None
        where = f"alerts.rules[{loc[1]}]" + (f" ({name})" if name else "") + "." + _field_path(loc[2:])
    return SpecError(path, error["msg"], field=where.rstrip("."))
