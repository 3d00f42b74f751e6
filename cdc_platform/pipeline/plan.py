"""A pipeline's plan: the names, DDL and connector configs it would deploy, computed without side effects.

``cdc-platform plan`` prints it; the assets execute it. Both read the same object, so what a user
reviews is what gets deployed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from cdc_platform.connectors import (
    DatabaseEndpoint,
    SourceOptions,
    TableRef,
    debezium_source_config,
    jdbc_sink_config,
    topic_name,
)
from cdc_platform.engines.kinds import target_traits
from cdc_platform.pipeline.heartbeat import (
    HEARTBEAT_TABLE_KEY,
    SUPPORTED_SOURCES,
    SUPPORTED_TARGETS,
    Heartbeat,
)
from cdc_platform.pipeline.sqlserver_capture import enable_cdc_sql
from cdc_platform.schema.ddl import create_schema_sql, create_table_sql
from cdc_platform.schema.model import CopyJob, Table
from cdc_platform.schema.rules import describe_rules
from cdc_platform.secrets import connect_reference, tls_root_cert
from cdc_platform.specs.loader import Specs
from cdc_platform.specs.models import ConnectionSpec, PipelineSpec


@dataclass(frozen=True)
class PipelineNames:
    pipeline: str

    @property
    def topic_prefix(self) -> str:
        return self.pipeline

    @property
    def slot(self) -> str:
        return f"cdc_{self.pipeline}"

    @property
    def publication(self) -> str:
        return f"cdc_{self.pipeline}"

    @property
    def source_connector(self) -> str:
        return f"{self.pipeline}-source"

    @property
    def sink_connector(self) -> str:
        return f"{self.pipeline}-sink"

    @property
    def s3_writer_group(self) -> str:
        """The consumer group of the platform's S3 writer (its committed offsets are what is written)."""
        return f"cdc-{self.pipeline}-s3"

    @property
    def schema_history_topic(self) -> str:
        return f"{self.pipeline}.schema-history"

    @property
    def server_id(self) -> int:
        # stable per pipeline, clear of the small ids DBAs give real replicas
        return 100_000 + zlib.crc32(self.pipeline.encode()) % 1_000_000


def target_name(pipeline: PipelineSpec, table: Table) -> str:
    return target_table_name(pipeline, table.qualified)


def target_table_name(pipeline: PipelineSpec, qualified: str) -> str:
    """The target table a source ``schema.table`` lands in: its override's name, else its own."""
    override = pipeline.overrides.get(qualified)
    return override.target_name if override and override.target_name else qualified.split(".", 1)[1]


def table_topic(source: ConnectionSpec, names: PipelineNames, qualified: str) -> str:
    """The topic the pipeline's source connector writes ``schema.table``'s changes to."""
    schema, table = qualified.split(".", 1)
    return topic_name(source.kind.value, names.topic_prefix, str(source.database), TableRef(schema, table))


def endpoint(conn: ConnectionSpec, specs_dir: Path) -> DatabaseEndpoint:
    assert conn.password is not None
    return DatabaseEndpoint(
        kind=conn.kind.value,
        host=str(conn.host),
        port=int(conn.port or 0),
        database=str(conn.database),
        username=str(conn.username),
        password_ref=connect_reference(conn.password, specs_dir),
        options=tuple(sorted((k, v) for k, v in conn.options.items() if "." in k)),
        tls_mode=conn.tls.mode,
        tls_root_cert=str(tls_root_cert(conn, specs_dir)) if conn.tls.root_cert else None,
    )


@dataclass(frozen=True)
class PipelinePlan:
    spec: PipelineSpec
    source: ConnectionSpec
    target: ConnectionSpec
    tables: tuple[Table, ...]
    names: PipelineNames
    ddl: tuple[str, ...]
    source_config: dict[str, str] | None
    sink_config: dict[str, str] | None
    kafka_bootstrap: str = ""
    #: source topic -> target table, one per replicated table and the heartbeat table (empty when
    #: the pipeline does not stream)
    routes: tuple[tuple[str, str], ...] = ()
    #: the pipeline's heartbeat table (see :mod:`cdc_platform.pipeline.heartbeat`), when it streams
    heartbeat: Heartbeat | None = None
    #: statements run on the source before capture starts (SQL Server: switch CDC on)
    source_setup: tuple[str, ...] = ()

    @property
    def published_extra(self) -> tuple[str, ...]:
        """Source tables captured beside the pipeline's own: its heartbeat table."""
        return (self.heartbeat.source_qualified,) if self.heartbeat else ()

    @property
    def jobs(self) -> list[CopyJob]:
        streams = self.spec.options.full_load_streams
        return [
            CopyJob(t, self.spec.target_schema, target_name(self.spec, t), streams=streams)
            for t in self.tables
        ]


