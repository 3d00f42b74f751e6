"""Tearing a pipeline down from its name alone: connectors, slot, publication, replica identities,
the sink's consumer group and (on request) its topics. The target data stays.

Everything is found by the names the platform derives from the pipeline's name, so a teardown
works when the spec is gone (the source connection is read back from the source connector's stored
config, whose password is a config-provider reference this process can resolve too) and goes as
far as it can when the source database is down, then says exactly what is left behind.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka.admin import AdminClient
from confluent_kafka.error import KafkaException

from cdc_platform.audit import record
from cdc_platform.db import mysql_connect, pg_connect
from cdc_platform.kafka_connect import KafkaConnectResource
from cdc_platform.kafka_log import kafka_client_config
from cdc_platform.pipeline import handoff
from cdc_platform.pipeline.deployed import forget_deployed
from cdc_platform.pipeline.heartbeat import HEARTBEAT_TABLE_KEY, Heartbeat, heartbeat_from_recorded
from cdc_platform.pipeline.lifecycle import forget_intent
from cdc_platform.pipeline.plan import PipelineNames
from cdc_platform.schema.ddl import qualified, quote
from cdc_platform.specs.models import ConnectionSpec, EnvSecret, FileSecret

#: key of the source connector's config listing the tables the platform set to REPLICA IDENTITY FULL
#: (Debezium ignores keys it does not know); teardown restores them
REPLICA_IDENTITY_KEY = "cdc.platform.replica.identity.full"

Log = Callable[[str], None]


class TeardownIncomplete(RuntimeError):
    """Some parts could not be removed (listed); everything else was."""


def recorded_tables(config: dict[str, str] | None) -> list[str]:
    value = (config or {}).get(REPLICA_IDENTITY_KEY, "")
    return [t for t in value.split(",") if t]


def with_recorded_tables(config: dict[str, str], previous: dict[str, str] | None, switched: set[str]) -> dict:
    """The source config carrying every table switched to FULL so far (stable across re-deploys)."""
    tables = sorted(set(recorded_tables(previous)) | switched)
    return {**config, REPLICA_IDENTITY_KEY: ",".join(tables)} if tables else dict(config)


_REFERENCE = re.compile(r"^\$\{(?P<provider>file|dir|env):(?P<body>.+)\}$")


def source_from_connector(name: str, config: dict[str, str]) -> ConnectionSpec | None:
    """A PostgreSQL source connection rebuilt from a Debezium connector's stored config."""
    if not config.get("connector.class", "").endswith("PostgresConnector"):
        return None
    match = _REFERENCE.match(config.get("database.password", ""))
    if not match:
        return None
    provider, body = match.group("provider"), match.group("body")
    if provider == "env":
        password = EnvSecret(env=body)
    else:
        path, _, key = body.rpartition(":")
        password = FileSecret(file=path, key=key) if provider == "file" else FileSecret(file=f"{path}/{key}")
    return ConnectionSpec(
        name=f"{name} (from its source connector)", kind="postgresql", host=config["database.hostname"],
        port=int(config["database.port"]), database=config["database.dbname"], username=config["database.user"],
        password=password,
    )  # fmt: skip


def teardown_pipeline(
    pipeline: str, connect: KafkaConnectResource, log: Log, *, source: ConnectionSpec | None = None,
    specs_dir: Path | None = None, kafka_bootstrap: str | None = None, delete_topics: bool = False,
    replica_identity: set[str] | None = None, heartbeat: Heartbeat | None = None,
) -> list[str]:  # fmt: skip
    """Remove what the platform deployed for ``pipeline``; raise :class:`TeardownIncomplete` naming
    whatever could not be removed, after removing everything else.

    The source's heartbeat table is dropped too (it is the platform's); its target twin stays with
    the target data.
    """
    names, done, left = PipelineNames(pipeline), [], []
    source_config = connect.get_config(names.source_connector)
    tables = sorted(set(recorded_tables(source_config)) | (replica_identity or set()))
    recorded = (source_config or {}).get(HEARTBEAT_TABLE_KEY)
    beat = heartbeat_from_recorded(pipeline, recorded) if recorded else heartbeat
    if source is None and source_config is not None:
        source = source_from_connector(pipeline, source_config)
    if connect.delete(names.sink_connector):
        done.append(f"deleted connector {names.sink_connector}")
    left_pg: list[str] = []
    if source is not None and source.kind.value == "postgresql":
        if source_config is not None:
            connect.stop(names.source_connector)  # releases the slot; the config stays readable
        done_pg, left_pg = _postgres_parts(source, specs_dir or Path.cwd(), names, tables, beat)
        done += done_pg
        left += left_pg
    if left_pg and source_config is not None:
        # kept (stopped): its config is the record of the slot's source and the replica identities
        # to restore, which the next teardown needs
        left.append(f"source connector {names.source_connector} (stopped, kept so that running the teardown "
                    "again can finish)")  # fmt: skip
    else:
        if source_config is not None:
            # a pipeline created again under this name starts from its new slot, never from here
            connect.forget_offsets(names.source_connector)
            done.append(f"deleted the stored offsets of {names.source_connector}")
        if connect.delete(names.source_connector):
            done.append(f"deleted connector {names.source_connector}")
        if beat is not None and source is not None and source.kind.value in ("mysql", "mariadb"):
            done_beat, left_beat = _mysql_heartbeat(source, specs_dir or Path.cwd(), beat)
            done += done_beat
            left += left_beat
    if kafka_bootstrap:
        done_kafka, left_kafka = _kafka_parts(kafka_bootstrap, names, delete_topics)
        done += done_kafka
        left += left_kafka
    if not left:
        forget_deployed(pipeline)
        forget_intent(pipeline)
    for line in done:
        log(line)
    if left:
        raise TeardownIncomplete(
            f"pipeline {pipeline}: teardown removed {len(done)} parts, but these are left: " + "; ".join(left)
        )
    return done


