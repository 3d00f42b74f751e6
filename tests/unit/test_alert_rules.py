"""Alert rules: the file's validation, and evaluation on a real (SQLite) time series and history.

The figures are written by the test instead of by the collector, so each rule's timing (for,
resolve_after, renotify_after, stale_after) can be walked through second by second.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import yaml

from cdc_platform.alerts.evaluate import evaluate
from cdc_platform.alerts.history import AlertHistory
from cdc_platform.alerts.rules import AlertConfig, AlertsFile, load_alert_config, seconds
from cdc_platform.health.metrics_store import MetricsStore, Sample
from cdc_platform.platform_db import ALERTS, VERSIONS, migrate
from cdc_platform.specs.loader import SpecErrors


def _write(tmp_path, alerts) -> None:
    (tmp_path / "alerts.yaml").write_text(yaml.safe_dump({"alerts": alerts}))


def test_durations_and_built_in_rules_replaced_or_disabled(tmp_path):
    assert seconds("5m") == 300 and seconds(90) == 90 and seconds("1.5h") == 5400
    with pytest.raises(ValueError, match="not a duration"):
        seconds("soon")
    assert {r.name for r in load_alert_config(tmp_path).rules} >= {"sink_lag", "sink_connector_failed"}
    _write(tmp_path, {"rules": [{"name": "sink_lag", "metric": "lag_messages", "subject": "sink", "above": 5,
                                 "for": "30s"},
                                {"name": "dead_letter_records", "metric": "dlq_messages", "subject": "sink",
                                 "above": 0, "enabled": False}]})  # fmt: skip
    rules = {r.name: r for r in load_alert_config(tmp_path).rules}
    assert rules["sink_lag"].above == 5 and rules["sink_lag"].for_ == 30
    assert "dead_letter_records" not in rules


def test_errors_name_the_file_the_rule_and_the_field(tmp_path):
    _write(tmp_path, {"channels": {"hook": {"kind": "webhook", "url": "ftp://x"}},
                      "rules": [{"name": "lagging", "metric": "lag_messages", "subject": "sink", "for": "ages",
                                 "above": 1},
                                {"name": "both", "metric": "m", "subject": "sink", "above": 1, "below": 2}]})  # fmt: skip
    with pytest.raises(SpecErrors) as caught:
        load_alert_config(tmp_path)
    text = str(caught.value)
    assert "alerts.yaml" in text and "alerts.rules[0] (lagging).for" in text and "not a duration" in text
    assert "alerts.rules[1] (both)" in text and "exactly one of `above` or `below`" in text
    assert "alerts.channels.hook" in text
    _write(
        tmp_path,
        {"rules": [{"name": "x", "metric": "m", "subject": "sink", "above": 1, "channels": ["pager"]}]},
    )
    with pytest.raises(SpecErrors, match=r"rule 'x' names unknown channel 'pager'"):
        load_alert_config(tmp_path)
    _write(tmp_path, {"channels": {"mail": {"kind": "email", "smtp_host": "h", "sender": "a@b", "recipients": ["c@d"],
                                            "username": "u"}}})  # fmt: skip
    with pytest.raises(SpecErrors, match="username and password go together"):
        load_alert_config(tmp_path)


@pytest.fixture
def stores(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    return MetricsStore(url), AlertHistory(url)


def _config(**rule) -> AlertConfig:
    base = {"name": "sink_lag", "metric": "lag_messages", "subject": "sink", "above": 100, "for": 60,
            "resolve_after": 30}  # fmt: skip
    return AlertConfig(AlertsFile.model_validate({"defaults": {"renotify_after": 600, "stale_after": 120},
                                                  "rules": [{**base, **rule}]}))  # fmt: skip


def _lag(store, at: float, value: float) -> None:
    store.record([Sample(at, "p", "sink", "lag_messages", value)])


def _kinds(transitions) -> list[str]:
    return [t.kind for t in transitions if t.rule.name == "sink_lag"]


def test_a_rule_fires_only_after_its_duration_and_resolves_once_clear(stores):
    store, history = stores
    config = _config()
    t0 = 1_000_000.0
    for i in range(0, 60, 20):  # above the threshold for 40 s: not yet
        _lag(store, t0 + i, 500)
        assert _kinds(evaluate(config, ["p"], store, history, t0 + i)) == []
    _lag(store, t0 + 60, 500)
    fired = [t for t in evaluate(config, ["p"], store, history, t0 + 60) if t.rule.name == "sink_lag"]
    assert [t.kind for t in fired] == ["triggered"] and fired[0].alert.value == 500
    assert "lag_messages = 500" in fired[0].alert.message
    # held: no second alert; clear for less than resolve_after: still open (a flap is not two incidents)
    _lag(store, t0 + 80, 50)
    assert _kinds(evaluate(config, ["p"], store, history, t0 + 80)) == []
    _lag(store, t0 + 90, 700)
    assert _kinds(evaluate(config, ["p"], store, history, t0 + 90)) == []
    assert len(history.listing()) == 1
    _lag(store, t0 + 100, 10)
    _lag(store, t0 + 130, 10)
    resolved = evaluate(config, ["p"], store, history, t0 + 130)
    assert _kinds(resolved) == ["resolved"] and history.listing() == []
    alert = history.listing(include_resolved=True)[0]
    assert alert.triggered_at == t0 + 60 and alert.resolved_at == t0 + 130


def test_reminders_follow_the_interval_and_stop_when_acknowledged(stores):
    store, history = stores
    config = _config(**{"for": 0})
    t0 = 2_000_000.0
    _lag(store, t0, 500)
    (opened,) = evaluate(config, ["p"], store, history, t0)
    history.mark_notified(opened.alert.id, t0)
    _lag(store, t0 + 300, 500)
    assert _kinds(evaluate(config, ["p"], store, history, t0 + 300)) == []
    _lag(store, t0 + 600, 500)
    assert _kinds(evaluate(config, ["p"], store, history, t0 + 600)) == ["reminder"]
    history.mark_notified(opened.alert.id, t0 + 600)
    history.acknowledge(opened.alert.id, "ana")
    _lag(store, t0 + 1300, 500)
    assert _kinds(evaluate(config, ["p"], store, history, t0 + 1300)) == []
    assert history.get(opened.alert.id).state == "acknowledged"


def test_stale_figures_neither_open_nor_resolve(stores):
    store, history = stores
    config = _config(**{"for": 0})
    t0 = 3_000_000.0
    _lag(store, t0, 500)
    assert _kinds(evaluate(config, ["p"], store, history, t0 + 121)) == []  # older than stale_after
    assert _kinds(evaluate(config, ["p"], store, history, t0)) == ["triggered"]
    # the collector stops: the alert stays open rather than resolving on no evidence
    assert _kinds(evaluate(config, ["p"], store, history, t0 + 5000)) == []
    assert len(history.listing()) == 1


def test_table_rules_read_every_table_and_honour_the_selectors(stores):
    store, history = stores
    t0 = 4_000_000.0
    store.record([Sample(t0, "p", "public.orders", "lag_messages", 900),
                  Sample(t0, "p", "public.audit", "lag_messages", 900)])  # fmt: skip
    config = _config(subject="table", tables=["public.orders"], **{"for": 0})
    fired = [t.alert.subject for t in evaluate(config, ["p"], store, history, t0)]
    assert fired == ["public.orders"]
    assert evaluate(_config(pipelines=["other_*"], **{"for": 0}), ["p"], store, history, t0) == []


def test_migrations_upgrade_an_older_database_once(tmp_path, monkeypatch):
    import cdc_platform.platform_db as platform_db

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    # a database written by the version that had only the alert tables (migration 1), holding an alert
    monkeypatch.setattr(platform_db, "MIGRATIONS", platform_db.MIGRATIONS[:1])
    assert migrate(engine) == 1
    with engine.begin() as conn:
        conn.execute(ALERTS.insert().values(rule="r", pipeline="p", subject="sink", severity="warning",
                                            message="m", triggered_at=1.0))  # fmt: skip
    assert "cdc_audit_log" not in sa.inspect(engine).get_table_names()
    monkeypatch.undo()
    newest = platform_db.MIGRATIONS[-1][0]
    assert newest >= 3 and migrate(engine) == newest and migrate(engine) == newest
    with engine.connect() as conn:
        assert conn.execute(sa.select(VERSIONS.c.version)).scalar_one() == newest
        assert conn.execute(sa.select(sa.func.count()).select_from(ALERTS)).scalar_one() == 1  # kept
    tables = set(sa.inspect(engine).get_table_names())
    assert {"cdc_audit_log", "cdc_connection_tests", "cdc_deployed_tables", "cdc_pipeline_control"} <= tables


def test_a_paused_pipeline_raises_no_failure_alert_but_its_slot_still_alerts(stores):
    """Paused on purpose: its connectors not running, lag and latency are not incidents; the slot
    holding WAL on the source's disk is, and more so while nothing reads it."""
    store, history = stores
    config = AlertConfig(AlertsFile.model_validate({}))  # the built-in rules
    now = 1_000_000.0
    for pipeline in ("paused", "running"):
        store.record([Sample(now, pipeline, "sink", "connector_running", 0.0),
                      Sample(now, pipeline, "sink", "lag_messages", 50_000.0),
                      Sample(now, pipeline, "source", "slot_wal_status_ok", 0.0)])  # fmt: skip
    opened = evaluate(config, ["paused", "running"], store, history, now, held={"paused"})
    rules = {(t.alert.pipeline, t.rule.name) for t in opened if t.kind == "triggered"}
    assert ("paused", "slot_wal_at_risk") in rules and ("running", "slot_wal_at_risk") in rules
    assert ("running", "sink_connector_failed") in rules
    assert not [r for p, r in rules if p == "paused" and r != "slot_wal_at_risk"], rules


