"""S3 writers as long-running Dagster runs: one pipeline's changes written by several processes.

The S3 writer sensor writes every S3 pipeline from the daemon's process, one tick at a time; that
is one process for all of them. A pipeline with ``options.s3_writer_runs: N`` is written instead by N
runs of the ``s3_writer`` job, each taking the partitions ``p % N == index`` of every table topic
(cdc_platform/s3/changes.py, ``WriterShare``) and flushing them in a loop. They are ordinary Dagster
runs: listed on the runs page with their logs, each flush a materialization of the table's asset,
stopped by terminating the run, and started wherever the instance's run launcher starts runs (its
own container, on another machine, with a Kubernetes or ECS launcher).

The sensor keeps them alive: each tick it starts the shares that have no run in progress. A run
renews a lease in the platform's store after every flush; a run still "in progress" whose lease is
older than ``LEASE_SECONDS`` (its process was killed, its machine lost: nothing told Dagster) is
marked failed and replaced. A replaced run that was only slow cannot write an offset twice: the change
log's appends are fenced by the offsets they record.
"""

import time
from collections.abc import Callable, Iterator

import dagster as dg

from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.dagster.s3_flush import (
    FLUSH_FAILED,
    S3Pipeline,
    evaluation,
    flush_failed,
    flush_pipeline,
    materialization,
    record_pipeline_heartbeat,
)
from cdc_platform.health.metrics_store import MetricsStore, Sample
from cdc_platform.pipeline.deployed import deployed_tables
from cdc_platform.pipeline.lifecycle import held

#: tags of a writer run: its pipeline and its share (``<index>/<of>``)
PIPELINE_TAG, SHARE_TAG = "cdc/pipeline", "cdc/s3-writer-share"
#: a writer run whose last flush is older than this (and that started before it) is taken for dead
LEASE_SECONDS = 180.0
#: seconds one flush of a run may read for (then it writes what it read)
FLUSH_BUDGET_SECONDS = 20.0
#: the metric a writer run renews after every flush (subject ``s3_writer/<index>of<of>``)
LEASE_METRIC = "writer_flushed_at"
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED]  # fmt: skip


def lease_subject(index: int, of: int) -> str:
    return f"s3_writer/{index}of{of}"


def renew_lease(pipeline: str, index: int, of: int, now: float | None = None) -> None:
    now = time.time() if now is None else now
    MetricsStore().record([Sample(now, pipeline, lease_subject(index, of), LEASE_METRIC, now)])


def lease_renewed_at(pipeline: str, index: int, of: int) -> float | None:
    found = MetricsStore().latest(pipeline).get((lease_subject(index, of), LEASE_METRIC))
    return None if found is None else found[1]


class WriterRunConfig(dg.Config):
    pipeline: str
    index: int
    of: int
    #: seconds between flushes when the last one found nothing new
    idle_seconds: float = 5.0


def build_s3_writer_job(name: str, pipelines: list[S3Pipeline]) -> dg.JobDefinition:
    by_name = {p.pipeline: p for p in pipelines}

    @dg.op(
        name=f"{name}_loop", description="Writes one share of a pipeline's partitions until it is stopped."
    )
    def _loop(context: dg.OpExecutionContext, config: WriterRunConfig, cdc_settings: CdcSettingsResource):
        if config.pipeline not in by_name:
            raise dg.Failure(f"pipeline {config.pipeline!r} has no S3 target in this code location "
                             f"(S3 pipelines: {', '.join(sorted(by_name)) or 'none'})")  # fmt: skip
        if not 0 <= config.index < config.of:
            raise dg.Failure(f"share index {config.index} is not one of 0..{config.of - 1}")
        yield from write_share(context, by_name[config.pipeline], config, cdc_settings)
        yield dg.Output(None)

    return dg.JobDefinition(
        name=name,
        graph_def=dg.GraphDefinition(name=name, node_defs=[_loop]),
        description="One S3 writer run: one share of a pipeline's table partitions, written until the run "
        "is terminated, the pipeline is paused, or its options.s3_writer_runs changes. Started and kept "
        "alive by the S3 writer sensor for pipelines with options.s3_writer_runs.",
        tags={"dagster/max_retries": "0"},  # the sensor replaces a failed run; a retry would be a second one
    )


