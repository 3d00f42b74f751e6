"""Issue 34: a sink that shows RUNNING but applies nothing while changes wait is measured as stalled
(``sink_stalled``), and the built-in rule alerts on it; a sink that keeps up, or has nothing to do,
is not. Kafka's offsets are given here; the collection's arithmetic is what is tested."""

from __future__ import annotations

import cdc_platform.health.collect as collect_module
from cdc_platform.alerts.rules import BUILT_IN_RULES, MUTED_WHILE_HELD
from cdc_platform.health.collect import PipelineWatch, TableWatch, collect

WATCH = PipelineWatch(
    "p", (TableWatch("s.t", "p.s.t", "t"), TableWatch("s.u", "p.s.u", "u")), "connect-p-sink", None
)


def _stalled(
    monkeypatch, ends: dict, committed: dict, previous_applied: float | None, seconds_ago: float = 60
):
    monkeypatch.setattr(collect_module, "kafka_offsets", lambda *_: (ends, {"p": committed}, {}))
    previous = (
        {}
        if previous_applied is None
        else {"p": {("sink", "applied_total"): (1000.0 - seconds_ago, previous_applied)}}
    )
    figures = collect(None, [WATCH], "kafka:9092", previous, now=1000.0)["p"]
    values = {(s.subject, s.metric): s.value for s in figures.samples}
    assert values[("sink", "applied_total")] == sum(committed.values())
    return values.get(("sink", "sink_stalled"))


def test_a_sink_that_applies_nothing_while_changes_wait_is_stalled(monkeypatch):
    assert (
        _stalled(monkeypatch, {"p.s.t": 50, "p.s.u": 10}, {"p.s.t": 40, "p.s.u": 10}, previous_applied=50)
        == 1.0
    )


def test_a_sink_that_advanced_or_has_nothing_to_do_is_not(monkeypatch):
    assert (
        _stalled(monkeypatch, {"p.s.t": 50, "p.s.u": 10}, {"p.s.t": 45, "p.s.u": 10}, previous_applied=50)
        == 0.0
    )
    assert (
        _stalled(monkeypatch, {"p.s.t": 50, "p.s.u": 10}, {"p.s.t": 50, "p.s.u": 10}, previous_applied=60)
        == 0.0
    )


def test_no_judgement_without_an_earlier_collection_long_enough_ago(monkeypatch):
    assert _stalled(monkeypatch, {"p.s.t": 50}, {"p.s.t": 40}, previous_applied=None) is None
    assert _stalled(monkeypatch, {"p.s.t": 50}, {"p.s.t": 40}, previous_applied=40, seconds_ago=5) is None


def test_the_built_in_rule_alerts_on_a_stall_held_for_a_minute_and_not_while_paused():
    rule = next(r for r in BUILT_IN_RULES if r.name == "sink_stalled")
    assert (
        rule.metric == "sink_stalled"
        and rule.severity == "critical"
        and rule.holds(1.0)
        and not rule.holds(0.0)
    )
    assert rule.for_ == 60 and "sink_stalled" in MUTED_WHILE_HELD
