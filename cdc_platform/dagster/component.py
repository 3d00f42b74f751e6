"""CDC pipelines as a Dagster component: ``type: cdc_platform.CdcPipelineComponent`` in a ``defs.yaml``.

One instance turns the pipeline specs of a specs directory (all of them, or the ones it names)
into definitions: each pipeline's assets, its teardown job, and the resources they need. It is a
``StateBackedComponent`` because a schema + glob selection needs the source's catalog: the catalog
is discovered by ``dg utils refresh-defs-state`` or ``cdc-platform refresh`` and stored, and a
code-location load only reads what was stored, so it never waits on a database.
"""

from __future__ import annotations

import functools
import gc
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster.components import DefsStateConfig, DefsStateConfigArgs, ResolvedDefsStateConfig
from dagster_shared.serdes.objects.models.defs_state_info import DefsStateManagementType
from pydantic import BaseModel, Field, PrivateAttr

from cdc_platform.dagster.alert_sensor import build_acknowledge_job, build_alert_sensor
from cdc_platform.dagster.asset_specs import PipelineKeys, pipeline_specs
from cdc_platform.dagster.assets import build_all_assets, stored_plan
from cdc_platform.dagster.catalog import (
    PipelineCatalog,
    discover_catalog,
    read_catalog,
    state_key,
    write_catalog,
)
from cdc_platform.dagster.connect_health import (
    HealthSettings,
    WatchedConnector,
    build_connect_health_sensor,
    build_connector_checks,
)
from cdc_platform.dagster.connection_test_job import (
    ConnectionAssets,
    build_connection_test_job,
    build_connection_test_schedule,
)
from cdc_platform.dagster.lake_assets import CurrentStateTable, build_current_state_assets, build_merge_sensor
from cdc_platform.dagster.lake_checks import build_lake_checks
from cdc_platform.dagster.lifecycle_jobs import lifecycle_jobs_for
from cdc_platform.dagster.metrics_job import WatchedAssets, build_metrics_job, build_metrics_schedule
from cdc_platform.dagster.quality_checks import build_quality_checks, checked_tables
from cdc_platform.dagster.quality_schedules import CONSISTENCY_CHECKS, check_keys, quality_schedules
from cdc_platform.dagster.resources import CdcSettingsResource, register_loaded_specs
from cdc_platform.dagster.s3_flush import S3Pipeline, S3TableAsset
from cdc_platform.dagster.s3_writer import build_s3_writer_checks, build_s3_writer_sensor
from cdc_platform.dagster.s3_writer_runs import build_s3_writer_job
from cdc_platform.dagster.schema_sensor import build_apply_drift_job, build_schema_changes_sensor
from cdc_platform.dagster.table_health import WatchedTables
from cdc_platform.dagster.teardown_job import teardown_job_for
from cdc_platform.dagster.translator import CdcTranslator
from cdc_platform.engines.kinds import target_traits
from cdc_platform.health.collect import pipeline_watch
from cdc_platform.health.recovery import RecoveryPolicy
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.pipeline.plan import PipelineNames, PipelinePlan, table_topic, target_table_name
from cdc_platform.settings import load_stack_settings
from cdc_platform.specs.loader import Specs, default_specs_dir, load_specs


def pipeline_shard(name: str, count: int) -> int:
    """The shard (1..count) of a pipeline: a hash of its name alone, so it stays put when pipelines are
    added or removed (CRC-32, the same in every process, unlike Python's ``hash``)."""
    return zlib.crc32(name.encode()) % count + 1


@functools.cache
def _shared_resources(connect_url: str, specs_dir: str, kafka_bootstrap: str, jolokia_url: str = "") -> dict:
    """One object per setting: Dagster merges component definitions only when shared resources are
    the very same object."""
    return {
        "kafka_connect": KafkaConnectResource(url=connect_url),
        "cdc_settings": CdcSettingsResource(
            specs_dir=specs_dir, kafka_bootstrap=kafka_bootstrap, jolokia_url=jolokia_url
        ),
    }


def default_jolokia_url() -> str:
    """``CDC_JOLOKIA_URL`` (one agent per worker, comma-separated; empty to skip JMX metrics), else the
    local stack's workers' agents."""

    return os.environ.get("CDC_JOLOKIA_URL", load_stack_settings().jolokia_cluster_url)


