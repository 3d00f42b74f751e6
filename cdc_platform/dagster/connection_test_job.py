"""Connection tests as a Dagster job (hourly by default, or on demand): every connection the
pipelines use is tested, the result is stored as history, shown on the connection's source-table
assets, and written to the time series so the `connection_test_failed` alert rules see it."""

import time
from dataclasses import dataclass

import dagster as dg

from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.health.metrics_store import MetricsStore, Sample
from cdc_platform.ops.connection_test import check_connection, record_test


@dataclass(frozen=True)
class ConnectionAssets:
    """One connection: the assets that show its tests, and the pipelines that use it (by role)."""

    connection: str
    assets: tuple[dg.AssetKey, ...]
    source_of: tuple[str, ...]
    target_of: tuple[str, ...]


def build_connection_test_job(name: str, connections: list[ConnectionAssets]) -> dg.JobDefinition:
    @dg.op(name=f"{name}_op", description="Test every connection the pipelines use: reachable, login, "
           "privileges and server settings each pipeline needs.")  # fmt: skip
    def _test(context: dg.OpExecutionContext, cdc_settings: CdcSettingsResource):
        # a generator: observations yielded as they happen survive the failure raised at the end,
        # where ones logged with context.log_event would be dropped with the failed step
        specs = cdc_settings.specs()
        failed, samples, now = [], [], time.time()
        for c in connections:
            if c.connection not in specs.connections:
                continue
            result = check_connection(specs, c.connection)
            record_test(result, now)
            bad = [ch for ch in result.checks if not ch.ok]
            summary = "ok" if result.ok else "; ".join(f"{ch.check}: {ch.detail} -> {ch.fix}" for ch in bad)
            metadata = {
                "connection": c.connection, "connection_ok": float(result.ok),
                "checks": dg.MetadataValue.json([ch.__dict__ for ch in result.checks]),
                **({"response_ms": result.response_ms} if result.response_ms is not None else {}),
            }  # fmt: skip
            for key in c.assets:
                yield dg.AssetObservation(asset_key=key, metadata=metadata)
            samples += [
                Sample(now, p, "source", "source_connection_ok", float(result.ok)) for p in c.source_of
            ]
            samples += [Sample(now, p, "sink", "target_connection_ok", float(result.ok)) for p in c.target_of]
            (context.log.info if result.ok else context.log.error)(f"connection {c.connection}: {summary}")
            if not result.ok:
                failed.append(c.connection)
        MetricsStore().record(samples)
        if failed:
            raise dg.Failure(f"connection test failed for {', '.join(failed)} (the checks and fixes are in the log "
                             "and on the source assets)")  # fmt: skip
        yield dg.Output(None)

    @dg.job(name=name, description="Tests every connection the pipelines use; results on the source-table "
            "assets and in `cdc-platform test-connection`.", tags={"cdc/kind": "connection-test"})  # fmt: skip
    def _job():
        _test()

    return _job


def build_connection_test_schedule(job: dg.JobDefinition, cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(name=f"{job.name}_schedule", job=job, cron_schedule=cron,
                                 default_status=dg.DefaultScheduleStatus.RUNNING,
                                 description="Tests the pipelines' connections; a failure opens an alert.")  # fmt: skip