def test_the_shipped_example_file_is_valid(tmp_path):
    from pathlib import Path

    example = Path(__file__).parents[2] / "resources" / "alerts.yaml.example"
    (tmp_path / "alerts.yaml").write_text(example.read_text())
    config = load_alert_config(tmp_path)
    assert set(config.channels) == {"oncall", "slack"} and config.defaults.renotify_after == 3600
    assert "dead_letter_records" not in {r.name for r in config.rules}


def test_a_check_that_could_not_read_a_side_records_no_outcome_for_the_alert_rules(tmp_path, monkeypatch):
    """An unreachable database is not "row counts differ": only measured outcomes become figures."""
    import dagster as dg

    from cdc_platform.dagster.quality_checks import record_outcome
    from cdc_platform.health.metrics_store import MetricsStore

    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'm.sqlite'}")
    key = dg.AssetKey(["tgt", "s", "t"])
    unread = dg.AssetCheckResult(asset_key=key, check_name="row_count_parity", passed=False,
                                 metadata={"error": "OperationalError: connection refused"})  # fmt: skip
    measured = dg.AssetCheckResult(asset_key=key, check_name="row_count_parity", passed=False,
                                   metadata={"difference": 3})  # fmt: skip
    record_outcome(None, "p", "s.t", "row_count_parity", unread)
    assert MetricsStore().series("p", "s.t", "row_count_parity_ok", since=0) == []
    record_outcome(None, "p", "s.t", "row_count_parity", measured)
    assert [v for _, v in MetricsStore().series("p", "s.t", "row_count_parity_ok", since=0)] == [0.0]
