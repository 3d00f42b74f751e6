"""Issue 34: a sink that shows RUNNING but applies nothing while changes wait is measured as stalled
(``sink_stalled``), the built-in rule alerts on it and its tables' ``pipeline_running`` check fails;
a sink that keeps up, or has nothing to do, is not. Kafka's offsets are given here; the collection's arithmetic is what is tested."""

from __future__ import annotations

import dagster as dg

import cdc_platform.health.collect as collect_module
from cdc_platform.alerts.rules import BUILT_IN_RULES, MUTED_WHILE_HELD
from cdc_platform.dagster.table_health import table_verdict
from cdc_platform.health.collect import PipelineWatch, TableWatch, collect
from cdc_platform.health.stall import FIGURE_MAX_AGE_SECONDS, SinkStall, sink_stall
from cdc_platform.pipeline.state import PipelineState, StateReading

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


def test_the_newest_stall_figure_is_read_only_when_recent_and_taken_since_the_last_resume():
    latest = {("sink", "sink_stalled"): (1000.0, 1.0), ("sink", "lag_messages"): (1000.0, 1234.0)}
    stall = sink_stall(latest, now=1010.0)
    assert stall is not None and stall.waiting == 1234
    assert "applied nothing while 1,234 changes wait in Kafka (measured 10 s ago): stalled" in stall.describe(
        1010.0
    )
    assert sink_stall({("sink", "sink_stalled"): (1000.0, 0.0)}, now=1010.0) is None
    assert sink_stall(latest, now=1000.0 + FIGURE_MAX_AGE_SECONDS + 1) is None, "too old to be evidence"
    assert sink_stall(latest, now=1010.0, since=1005.0) is None, "measured before the pipeline was resumed"
    assert sink_stall({}, now=1010.0) is None


def test_a_running_pipeline_whose_sink_is_stalled_fails_its_tables_check_and_a_held_one_warns():
    stall = SinkStall(waiting=500, measured_at=990.0)
    passed, severity, summary = table_verdict(
        StateReading(PipelineState.RUNNING, ""), 3.0, 120.0, stall, now=1000.0
    )
    assert not passed and severity is dg.AssetCheckSeverity.ERROR
    assert summary.startswith("pipeline RUNNING, but its sink applied nothing while 500 changes wait")
    passed, severity, _ = table_verdict(
        StateReading(PipelineState.PAUSED, "by ada"), None, 120.0, stall, 1000.0
    )
    assert not passed and severity is dg.AssetCheckSeverity.WARN, (
        "paused on purpose: changes wait, not stalled"
    )
    assert table_verdict(StateReading(PipelineState.RUNNING, ""), 3.0, 120.0, None, 1000.0)[0]