def write_share(context: dg.OpExecutionContext, p: S3Pipeline, config: WriterRunConfig,
                cdc_settings: CdcSettingsResource) -> Iterator:  # fmt: skip
    """The run's loop: flush, report, renew the lease; ends when it should hand over (the reason logged)."""
    # lazy: keeps pyarrow off the code location's load path
    from cdc_platform.s3.changes import WriterShare

    share = WriterShare(config.index, config.of)
    reported: dict[str, str] = {}
    context.log.info(f"S3 writer {share} of pipeline {p.pipeline}: started")
    while True:
        why = _why_stop(p.pipeline, config.of, cdc_settings)
        if why:
            context.log.info(f"S3 writer {share} of pipeline {p.pipeline}: stops, {why}")
            return
        specs = cdc_settings.specs()
        try:
            flushed, _ = flush_pipeline(p, specs, cdc_settings.kafka_bootstrap, context.log.info,
                                        FLUSH_BUDGET_SECONDS, share=share)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - S3 or Kafka unreachable: nothing lost, tried again
            # the run stays (a failed run would be replaced at every tick while the endpoint is down);
            # red on the tables once, green again at the next good flush
            message = f"{type(exc).__name__}: {exc}"
            newly = [t for t in p.tables if reported.get(t.key.to_user_string()) != FLUSH_FAILED]
            if newly:
                context.log.error(f"S3 writer {share} of pipeline {p.pipeline}: the flush failed: {message}")
            for t in newly:
                reported[t.key.to_user_string()] = FLUSH_FAILED
                context.log_event(flush_failed(t, message))
            flushed = []
        renew_lease(p.pipeline, config.index, config.of)
        wrote = False
        for asset, location, result in flushed:
            if result.files or result.snapshots or result.recovered:
                wrote = True
                yield materialization(asset, result, location, share=str(share))
            outcome = result.error or "ok"
            if reported.get(asset.key.to_user_string()) != outcome:  # said once, not every flush
                reported[asset.key.to_user_string()] = outcome
                context.log_event(evaluation(asset, result))
                if result.error:
                    context.log.error(f"S3 writer {share} of pipeline {p.pipeline}: {result.error}")
        if config.index == 0:
            record_pipeline_heartbeat(p, cdc_settings.kafka_bootstrap, context.log.warning)
        if not wrote:
            time.sleep(config.idle_seconds)


def _why_stop(pipeline: str, of: int, cdc_settings: CdcSettingsResource) -> str | None:
    control = held([pipeline]).get(pipeline)
    if control is not None:
        return f"the pipeline is {control.describe()}"
    specs = cdc_settings.specs()
    if pipeline not in specs.pipelines:
        return "the pipeline is no longer in the specs"
    if not deployed_tables(pipeline):
        return "the pipeline is not deployed (torn down); the S3 writer sensor starts writers once it is"
    wanted = specs.pipelines[pipeline].spec.options.s3_writer_runs
    if wanted != of:
        return (f"the pipeline now asks for {wanted} writer run(s), not {of}; the S3 writer sensor starts "
                "the new ones")  # fmt: skip
    return None


def keep_writer_runs(instance: dg.DagsterInstance, pipeline: str, of: int, job_name: str,
                     log: Callable[[str], None], now: float | None = None) -> list[dg.RunRequest]:  # fmt: skip
    """Run requests for the shares of ``pipeline`` that have no live run; a run in progress whose
    lease expired is reported failed first (its process is gone without telling Dagster)."""
    now = time.time() if now is None else now
    requests = []
    for index in range(of):
        tags = {PIPELINE_TAG: pipeline, SHARE_TAG: f"{index}/{of}"}
        runs = instance.get_run_records(dg.RunsFilter(job_name=job_name, tags=tags, statuses=IN_PROGRESS))
        renewed = lease_renewed_at(pipeline, index, of) or 0.0
        alive = False
        for record in runs:
            started = record.start_time or record.create_timestamp.timestamp()
            if max(started, renewed) >= now - LEASE_SECONDS:
                alive = True
                continue
            message = (f"S3 writer {index + 1} of {of} of pipeline {pipeline}: no flush for "
                       f"{now - max(started, renewed):.0f} s (lease {LEASE_SECONDS:.0f} s); its process is "
                       "taken for gone and a new run replaces it")  # fmt: skip
            log(message)
            instance.report_run_failed(record.dagster_run, message)
        if not alive:
            requests.append(dg.RunRequest(
                run_key=f"{pipeline}:{index}/{of}:{now:.3f}", job_name=job_name, tags=tags,
                run_config={"ops": {f"{job_name}_loop": {"config": {"pipeline": pipeline, "index": index, "of": of}}}},
            ))  # fmt: skip
    return requests