def _mysql_heartbeat(source: ConnectionSpec, specs_dir: Path, beat: Heartbeat):

    try:
        conn = mysql_connect(source, specs_dir, database="", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(beat.drop_source_sql(source.kind.value))
        finally:
            conn.close()
        record("heartbeat.dropped", beat.source_qualified, pipeline=beat.pipeline)
        return [f"dropped heartbeat table {beat.source_qualified}"], []
    except Exception as exc:  # noqa: BLE001 - report what is left, after doing the rest
        return [], [f"heartbeat table {beat.source_qualified} on {source.host}:{source.port} ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''})"]  # fmt: skip


def _postgres_parts(source: ConnectionSpec, specs_dir: Path, names: PipelineNames, tables: list[str],
                    beat: Heartbeat | None = None):  # fmt: skip

    try:
        with pg_connect(source, specs_dir, autocommit=True) as admin:
            done = []
            if handoff.drop_slot(admin, names.slot):
                done.append(f"dropped replication slot {names.slot}")
            if admin.execute(
                "SELECT 1 FROM pg_publication WHERE pubname = %s", (names.publication,)
            ).fetchone():
                admin.execute(f"DROP PUBLICATION {quote('postgresql', names.publication)}")
                record("publication.dropped", names.publication, pipeline=names.pipeline)
                done.append(f"dropped publication {names.publication}")
            done += handoff.restore_replica_identity(admin, tables)

            exists = (
                beat
                and admin.execute(
                    "SELECT to_regclass(%s)", (qualified("postgresql", beat.source_schema, beat.table),)
                ).fetchone()[0]
            )
            if beat is not None and exists:
                admin.execute(beat.drop_source_sql("postgresql"))
                record("heartbeat.dropped", beat.source_qualified, pipeline=names.pipeline)
                done.append(f"dropped heartbeat table {beat.source_qualified}")
            return done, []
    except Exception as exc:  # noqa: BLE001 - report what is left, after doing the rest
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        left = [f"replication slot {names.slot} and publication {names.publication} on "
                f"{source.host}:{source.port}/{source.database} (unreachable: {reason}); the slot keeps WAL "
                f"until dropped: run the teardown again when the source is back, or "
                f"SELECT pg_drop_replication_slot('{names.slot}'); DROP PUBLICATION {names.publication};"]  # fmt: skip
        if tables:
            left.append(f"REPLICA IDENTITY FULL on {', '.join(tables)}")
        return [], left


def _kafka_parts(bootstrap: str, names: PipelineNames, delete_topics: bool):

    admin = AdminClient(kafka_client_config(bootstrap))
    done, left = [], []
    # the JDBC sink's group, and the S3 writer's (cdc_platform/s3/changes.py); whichever exists
    for group in (f"connect-{names.sink_connector}", f"cdc-{names.pipeline}-s3"):
        deadline = time.monotonic() + 30
        while True:
            try:
                listed = admin.list_consumer_groups(request_timeout=10).result()
                if group not in {g.group_id for g in listed.valid}:
                    break
                admin.delete_consumer_groups([group], request_timeout=10)[group].result()
                done.append(f"deleted consumer group {group}")
                break
            except KafkaException as exc:
                # the group stays non-empty for a moment after its connector is deleted
                if time.monotonic() > deadline:
                    left.append(f"consumer group {group} ({exc})")
                    break
                time.sleep(1)
    if delete_topics:
        prefix = f"{names.topic_prefix}."
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)
                  or t == names.topic_prefix or t == f"__debezium-heartbeat.{names.topic_prefix}"]  # fmt: skip
        if topics:
            for topic, future in admin.delete_topics(topics, operation_timeout=30).items():
                future.result()
                done.append(f"deleted topic {topic}")
    return done, left