def build_plan(
    specs: Specs, pipeline: PipelineSpec, tables: list[Table], kafka_bootstrap: str
) -> PipelinePlan:
    source, target = specs.connection(pipeline.source), specs.connection(pipeline.target)
    names = PipelineNames(pipeline.name)
    kind = target.kind.value
    traits = target_traits(kind)
    ddl: list[str] = []
    if traits.creates_tables:
        ddl = [create_schema_sql(kind, pipeline.target_schema)]
        ddl += [
            create_table_sql(
                kind, pipeline.target_schema, target_name(pipeline, t), t, source_kind=source.kind.value
            )
            for t in tables
        ]
    source_config = sink_config = None
    routes: dict[str, str] = {}
    beat = heartbeat_of(pipeline, source, target, [t.schema for t in tables])
    if beat is not None:
        ddl += beat.target_ddl(kind)
    if pipeline.streams:
        refs = [TableRef(t.schema, t.name) for t in tables]
        captured = refs + ([TableRef(beat.source_schema, beat.table)] if beat else [])
        options = SourceOptions(
            topic_prefix=names.topic_prefix,
            snapshot_mode="no_data",
            slot_name=names.slot,
            publication_name=names.publication,
            heartbeat_interval_ms=pipeline.options.heartbeat_interval_ms,
            server_id=pipeline.options.server_id or names.server_id,
            kafka_bootstrap=kafka_bootstrap,
            schema_history_topic=names.schema_history_topic,
            max_event_bytes=pipeline.options.max_event_bytes,
            target_kind=target.kind.value,
            lean_events=change_events(pipeline, target) == "lean",
            heartbeat_action_query=beat.action_query(source.kind.value) if beat else None,
        )
        source_config = debezium_source_config(
            names.source_connector, endpoint(source, specs.directory), captured, options
        )
        if beat is not None:
            source_config[HEARTBEAT_TABLE_KEY] = beat.source_qualified
        source_config.update(pipeline.options.source_overrides)
        declared = [t for t in tables if t.declared_key]
        if declared:
            source_config["message.key.columns"] = ";".join(
                f"{t.qualified}:{','.join(t.primary_key)}" for t in declared
            )
        routes = {
            topic_name(source.kind.value, names.topic_prefix, str(source.database), ref): target_name(
                pipeline, t
            )
            for ref, t in zip(refs, tables, strict=True)
        }
        if beat is not None:
            ref = TableRef(beat.source_schema, beat.table)
            routes[topic_name(source.kind.value, names.topic_prefix, str(source.database), ref)] = beat.table
        sink_config = (
            None
            if not traits.sink_connector
            else jdbc_sink_config(
                names.sink_connector,
                endpoint(target, specs.directory),
                pipeline.target_schema,
                routes,
                batch_size=min(pipeline.options.batch_size, 10_000),
                tasks_max=pipeline.options.sink_tasks,
                max_event_bytes=pipeline.options.max_event_bytes,
            )
        )
        if sink_config is not None:
            sink_config.update(pipeline.options.sink_overrides)
    setup = ()
    if pipeline.streams and source.kind.value == "sqlserver":
        setup = tuple(enable_cdc_sql([(t.schema, t.name) for t in tables]))
    return PipelinePlan(
        pipeline, source, target, tuple(tables), names, tuple(ddl), source_config, sink_config,
        kafka_bootstrap, tuple(routes.items()), beat, setup,
    )  # fmt: skip


def change_events(pipeline: PipelineSpec, target: ConnectionSpec) -> str:
    """``lean`` unless the spec says otherwise or the target needs the full events (S3's files)."""
    return pipeline.options.change_events or (
        "full" if target_traits(target.kind.value).full_change_events else "lean"
    )


def heartbeat_of(
    pipeline: PipelineSpec, source: ConnectionSpec, target: ConnectionSpec, schemas: list[str]
) -> Heartbeat | None:
    """The pipeline's heartbeat table, in the first of its tables' schemas, when the engines allow one.

    That schema is one the pipeline's source user already reads and Debezium already captures
    (MySQL/MariaDB: a database in ``database.include.list``)."""
    if not (pipeline.streams and pipeline.options.heartbeat_table and schemas):
        return None
    if source.kind.value not in SUPPORTED_SOURCES or target.kind.value not in SUPPORTED_TARGETS:
        return None
    return Heartbeat(pipeline.name, min(schemas), pipeline.target_schema)


def value_rule_warnings(plan: PipelinePlan) -> list[str]:
    """One line per column on which a documented value rule would apply (README, 'Value fidelity')."""
    warnings = []
    for table in plan.tables:
        for column in table.columns:
            rules = describe_rules(plan.source.kind.value, plan.target.kind.value, column.type)
            if rules:
                warnings.append(f"{table.qualified}.{column.name} ({column.native_type}): {rules}")
    return warnings
