"""Every figure the metrics job plots says what it is and in which unit."""

from __future__ import annotations

import dagster as dg

from cdc_platform.dagster.metrics_job import (
    PIPELINE_METRICS,
    SINK_METRICS,
    SOURCE_METRICS,
    TABLE_METRICS,
    WatchedAssets,
    observations,
)
from cdc_platform.health.collect import PipelineWatch
from cdc_platform.health.glossary import GLOSSARY, legend
from cdc_platform.health.metrics_store import Sample


def test_every_collected_metric_has_a_unit_and_a_meaning():
    emitted = {*TABLE_METRICS, *PIPELINE_METRICS, *SOURCE_METRICS, *SINK_METRICS, "dlq_messages",
               "dagster/row_count", "state_code"}  # fmt: skip
    assert sorted(emitted - set(GLOSSARY)) == []
    assert all(unit and meaning for unit, meaning in GLOSSARY.values())


def test_observations_describe_the_figures_they_carry_and_nothing_else():
    watch = PipelineWatch("p", (), "connect-p-sink", None, None, None, None, None)
    table = dg.AssetKey(["tgt", "s", "t"])
    assets = WatchedAssets(watch, {"s.t": table}, dg.AssetKey(["p", "source_connector"]),
                           dg.AssetKey(["p", "sink_connector"]))  # fmt: skip
    samples = [
        Sample(0.0, "p", "s.t", "lag_messages", 3.0),
        Sample(0.0, "p", "pipeline", "latency_seconds", 0.2),
    ]
    by_key = {e.asset_key: e for e in observations(assets, samples, {})}
    described = by_key[table].description
    assert "- `lag_messages` (changes): changes in Kafka the sink has not applied yet" in described
    assert "`latency_seconds` (s):" in described and "slot_" not in described
    assert legend(["no_such_figure"]) == ""