def default_endpoints() -> tuple[str, str]:
    """Kafka Connect URL(s) and Kafka bootstrap: ``CDC_CONNECT_URL`` (workers comma-separated) and
    ``CDC_KAFKA_BOOTSTRAP``, else the local stack."""

    stack = load_stack_settings()
    return (
        os.environ.get("CDC_CONNECT_URL", stack.connect_cluster_url),
        os.environ.get("CDC_KAFKA_BOOTSTRAP", stack.kafka_bootstrap),
    )


class HealthConfig(dg.Model, dg.Resolvable):
    """How the Kafka Connect sensor watches and recovers connectors."""

    interval_seconds: int = Field(default=30, ge=5, description="How often the sensor polls Kafka Connect.")
    grace_seconds: float = Field(
        default=120, ge=0, description="PAUSED/UNASSIGNED longer than this is a WARN."
    )
    restart_first_delay_seconds: float = Field(
        default=30, ge=0, description="First restart of a FAILED task."
    )
    restart_max_attempts: int = Field(
        default=5, ge=0, description="Restarts in a row that each failed again at once before giving up."
    )
    restart_window_seconds: float = Field(
        default=3600, gt=0, description="Restarts older than this are forgotten."
    )
    restart_relapse_seconds: float = Field(
        default=120,
        gt=0,
        description="A failure this soon after a restart counts against the budget; a later one is a new "
        "incident with the whole budget.",
    )

    def settings(self) -> HealthSettings:
        policy = RecoveryPolicy(self.restart_first_delay_seconds, 2.0, self.restart_max_attempts,
                                self.restart_window_seconds, relapse=self.restart_relapse_seconds)  # fmt: skip
        return HealthSettings(self.interval_seconds, self.grace_seconds, policy)


class CdcPipelineScaffoldParams(BaseModel):
    specs_dir: str = Field(default="resources", description="Specs directory, relative to the project root.")
    pipelines: str | None = Field(
        default=None, description="Comma-separated pipelines to define (all when omitted)."
    )


class CdcPipelineScaffolder(dg.Scaffolder[CdcPipelineScaffoldParams]):
    """``dg scaffold defs cdc_platform.CdcPipelineComponent NAME [--specs-dir D] [--pipelines a,b]``
    writes a defs.yaml naming the specs directory and, optionally, the pipelines to define."""

    @classmethod
    def get_scaffold_params(cls) -> type[CdcPipelineScaffoldParams]:
        return CdcPipelineScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[CdcPipelineScaffoldParams]) -> None:
        attributes: dict = {"specs_dir": request.params.specs_dir}
        if request.params.pipelines:
            attributes["pipelines"] = [p.strip() for p in request.params.pipelines.split(",") if p.strip()]
        dg.scaffold_component(request, attributes)


