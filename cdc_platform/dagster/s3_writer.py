"""The S3 writer: a sensor that flushes every S3 pipeline's new changes to S3 (Parquet change files
or the Iceberg change log).

Run-less on purpose: each tick writes what arrived since the last one and reports it as a
materialization of the table's asset (files, rows, bytes, committed offset, lag, rules applied),
so an asset's history reads as the table's change log and its numbers plot over time, without a
run per batch crowding the runs page. The tick is bounded (``TICK_BUDGET_SECONDS``) to stay inside
Dagster's sensor timeout; what is left waits for the next tick, whose interval is configurable.
One pipeline's failure is logged and does not stop the others.

A pipeline with ``options.s3_writer_runs`` is written by that many long-running runs of the S3
writer job instead; for it the sensor only keeps those runs alive (cdc_platform/dagster/s3_writer_runs.py).
"""

import json

import dagster as dg

from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.dagster.s3_flush import (
    CHECK_NAME,
    FLUSH_FAILED,
    S3Pipeline,
    evaluation,
    flush_failed,
    flush_pipeline,
    materialization,
    record_pipeline_heartbeat,
)
from cdc_platform.dagster.s3_writer_runs import keep_writer_runs
from cdc_platform.pipeline.deployed import deployed_tables
from cdc_platform.pipeline.lifecycle import held

#: seconds of one tick's flushing, shared by the pipelines (Dagster's sensor timeout is 60 s)
TICK_BUDGET_SECONDS = 40.0


def build_s3_writer_sensor(
    name: str, pipelines: list[S3Pipeline], interval_seconds: int, writer_job: dg.JobDefinition
) -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=[writer_job],
        description="Writes the S3 pipelines' captured changes to S3 and commits their offsets; for pipelines "
        "with options.s3_writer_runs, keeps their writer runs alive instead.",
    )
    def _writer(context: dg.SensorEvaluationContext, cdc_settings: CdcSettingsResource):
        # lazy: keeps pyarrow off the code location's load path
        from cdc_platform.s3.changes import consumer_group

        specs = cdc_settings.specs()
        #: asset key -> the last outcome reported ("ok", "waiting" or the error): a check evaluation
        #: is recorded when it changes, not every tick
        reported: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        events: list = []
        failures: list[str] = []
        #: tables stopped at a change they cannot write: red on their check, not a failed tick
        stuck: list[str] = []
        notes: list[str] = []
        paused = held(p.pipeline for p in pipelines)
        for name, control in sorted(paused.items()):
            notes.append(f"{name} is {control.describe()}: its changes wait in Kafka until it is resumed")
        live = [p for p in pipelines if p.pipeline in specs.pipelines and p.pipeline not in paused]
        runs = {p.pipeline: specs.pipelines[p.pipeline].spec.options.s3_writer_runs for p in live}
        requests: list[dg.RunRequest] = []
        for p in [p for p in live if runs[p.pipeline]]:
            if not deployed_tables(p.pipeline):
                notes.append(
                    f"{p.pipeline} is not deployed: its {runs[p.pipeline]} writer run(s) start once it is"
                )
                continue
            requests += keep_writer_runs(context.instance, p.pipeline, runs[p.pipeline], writer_job.name,
                                         context.log.warning)  # fmt: skip
        live = [p for p in live if not runs[p.pipeline]]
        for p in live:
            try:
                flushed, waiting = flush_pipeline(p, specs, cdc_settings.kafka_bootstrap, context.log.info,
                                                  TICK_BUDGET_SECONDS / max(len(live), 1))  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - one pipeline's failure must not stop the others
                failures.append(f"{p.pipeline}: {type(exc).__name__}: {exc}")
                context.log.error(
                    f"S3 writer, pipeline {p.pipeline} (group {consumer_group(p.pipeline)}): {exc}"
                )
                for t in p.tables:  # red on the tables once, when it starts; green at the next good flush
                    if reported.get(t.key.to_user_string()) != FLUSH_FAILED:
                        reported[t.key.to_user_string()] = FLUSH_FAILED
                        events.append(flush_failed(t, f"{type(exc).__name__}: {exc}"))
                continue
            record_pipeline_heartbeat(p, cdc_settings.kafka_bootstrap, context.log.warning)
            if waiting:
                notes.append(waiting)
                for t in p.tables:
                    if t.qualified in waiting and reported.get(t.key.to_user_string()) != "waiting":
                        reported[t.key.to_user_string()] = "waiting"
                        events.append(evaluation(t, None, waiting))
            for asset, location, result in flushed:
                if result.files or result.snapshots or result.recovered:
                    events.append(materialization(asset, result, location))
                outcome = result.error or "ok"
                if reported.get(asset.key.to_user_string()) != outcome:
                    reported[asset.key.to_user_string()] = outcome
                    events.append(evaluation(asset, result))
                if result.error:
                    stuck.append(result.error)
        cursor = json.dumps(reported, sort_keys=True)
        if failures and not events:
            raise RuntimeError("the S3 writer wrote nothing: " + "; ".join(failures))
        if stuck:
            notes.insert(0, f"{len(stuck)} table(s) stopped at a change they cannot write (see their "
                            f"{CHECK_NAME} check): " + "; ".join(stuck))  # fmt: skip
        if not events and not requests:
            return dg.SensorResult(skip_reason=" ".join(notes) or "no new changes for the S3 pipelines",
                                   cursor=cursor)  # fmt: skip
        return dg.SensorResult(asset_events=events, run_requests=requests, cursor=cursor)

    return _writer


def build_s3_writer_checks(p: S3Pipeline) -> dg.AssetChecksDefinition:
    """``changes_written`` on demand: the pending changes decoded as the writer would, nothing written."""

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                CHECK_NAME,
                asset=t.key,
                description=f"Every change captured from {t.qualified} is written to S3 or waits for the "
                "next flush; none is stuck behind a value the writer cannot write. Evaluated by the "
                "S3 writer sensor when it changes, or on demand (a dry run of the pending changes).",
            )
            for t in p.tables
        ],  # fmt: skip
        name=f"{p.pipeline}_changes_written",
        can_subset=True,
    )
    def _checks(context: dg.AssetCheckExecutionContext, cdc_settings: CdcSettingsResource):
        specs = cdc_settings.specs()
        selected = {k.asset_key for k in context.selected_asset_check_keys}
        chosen = S3Pipeline(
            p.pipeline, p.source_kind, p.target, tuple(t for t in p.tables if t.key in selected)
        )
        flushed, waiting = flush_pipeline(chosen, specs, cdc_settings.kafka_bootstrap, context.log.info, 30.0,
                                          dry_run=True)  # fmt: skip
        done = set()
        for asset, _, result in flushed:
            done.add(asset.key)
            e = evaluation(asset, result)
            yield dg.AssetCheckResult(asset_key=e.asset_key, check_name=CHECK_NAME, passed=e.passed,
                                      severity=e.severity, metadata=e.metadata, description=e.description)  # fmt: skip
        for t in chosen.tables:
            if t.key not in done:
                yield dg.AssetCheckResult(asset_key=t.key, check_name=CHECK_NAME, passed=False,
                                          severity=dg.AssetCheckSeverity.WARN, description=waiting)  # fmt: skip

    return _checks
