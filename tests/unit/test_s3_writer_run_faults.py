"""A writer run whose flush fails as a whole (Kafka unreachable: a closed port) stays up: the tables'
``changes_written`` check turns red once, with the reason, and the run goes on flushing until it is
told to stop. Executed as a Dagster run of the writer job (``execute_in_process``); no service is
needed, the failure is the point."""

from __future__ import annotations

import dagster as dg

from cdc_platform.dagster import s3_writer_runs
from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.dagster.s3_flush import S3Pipeline, S3TableAsset
from cdc_platform.pipeline.deployed import record_deployed
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.types import CanonicalType
from tests.pipeline_support import write_specs
from tests.unit.test_lake_parts import LAKE
from tests.unit.test_specs import CONN


def test_a_writer_run_survives_a_failed_flush_and_says_so_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_METRICS_URL", f"sqlite:///{tmp_path / 'platform.sqlite'}")
    monkeypatch.setenv("SRC_PW", "x")
    monkeypatch.setenv("K", "k")
    monkeypatch.setenv("S", "s")
    specs = write_specs(tmp_path / "specs", {"src": CONN, "lake": LAKE},
                        [{"name": "p1", "source": "src", "target": "lake", "target_schema": "replica",
                          "tables": {"names": ["public.t"]}, "options": {"topic_partitions": 2, "s3_writer_runs": 2}}])  # fmt: skip
    table = Table("public", "t", (Column("id", CanonicalType("integer"), False, "int"),), ("id",))
    record_deployed("p1", [table])
    key = dg.AssetKey(["lake", "replica", "t_changes"])
    pipeline = S3Pipeline(
        "p1", "postgresql", "lake", (S3TableAsset("public.t", "p1.public.t", "replica", "t", key),)
    )
    job = s3_writer_runs.build_s3_writer_job("cdc_s3_writer_run", [pipeline])
    checks = iter(range(2))
    # two passes of the loop (two failed flushes), then the run is told to stop (as a pause would)
    monkeypatch.setattr(
        s3_writer_runs, "_why_stop", lambda *a: None if next(checks, None) is not None else "told to stop"
    )
    monkeypatch.setattr(s3_writer_runs, "time", type("T", (), {"sleep": staticmethod(lambda s: None),
                                                               "time": staticmethod(__import__("time").time)}))  # fmt: skip
    settings = CdcSettingsResource(specs_dir=str(specs.directory), kafka_bootstrap="127.0.0.1:9")
    result = job.execute_in_process(
        run_config={"ops": {"cdc_s3_writer_run_loop": {"config": {"pipeline": "p1", "index": 1, "of": 2}}}},
        resources={"cdc_settings": settings},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success, "the run stays up through failed flushes and ends when told to"
    evaluations = [e.event_specific_data for e in result.all_events
                   if e.event_type_value == "ASSET_CHECK_EVALUATION"]  # fmt: skip
    assert len(evaluations) == 1, "said once, not at every failed flush"
    (failed,) = evaluations
    assert not failed.passed and failed.metadata["state"].value == "flush failed"
    assert "changes wait in Kafka" in failed.description and "KafkaException" in failed.description
    assert s3_writer_runs.lease_renewed_at("p1", 1, 2) is not None, "the lease is renewed: the run is alive"
