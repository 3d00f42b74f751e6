"""Evaluating alert rules on the stored time series: one incident per condition, not one per sample.

For each rule, pipeline and subject: the condition *holds* when the newest figure meets it, and has
held for as long as the unbroken run of figures meeting it goes back. An alert opens when that run
is at least the rule's ``for``; it re-notifies every ``renotify_after`` unless acknowledged; it
resolves only when the figures have been clear for ``resolve_after``, so a flapping condition stays
one open alert. A figure older than ``stale_after`` is no evidence either way: nothing opens or
resolves on it. Reading stored figures (not Kafka Connect) keeps evaluation working while Connect
is down, which is when it matters.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdc_platform.alerts.history import Alert, AlertHistory
from cdc_platform.alerts.rules import MUTED_WHILE_HELD, AlertConfig, AlertRule
from cdc_platform.health.metrics_store import MetricsStore

ROLE_SUBJECTS = ("sink", "source", "pipeline")


@dataclass(frozen=True)
class Condition:
    holds: bool
    #: how long the newest figures have been on their side (meeting, or clear of, the condition)
    for_seconds: float
    value: float | None


@dataclass(frozen=True)
class Transition:
    """What this evaluation did to one alert: opened, reminded, resolved (``kind`` as in a notice)."""

    kind: str
    alert: Alert
    rule: AlertRule


def condition(
    rule: AlertRule, series: list[tuple[float, float]], now: float, stale_after: float
) -> Condition | None:
    """The condition on one series (oldest first), or None when there is no fresh figure."""
    if not series or now - series[-1][0] > stale_after:
        return None
    latest_ts, latest = series[-1]
    side = rule.holds(latest)
    since = latest_ts
    for ts, value in reversed(series):
        if rule.holds(value) != side:
            break
        since = ts
    return Condition(side, max(now - since, 0.0), latest)


def subjects(rule: AlertRule, latest: dict[tuple[str, str], tuple[float, float]]) -> list[str]:
    """The series a rule reads for one pipeline: its role, or every table that has the metric."""
    if rule.subject in ROLE_SUBJECTS:
        return [rule.subject] if (rule.subject, rule.metric) in latest else []
    return sorted(s for s, m in latest if m == rule.metric and s not in ROLE_SUBJECTS)


def message(rule: AlertRule, pipeline: str, subject: str, value: float | None) -> str:
    shown = "no value" if value is None else f"{value:,.2f}".rstrip("0").rstrip(".")
    what = rule.description or rule.describe()
    return f"{pipeline} {subject}: {rule.metric} = {shown} ({rule.describe()}). {what}"


def evaluate(
    config: AlertConfig,
    pipelines: list[str],
    store: MetricsStore,
    history: AlertHistory,
    now: float,
    held: frozenset[str] | set[str] = frozenset(),
) -> list[Transition]:
    """``held``: pipelines paused or stopped on purpose; their :data:`MUTED_WHILE_HELD` rules neither
    open, remind nor resolve until they run again."""
    transitions: list[Transition] = []
    for pipeline in pipelines:
        latest = store.latest(pipeline)
        for rule in config.rules:
            if not rule.applies_to(pipeline):
                continue
            if pipeline in held and rule.metric in MUTED_WHILE_HELD:
                continue
            for subject in subjects(rule, latest):
                if subject not in ROLE_SUBJECTS and not rule.applies_to(pipeline, subject):
                    continue
                lookback = max(rule.for_, rule.resolve_after) + config.defaults.stale_after
                series = store.series(pipeline, subject, rule.metric, since=now - lookback)
                state = condition(rule, series, now, config.defaults.stale_after)
                if state is None:
                    continue
                open_alert = history.open_alert(rule.name, pipeline, subject)
                text = message(rule, pipeline, subject, state.value)
                if open_alert is None:
                    if state.holds and state.for_seconds >= rule.for_:
                        alert = history.open(
                            rule.name, pipeline, subject, rule.severity.value, text, state.value, now
                        )
                        transitions.append(Transition("triggered", alert, rule))
                    continue
                if not state.holds and state.for_seconds >= rule.resolve_after:
                    history.resolve(open_alert.id, now)
                    transitions.append(Transition("resolved", history.get(open_alert.id), rule))
                    continue
                if state.holds:
                    history.update_value(open_alert.id, state.value, text)
                due = (
                    open_alert.last_notified_at or open_alert.triggered_at
                ) + config.defaults.renotify_after
                if state.holds and open_alert.acknowledged_at is None and now >= due:
                    transitions.append(Transition("reminder", history.get(open_alert.id), rule))
    return transitions
