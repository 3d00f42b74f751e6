"""What the heartbeat adds to a plan: captured, published, routed and created on both sides, or nothing."""

from __future__ import annotations

import pytest
import yaml

from cdc_platform.pipeline.heartbeat import HEARTBEAT_TABLE_KEY, heartbeat_from_recorded
from cdc_platform.pipeline.plan import build_plan
from cdc_platform.schema.model import is_heartbeat_table
from cdc_platform.specs.loader import load_specs
from tests.unit.test_definitions_graph import _table


def _plan(
    tmp_path, monkeypatch, source_kind: str, target_kind: str, mode: str = "full_load_and_cdc", **options
):
    monkeypatch.setenv("PW", "x")
    conn = {"host": "h", "port": 1, "database": "db", "username": "cdc", "password": {"env": "PW"}}
    (tmp_path / "connections.yaml").write_text(yaml.safe_dump({"connections": {
        "src": {**conn, "kind": source_kind}, "tgt": {**conn, "kind": target_kind}}}))  # fmt: skip
    (tmp_path / "pipelines.yaml").write_text(yaml.safe_dump({"pipelines": [
        {"name": "p", "source": "src", "target": "tgt", "target_schema": "replica", "mode": mode,
         "tables": {"names": ["public.a", "public.b"]}, "options": options}]}))  # fmt: skip
    specs = load_specs(tmp_path)
    return build_plan(specs, specs.pipelines["p"].spec, [_table("a"), _table("b")], "k:9092")


def test_a_postgres_pipeline_captures_routes_and_creates_its_heartbeat(tmp_path, monkeypatch):
    plan = _plan(tmp_path, monkeypatch, "postgresql", "postgresql", heartbeat_interval_ms=2000)
    beat = plan.heartbeat
    assert beat is not None and beat.source_qualified == "public.cdc_heartbeat_p"
    source = plan.source_config
    assert source["table.include.list"].split(",")[-1] == "public\\.cdc_heartbeat_p"
    assert source["heartbeat.action.query"].startswith('INSERT INTO "public"."cdc_heartbeat_p"')
    assert source[HEARTBEAT_TABLE_KEY] == "public.cdc_heartbeat_p"
    assert plan.published_extra == ("public.cdc_heartbeat_p",)
    assert dict(plan.routes)["p.public.cdc_heartbeat_p"] == "cdc_heartbeat_p"
    assert "p.public.cdc_heartbeat_p" in plan.sink_config["topics"].split(",")
    # the copy never touches it; the target gets the twin with its applied_at stamp
    assert [j.table.name for j in plan.jobs] == ["a", "b"]
    assert any("cdc_heartbeat_p" in stmt and "applied_at" in stmt for stmt in plan.ddl)
    assert any("CREATE OR REPLACE TRIGGER" in stmt for stmt in plan.ddl)


@pytest.mark.parametrize("kind", ["mysql", "mariadb"])
def test_a_binlog_source_gets_server_heartbeats_at_the_heartbeat_interval(tmp_path, monkeypatch, kind):
    plan = _plan(tmp_path, monkeypatch, kind, "postgresql", heartbeat_interval_ms=3000)
    assert plan.source_config["connect.keep.alive.interval.ms"] == "3000"
    assert "ON DUPLICATE KEY UPDATE" in plan.source_config["heartbeat.action.query"]


def test_heartbeat_can_be_switched_off_and_is_absent_where_unsupported(tmp_path, monkeypatch):
    off = _plan(tmp_path, monkeypatch, "postgresql", "postgresql", heartbeat_table=False)
    assert off.heartbeat is None and "heartbeat.action.query" not in off.source_config
    assert not any("cdc_heartbeat" in t for t, _ in off.routes) and len(off.ddl) == 3
    sqlserver = _plan(tmp_path, monkeypatch, "sqlserver", "postgresql", "cdc_only")
    assert sqlserver.heartbeat is None


def test_teardown_reads_the_recorded_table_back_and_discovery_skips_heartbeats():
    beat = heartbeat_from_recorded("p", "shop.cdc_heartbeat_p")
    assert (
        beat is not None
        and beat.drop_source_sql("mariadb") == "DROP TABLE IF EXISTS `shop`.`cdc_heartbeat_p`"
    )
    assert heartbeat_from_recorded("p", "shop.orders") is None  # never drops a table it did not create
    assert is_heartbeat_table("cdc_heartbeat_x") and not is_heartbeat_table("heartbeat")


def test_tuning_overrides_land_on_top_of_the_generated_connector_configs(tmp_path, monkeypatch):
    assert _plan(tmp_path, monkeypatch, "postgresql", "mariadb").source_config["poll.interval.ms"] == "10"
    assert _plan(tmp_path, monkeypatch, "mariadb", "postgresql").source_config["poll.interval.ms"] == "50"
    plan = _plan(tmp_path, monkeypatch, "postgresql", "mariadb",
                 source_overrides={"poll.interval.ms": "50", "producer.override.linger.ms": "1"},
                 sink_overrides={"batch.size": "4000", "consumer.override.fetch.max.wait.ms": "20"})  # fmt: skip
    assert plan.source_config["poll.interval.ms"] == "50"
    assert plan.source_config["producer.override.linger.ms"] == "1"
    assert plan.sink_config["batch.size"] == "4000"
    assert plan.sink_config["consumer.override.fetch.max.wait.ms"] == "20"
    assert plan.sink_config["insert.mode"] == "upsert"  # what the platform owns stays


def test_the_copy_jobs_carry_the_pipelines_full_load_streams(tmp_path, monkeypatch):
    """``options.full_load_streams`` (default 2) reaches every table's copy; 0 is refused by name."""
    assert {j.streams for j in _plan(tmp_path, monkeypatch, "postgresql", "mariadb").jobs} == {2}
    plan = _plan(tmp_path, monkeypatch, "postgresql", "mariadb", full_load_streams=4)
    assert {j.streams for j in plan.jobs} == {4}
    with pytest.raises(Exception, match="full_load_streams"):
        _plan(tmp_path, monkeypatch, "postgresql", "mariadb", full_load_streams=0)