@dg.scaffold_with(CdcPipelineScaffolder)
class CdcPipelineComponent(dg.StateBackedComponent, dg.Model, dg.Resolvable):
    """CDC pipelines (Debezium + Kafka Connect) from pipeline specs: full load, then change capture.

    Pipeline and connection specs stay YAML files in a specs directory (``connections.yaml`` and
    ``pipelines/*.yaml``) so the ``cdc-platform`` CLI, the teardown job and the assets read one
    validated source of truth; this component selects which of them become definitions here.
    """

    specs_dir: str | None = Field(
        default=None,
        description="Directory with connections.yaml and pipelines/*.yaml, relative to the project root. "
        "Default: $CDC_SPECS_DIR, else the project's resources/ directory.",
    )
    pipelines: list[str] | None = Field(
        default=None, description="Pipeline names to define here; all pipelines of the specs when omitted."
    )
    exclude_pipelines: list[str] = Field(
        default_factory=list,
        description="With `pipelines` omitted: pipelines not to define here, because another code location "
        "defines them (e.g. on a Connect cluster of their own). New pipelines of the specs then still land here.",
    )
    shard: str | None = Field(
        default=None,
        pattern=r"^[1-9][0-9]*/[1-9][0-9]*$",
        description="`K/N`: define only the pipelines whose name hashes to the K-th of N shards, so N code "
        "locations with `1/N` .. `N/N` and the same specs split every pipeline between them, each exactly once; a "
        "pipeline keeps its shard when others are added or removed. Combines with `exclude_pipelines`.",
    )
    connect_url: str | None = Field(
        default=None,
        description="Kafka Connect REST URL(s), comma-separated (default: $CDC_CONNECT_URL, else the local stack).",
    )
    jolokia_url: str | None = Field(
        default=None,
        description="Jolokia agent URL(s) of that cluster's workers, comma-separated, for Debezium's and "
        "Connect's metrics (default: $CDC_JOLOKIA_URL, else the local stack's).",
    )
    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers (default: local stack)."
    )
    health: HealthConfig = Field(
        default_factory=lambda: HealthConfig(),
        description="The Kafka Connect health sensor and its restarts.",
    )
    metrics_cron: str = Field(default="* * * * *", description="When the metrics collection runs (cron).")
    quality_cron: str = Field(
        default="*/15 * * * *",
        description="When the cheap data-quality checks (counts, drift, freshness) run.",
    )
    checksum_cron: str = Field(
        default="0 2 * * *",
        description="When the checksum reconciliation of every table runs (cron; nightly by default).",
    )
    connection_test_cron: str = Field(
        default="17 * * * *", description="When the pipelines' connections are tested (cron)."
    )
    s3_flush_seconds: int = Field(
        default=30, ge=5, description="How often the S3 writer flushes new changes into Parquet change files."
    )
    lake_merge_seconds: int = Field(
        default=60,
        ge=5,
        description="Iceberg targets: how often the current-state tables are checked for new changes in their "
        "change logs and merged (the most they trail the change log, plus one run).",
    )
    defs_state: ResolvedDefsStateConfig = Field(
        default_factory=lambda: DefsStateConfigArgs(
            management_type=DefsStateManagementType.LOCAL_FILESYSTEM, refresh_if_dev=False
        )
    )

    _project_root: Path | None = PrivateAttr(default=None)

    @classmethod
    def load(cls, attributes, context: dg.ComponentLoadContext) -> CdcPipelineComponent:
        component = super().load(attributes, context)
        # a relative specs_dir is relative to the project, wherever dg or dagster runs from
        component._project_root = context.project_root
        return component

    def resolved_specs_dir(self) -> Path | None:
        if self.specs_dir is None:
            return None
        path = Path(self.specs_dir)
        return path if path.is_absolute() else (self._project_root or Path.cwd()) / path

    def load_specs(self) -> Specs:
        specs = load_specs(self.resolved_specs_dir())
        if self.pipelines is not None and self.exclude_pipelines:
            raise ValueError("CdcPipelineComponent takes `pipelines` or `exclude_pipelines`, not both")
        if self.pipelines is not None and self.shard is not None:
            raise ValueError("CdcPipelineComponent takes `pipelines` or `shard`, not both")
        self.shard_of()  # a shard outside 1..N fails here, before anything is built
        unknown = sorted(set(self.pipelines or []) - set(specs.pipelines))
        unknown_excluded = sorted(set(self.exclude_pipelines) - set(specs.pipelines))
        for attribute, names in (("pipelines", unknown), ("exclude_pipelines", unknown_excluded)):
            if names:
                raise ValueError(
                    f"CdcPipelineComponent's {attribute} names pipelines {names} that {specs.directory} does "
                    f"not define (it defines {sorted(specs.pipelines)})"
                )
        return specs

    def selected_pipelines(self, specs: Specs) -> list[str]:
        """The pipelines this instance defines."""
        if self.pipelines is not None:
            return list(self.pipelines)
        shard = self.shard_of()
        return [
            name
            for name in sorted(specs.pipelines)
            if name not in self.exclude_pipelines
            and (shard is None or pipeline_shard(name, shard[1]) == shard[0])
        ]

    def shard_of(self) -> tuple[int, int] | None:
        """``shard`` as (K, N), 1-based."""
        if self.shard is None:
            return None
        index, count = (int(x) for x in self.shard.split("/"))
        if index > count:
            raise ValueError(f"CdcPipelineComponent's shard {self.shard!r}: K must be 1..{count}")
        return index, count

    def get_translator(self) -> CdcTranslator:
        """Override to change keys or attributes of the assets."""
        return CdcTranslator()

    @property
    def defs_state_config(self) -> DefsStateConfig:
        # the key names the specs directory, so two directories never share a stored catalog
        specs_dir = self.specs_dir or str(default_specs_dir().resolve())
        return DefsStateConfig.from_args(
            self.defs_state,
            default_key=state_key(specs_dir, self.pipelines, self.exclude_pipelines, self.shard),
        )

    def write_state_to_path(self, state_path: Path) -> None:
        specs = self.load_specs()
        write_catalog(discover_catalog(specs, self.selected_pipelines(specs)), state_path)

    def build_defs_from_state(
        self, context: dg.ComponentLoadContext, state_path: Path | None
    ) -> dg.Definitions:
        with _without_collector_pauses():
            return self._build_defs(state_path)

    def _build_defs(self, state_path: Path | None) -> dg.Definitions:
        specs = self.load_specs()
        register_loaded_specs(specs)  # what every check, sensor and job body reads at run time
        catalog = read_catalog(state_path)
        names = self.selected_pipelines(specs)
        connect_url, bootstrap = default_endpoints()
        bootstrap = self.kafka_bootstrap or bootstrap
        catalogs = catalog.pipelines if catalog else {}
        translator = self.get_translator()
        #: the stored catalog's plan, built once: code versions and the connectors' expected configs
        plans = {
            name: stored_plan(specs, specs.pipelines[name], catalogs.get(name), bootstrap) for name in names
        }
        #: each pipeline's specs, built once by the translator: every key below comes from them
        parts = {
            name: pipeline_specs(specs.pipelines[name], specs, catalogs.get(name), translator, plans[name])
            for name in names
        }
        keys = {name: p.keys for name, p in parts.items()}
        watched = {name: self._watched(specs, name, plans[name], keys[name]) for name in names}
        watched = {name: w for name, w in watched.items() if w}
        #: pipelines whose changes the platform's own writer applies (S3); no database checks
        traits = {
            n: target_traits(specs.connection(specs.pipelines[n].spec.target).kind.value) for n in names
        }
        to_s3 = [n for n in names if not traits[n].sink_connector]
        databases = [n for n in names if traits[n].database_checks]
        # one location owns the worker's asset: the one not limited to named pipelines, or shard 1
        owns_worker = self.pipelines is None and (self.shard_of() or (1, 1))[0] == 1
        worker = translator.worker_spec() if watched and owns_worker else None
        sensors, jobs, schedules = [], [], []
        if names:
            jobs.append(teardown_job_for(self.part_name("teardown"), names))
        streaming = [n for n in names if specs.pipelines[n].spec.streams]
        if streaming:
            jobs += lifecycle_jobs_for(self.part_name, streaming)
        quality = [
            build_quality_checks(specs.pipelines[name], specs, catalogs.get(name),
                                 checked_tables(specs.pipelines[name].spec, keys[name]), keys[name].sink_connector)
            for name in databases
        ]  # fmt: skip
        schedules += quality_schedules(
            {name: (specs.pipelines[name].spec.quality, q) for name, q in zip(databases, quality, strict=True)},
            self.quality_cron, self.checksum_cron, self.part_name("quality_checks"), self.part_name("checksum_checks"),
        )  # fmt: skip
        #: every target table of a streaming pipeline shows whether its pipeline keeps it current
        table_health = {
            name: WatchedTables(name, tuple(keys[name].target_tables.values()),
                                specs.pipelines[name].spec.quality.freshness_seconds)
            for name in watched
            if keys[name].target_tables
        }  # fmt: skip
        if watched:
            sensors.append(build_connect_health_sensor(
                self.sensor_name(), [w for ws in watched.values() for w in ws], self.health.settings(),
                worker_key=worker.key if worker is not None else None,
                recovery_checks={name: check_keys(q, CONSISTENCY_CHECKS) for name, q in zip(databases, quality, strict=True)},
                tables=list(table_health.values()),
            ))  # fmt: skip
        #: every streaming pipeline: an S3 target's lag is its writer's (``pipeline_watch``)
        measured = list(watched)
        if measured:
            watched_assets = [self._metrics_assets(specs, name, catalogs, keys[name]) for name in measured]
            metrics_job = build_metrics_job(self.part_name("collect_metrics"), watched_assets)
            jobs.append(metrics_job)
            schedules.append(build_metrics_schedule(metrics_job, self.metrics_cron))
            sensors.append(build_alert_sensor(self.part_name("alerts"), watched_assets))
        writers = [p for p in (self._s3_pipeline(specs, n, catalogs.get(n), keys[n]) for n in to_s3) if p]
        if writers:
            writer_job = build_s3_writer_job(self.part_name("s3_writer_run"), writers)
            jobs.append(writer_job)
            sensors.append(
                build_s3_writer_sensor(
                    self.part_name("s3_writer"), writers, self.s3_flush_seconds, writer_job
                )
            )
        #: Iceberg targets: each pipeline's current-state tables, their merge assets and their checks
        lake_tables = {n: self._current_state_tables(specs, n, catalogs.get(n), parts[n]) for n in to_s3
                       if parts[n].current}  # fmt: skip
        lakes = [build_current_state_assets(n, specs.pipelines[n].spec.target, list(parts[n].current.values()), tables)
                 for n, tables in lake_tables.items()]  # fmt: skip
        lake_checks = {n: build_lake_checks(specs.pipelines[n], tables) for n, tables in lake_tables.items()}
        if lakes:
            sensors.append(build_merge_sensor(self.part_name("lake_merge"), [k for a in lakes for k in a.keys],
                                              self.lake_merge_seconds))  # fmt: skip
            schedules += quality_schedules(
                {n: (specs.pipelines[n].spec.quality, c) for n, c in lake_checks.items()},
                self.quality_cron, self.checksum_cron, self.part_name("lake_quality_checks"),
                self.part_name("lake_checksum_checks"),
            )  # fmt: skip
        followed = {name: dict(keys[name].target_tables) for name in watched if keys[name].target_tables}
        if followed:
            sensors.append(build_schema_changes_sensor(self.part_name("schema_changes"), followed))
            jobs.append(build_apply_drift_job(self.part_name("apply_drift")))
        if watched:
            jobs.append(build_acknowledge_job(self.part_name("acknowledge_alert")))
        if names:
            test_job = build_connection_test_job(
                self.part_name("test_connections"), self._connection_assets(specs, names, keys)
            )
            jobs.append(test_job)
            schedules.append(build_connection_test_schedule(test_job, self.connection_test_cron))
        return dg.Definitions(
            assets=[
                *build_all_assets(specs, catalogs, names, translator, plans, parts),
                *lakes,
                *([worker] if worker is not None else []),
            ],  # fmt: skip
            asset_checks=[
                *[build_connector_checks(name, ws, table_health.get(name)) for name, ws in watched.items()],
                *quality,
                *[build_s3_writer_checks(w) for w in writers],
                *lake_checks.values(),
            ],  # fmt: skip
            sensors=sensors,
            jobs=jobs,
            schedules=schedules,
            resources=_shared_resources(
                self.connect_url or connect_url,
                str(specs.directory),
                bootstrap,
                default_jolokia_url() if self.jolokia_url is None else self.jolokia_url,
            ),  # fmt: skip
        )

    def part_name(self, part: str) -> str:
        """A sensor, job or schedule of this instance: ``cdc_<part>``, and for an instance limited to
        some pipelines, their names after it, for a shard ``_shard<K>of<N>`` (so two instances never
        define the same name)."""
        if self.shard is not None:
            return f"cdc_{part}_shard" + self.shard.replace("/", "of")
        return f"cdc_{part}" + ("" if not self.pipelines else "_" + "_".join(self.pipelines))[:100]

    def sensor_name(self) -> str:
        """The instance's health sensor."""
        return self.part_name("connect_health")

    def pipeline_keys(self, specs: Specs, name: str, catalog: PipelineCatalog | None) -> PipelineKeys:
        """The asset keys of one pipeline's parts, as this instance's translator gives them."""
        return pipeline_specs(
            specs.pipelines[name], specs, catalog, self.get_translator(), None, warn=False
        ).keys

    @staticmethod
    def _connection_assets(specs: Specs, names: list[str], keys: dict[str, PipelineKeys]) -> list:
        """Each connection the pipelines use, with the source-table assets that show its tests."""
        by_connection: dict[str, dict] = {}
        for name in names:
            spec = specs.pipelines[name].spec
            for role, conn in (("source", spec.source), ("target", spec.target)):
                entry = by_connection.setdefault(conn, {"assets": [], "source_of": [], "target_of": []})
                entry[f"{role}_of"].append(name)
                if role == "source":
                    entry["assets"] += list(keys[name].source_tables.values())
        return [ConnectionAssets(conn, tuple(dict.fromkeys(e["assets"])), tuple(e["source_of"]), tuple(e["target_of"]))
                for conn, e in sorted(by_connection.items())]  # fmt: skip

    @staticmethod
    def _metrics_assets(specs: Specs, name: str, catalogs: dict, keys: PipelineKeys) -> WatchedAssets:
        catalog = catalogs.get(name)
        watch = pipeline_watch(specs, name, list(catalog.tables) if catalog else None)
        assert watch is not None and keys.source_connector is not None
        return WatchedAssets(
            watch,
            {t.qualified: keys.target_tables[t.qualified] for t in watch.tables},
            keys.source_connector,
            # an S3 target has no sink connector: its writer's figures (lag, stall) show on the source
            # connector, the part whose events wait
            keys.sink_connector or keys.source_connector,
        )

    @staticmethod
    def _watched(specs: Specs, name: str, plan: PipelinePlan | None, keys: PipelineKeys) -> list:
        loaded = specs.pipelines[name]
        if not loaded.spec.streams or keys.source_connector is None:
            return []
        names = PipelineNames(name)
        watched = [
            WatchedConnector(name, "source", names.source_connector, keys.source_connector,
                             plan.source_config if plan else None),
        ]  # fmt: skip
        if keys.sink_connector is not None:
            watched.append(WatchedConnector(name, "sink", names.sink_connector, keys.sink_connector,
                                            plan.sink_config if plan else None))  # fmt: skip
        return watched

    @staticmethod
    def _current_state_tables(
        specs: Specs, name: str, catalog: PipelineCatalog | None, part
    ) -> list[CurrentStateTable]:
        spec = specs.pipelines[name].spec
        return [
            CurrentStateTable(q, spec.target_schema, target_table_name(spec, q), s.key, catalog.table(q) if catalog else None)
            for q, s in part.current.items()
        ]  # fmt: skip

    @staticmethod
    def _s3_pipeline(
        specs: Specs, name: str, catalog: PipelineCatalog | None, keys: PipelineKeys
    ) -> S3Pipeline | None:
        """The tables the S3 writer flushes: the stored catalog's, else the named ones. Their columns
        are read at each tick from what the pipeline's last run deployed, so no refresh is needed."""
        spec = specs.pipelines[name].spec
        if not spec.streams:
            return None
        source = specs.connection(spec.source)
        names = PipelineNames(name)
        tables = tuple(
            S3TableAsset(q, table_topic(source, names, q), spec.target_schema, target_table_name(spec, q), key,
                         catalog.table(q) if catalog else None)
            for q, key in keys.target_tables.items()
        )  # fmt: skip
        watch = pipeline_watch(specs, name, list(catalog.tables) if catalog else None)
        beat = watch.heartbeat if watch else None
        topic = table_topic(source, names, beat.source_qualified) if beat else None
        return S3Pipeline(name, source.kind.value, spec.target, tables, topic) if tables else None


@contextmanager
def _without_collector_pauses() -> Iterator[None]:
    """Build thousands of definitions without the cyclic collector rescanning them as they grow.

    What is built lives as long as the code location, yet each full collection during the build
    walks all of it again: measured with ``bench/code_location.py``, that was a third of the load
    time of 100 pipelines x 20 tables. Afterwards the objects are frozen (``gc.freeze``) so that
    Dagster's own resolution of the graph, and every later collection in the code server, skips
    them too. Reference counting still frees everything that is not in a cycle meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
