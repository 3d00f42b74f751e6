"""Pydantic models of the YAML specs under ``resources/``: connections and pipelines.

Secrets exist in specs only as references (an environment variable or a file); identifiers are
checked here against a strict pattern so nothing from a spec is ever pasted into SQL unvalidated.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cdc_platform.connectors.common import DEFAULT_MAX_EVENT_BYTES, MAX_EVENT_BYTES_CEILING

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
PIPELINE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def check_identifier(value: str, what: str = "identifier") -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(
            f"{value!r} is not a valid {what}: use letters, digits and underscores, starting with a "
            "letter or underscore, at most 63 characters"
        )
    return value


Identifier = Annotated[str, Field(description="SQL identifier")]


#: words that make an option name a secret's name (compared with its dot/underscore/dash parts)
SECRET_WORDS = frozenset({"password", "passwd", "pwd", "secret", "token", "credential", "credentials", "jaas",
                          "apikey", "passphrase"})  # fmt: skip
_PROVIDER_REFERENCE = re.compile(r"^\$\{[a-z]+:[^}]+\}$")


def secret_option(key: str) -> bool:
    """``ssl.key.password``, ``sasl.jaas.config``, ``aws.secret.access.key``, ``ssl.key``: secrets;
    ``message.key.columns``: not (``key`` counts only as the last part)."""
    parts = [p for p in re.split(r"[._\-]", key.lower()) if p]
    contains = any(word in part for part in parts for word in SECRET_WORDS if len(word) > 4)
    return contains or bool(SECRET_WORDS & set(parts)) or (bool(parts) and parts[-1] == "key")


def is_provider_reference(value: str) -> bool:
    return bool(_PROVIDER_REFERENCE.match(value.strip()))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EnvSecret(Strict):
    env: str = Field(description="Name of the environment variable holding the secret")

    @field_validator("env")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v):
            raise ValueError(f"{v!r} is not an environment variable name")
        return v


class FileSecret(Strict):
    file: str = Field(description="Path of a file; relative paths are relative to the specs directory")
    key: str | None = Field(
        default=None, description="Key in a key=value properties file; omit for the whole file"
    )


SecretRef = EnvSecret | FileSecret


#: how long Iceberg tables keep a snapshot when the connection does not say (a week of time travel)
DEFAULT_SNAPSHOT_RETENTION_HOURS = 168


class ConnectionKind(str, Enum):
    postgresql = "postgresql"
    mysql = "mysql"
    mariadb = "mariadb"
    sqlserver = "sqlserver"
    s3 = "s3"


class TlsSettings(Strict):
    """Encryption of every connection to a database: the platform's own and both connectors'.

    ``mode`` uses PostgreSQL's names and is mapped per engine (MySQL ``required``/``verify_ca``/
    ``verify_identity``, MariaDB ``trust``/``verify-ca``/``verify-full``, SQL Server
    ``encrypt``/``trustServerCertificate``). ``root_cert`` is a PEM file of the CA that signed the
    server's certificate (relative paths are relative to the specs directory).
    """

    #: ``prefer`` (the default) leaves every driver at its own default (PostgreSQL's drivers try TLS)
    mode: Literal["prefer", "disable", "require", "verify-ca", "verify-full"] = "prefer"
    root_cert: str | None = None

    @model_validator(mode="after")
    def _root_cert_for_verification(self) -> TlsSettings:
        if self.mode in ("verify-ca", "verify-full") and not self.root_cert:
            raise ValueError(f"tls mode {self.mode} verifies the server's certificate and needs root_cert")
        return self


class ConnectionSpec(Strict):
    name: str
    kind: ConnectionKind
    host: str | None = None
    port: int | None = None
    database: str | None = None
    username: str | None = None
    password: SecretRef | None = None
    tls: TlsSettings = Field(default_factory=TlsSettings)
    options: dict[str, str] = Field(default_factory=dict, description="Extra driver/connector options")
    #: S3 (kind s3): where the Parquet files go; keys from these references, else the AWS default chain
    bucket: str | None = None
    prefix: str = Field(default="", description="S3: key prefix under the bucket (no leading slash)")
    endpoint_url: str | None = Field(default=None, description="S3: an S3-compatible endpoint (MinIO, moto)")
    region: str = "us-east-1"
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None
    table_format: Literal["parquet", "iceberg"] = Field(
        default="parquet",
        description="S3: 'iceberg' writes two Apache Iceberg tables per replicated table (the change log "
        "<table>_changes and the current state <table>); 'parquet' writes Parquet snapshot and change files",
    )
    #: S3 with table_format iceberg: pyiceberg catalog properties (type rest/glue/sql, uri, ...); empty:
    #: a SQL catalog on the platform's own database. A secret-looking key takes a reference.
    catalog: dict[str, str | SecretRef] = Field(default_factory=dict)
    snapshot_retention_hours: int | None = Field(
        default=None,
        ge=1,
        description="S3 with table_format iceberg: how long the tables keep a snapshot for time travel "
        f"(default {DEFAULT_SNAPSHOT_RETENTION_HOURS}); older ones are expired after a merge, with the "
        "files only they held",
    )

    @field_validator("password", mode="before")
    @classmethod
    def _no_inline_secret(cls, v):
        if isinstance(v, str):
            raise ValueError(
                "an inline password is not allowed; give a reference: {env: VAR} or {file: path, key: name}"
            )
        return v

    @field_validator("options")
    @classmethod
    def _no_inline_secret_options(cls, options: dict[str, str]) -> dict[str, str]:
        for key, value in options.items():
            if secret_option(key) and not is_provider_reference(value):
                raise ValueError(
                    f"option {key!r} holds a secret, and an inline secret is not allowed; give a Kafka Connect "
                    "config-provider reference such as ${env:VAR} or ${file:/path:key}, or use the "
                    "password field's {env: VAR} / {file: path, key: name}"
                )
        return options

    @field_validator("access_key_id", "secret_access_key", mode="before")
    @classmethod
    def _no_inline_key(cls, v):
        if isinstance(v, str):
            raise ValueError(
                "an inline key is not allowed; give a reference: {env: VAR} or {file: path, key: name}"
            )
        return v

    @model_validator(mode="after")
    def _database_fields(self) -> ConnectionSpec:
        if self.kind == ConnectionKind.s3:
            if not self.bucket:
                raise ValueError("an s3 connection needs a bucket")
            if (self.access_key_id is None) != (self.secret_access_key is None):
                raise ValueError(
                    "give both access_key_id and secret_access_key, or neither (AWS default chain)"
                )
            if self.prefix.startswith("/"):
                raise ValueError(f"prefix {self.prefix!r} must not start with '/'")
            for key, value in self.catalog.items():
                if isinstance(value, str) and secret_option(key):
                    raise ValueError(f"catalog property {key!r} holds a secret, and an inline secret is not "
                                     "allowed; give a reference: {env: VAR} or {file: path, key: name}")  # fmt: skip
            if self.catalog and self.table_format != "iceberg":
                raise ValueError("catalog properties apply to table_format iceberg only")
            if self.snapshot_retention_hours is not None and self.table_format != "iceberg":
                raise ValueError("snapshot_retention_hours applies to table_format iceberg only")
        if self.kind != ConnectionKind.s3:
            if self.table_format != "parquet" or self.catalog or self.snapshot_retention_hours is not None:
                raise ValueError(
                    "table_format, catalog and snapshot_retention_hours apply to s3 connections only"
                )
            missing = [f for f in ("host", "port", "database", "username") if getattr(self, f) in (None, "")]
            if missing:
                raise ValueError(f"a {self.kind.value} connection needs {', '.join(missing)}")
            if self.password is None:
                raise ValueError(f"a {self.kind.value} connection needs a password reference")
        return self


class Mode(str, Enum):
    full_load_only = "full_load_only"
    cdc_only = "cdc_only"
    full_load_and_cdc = "full_load_and_cdc"


class TableSelection(Strict):
    """Explicit ``schema.table`` names and/or every table of one schema matching include/exclude globs."""

    names: list[str] = Field(default_factory=list)
    schema_: str | None = Field(default=None, alias="schema")
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)

    @field_validator("names")
    @classmethod
    def _qualified(cls, names: list[str]) -> list[str]:
        for name in names:
            parts = name.split(".")
            if len(parts) != 2:
                raise ValueError(f"{name!r} must be written schema.table (for MySQL/MariaDB: database.table)")
            for part in parts:
                check_identifier(part, "table or schema name")
        return names

    @field_validator("schema_")
    @classmethod
    def _schema(cls, v: str | None) -> str | None:
        return None if v is None else check_identifier(v, "schema name")

    @model_validator(mode="after")
    def _something(self) -> TableSelection:
        if not self.names and not self.schema_:
            raise ValueError("list tables under `names`, or give a `schema` (with optional include/exclude)")
        return self


class TableOverride(Strict):
    target_name: str | None = None
    #: declared key for a source table without a primary key
    primary_key: list[str] | None = None

    @field_validator("target_name")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        return None if v is None else check_identifier(v, "target table name")

    @field_validator("primary_key")
    @classmethod
    def _pk(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if not v:
                raise ValueError("primary_key must name at least one column")
            for column in v:
                check_identifier(column, "column name")
        return v


#: connector keys a pipeline may tune (exact keys, or prefixes ending in '.'): how fast and in what
#: batches changes move; never what is captured, where it goes, or how values are converted
SOURCE_TUNING_KEYS = ("poll.interval.ms", "max.batch.size", "max.queue.size", "max.queue.size.in.bytes",
                      "snapshot.fetch.size", "incremental.snapshot.chunk.size", "status.update.interval.ms",
                      "producer.override.")  # fmt: skip
SINK_TUNING_KEYS = ("batch.size", "use.reduction.buffer", "dialect.postgres.unnest.insert.enabled", "flush.max.retries", "flush.retry.delay.ms",
                    "connection.pool.min_size", "connection.pool.max_size", "connection.pool.acquire_increment",
                    "consumer.override.")  # fmt: skip


def _tuning(overrides: dict[str, str], allowed: tuple[str, ...], which: str) -> dict[str, str]:
    for key, value in overrides.items():
        if not any(key == a or (a.endswith(".") and key.startswith(a)) for a in allowed):
            raise ValueError(
                f"{which} key {key!r} cannot be overridden (tuning keys only: {', '.join(allowed)})"
            )
        if secret_option(key):
            raise ValueError(f"{which} key {key!r} names a secret; secrets belong to the connection")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{which} key {key!r}: give a non-empty string value")
    return overrides


class PipelineOptions(Strict):
    parallelism: int = Field(default=4, ge=1, le=32, description="Tables copied at once")
    full_load_streams: int = Field(
        default=2,
        ge=1,
        le=16,
        description="PostgreSQL -> MySQL/MariaDB: ranges of heap pages one large table (32 MB and more a "
        "range) is copied in at once, each read by its own psql in the copy's one snapshot and loaded by "
        "its own LOAD DATA session, all committed together. One LOAD DATA is one server thread, the limit "
        "of the copy where the target has a core to spare; needs PostgreSQL 14 (TID range scans)",
    )
    batch_size: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Rows per batch in full load and sink"
    )
    heartbeat_interval_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_table: bool = Field(
        default=True,
        description="A cdc_heartbeat_<pipeline> table on the source and the target through which the "
        "end-to-end latency is measured (needs CREATE on the source schema of the first table)",
    )
    sink_tasks: int = Field(default=1, ge=1, le=64)
    topic_partitions: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Partitions of each table topic, created by the platform: more lets more sink tasks "
        "(database targets) or more writers (S3 tables in Iceberg) work on one table at once. Every change "
        "of one key is on one partition, so a key's changes keep their order. Fixed once deployed",
    )
    s3_writer_runs: int = Field(
        default=0,
        ge=0,
        le=64,
        description="S3 targets: 0, the code location's S3 writer sensor writes the pipeline's changes; "
        "N, N long-running Dagster runs of the S3 writer job do, each the partitions p with p % N == its "
        "index (at most topic_partitions), launched and kept alive by that sensor. With a run launcher "
        "that starts each run in its own container, the writers spread over machines",
    )
    max_event_bytes: int = Field(
        default=DEFAULT_MAX_EVENT_BYTES,
        ge=1024 * 1024,
        le=MAX_EVENT_BYTES_CEILING,
        description="Largest change event (JSON, before + after images) the pipeline carries; "
        "an update of a row under REPLICA IDENTITY FULL holds the row twice",
    )
    change_events: Literal["lean", "full"] | None = Field(
        default=None,
        description="What each change event on the pipeline's Kafka topics holds. lean (the default "
        "for database targets): op, before, after and ts_ms, which is all the JDBC sink reads; "
        "Debezium's source and transaction blocks and their schemas are dropped at the source, which "
        "makes a backlog drain faster (bench/README.md). full: Debezium's whole "
        "envelope, for other consumers of the topics (the default, and required, for S3 targets)",
    )
    #: MySQL/MariaDB replication client id; derived from the pipeline name when omitted
    server_id: int | None = Field(default=None, ge=1, le=4_294_967_295)
    source_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Tuning keys of the source connector (poll.interval.ms, producer.override.*, ...)",
    )
    sink_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="Tuning keys of the sink connector (batch.size, consumer.override.*, ...)",
    )

    @field_validator("source_overrides")
    @classmethod
    def _source_tuning(cls, v: dict[str, str]) -> dict[str, str]:
        return _tuning(v, SOURCE_TUNING_KEYS, "source_overrides")

    @field_validator("sink_overrides")
    @classmethod
    def _sink_tuning(cls, v: dict[str, str]) -> dict[str, str]:
        v = _tuning(v, SINK_TUNING_KEYS, "sink_overrides")
        if v.get("dialect.postgres.unnest.insert.enabled", "").lower() == "true" and (
            v.get("use.reduction.buffer", "true").lower() != "true"
        ):
            # measured (bench/README.md): the first batch holding two changes of one key fails the
            # sink task with "ON CONFLICT DO UPDATE command cannot affect row a second time"
            raise ValueError(
                "dialect.postgres.unnest.insert.enabled needs use.reduction.buffer: 'true' (one UNNEST "
                "upsert cannot apply two changes of the same key)"
            )
        return v


#: the data-quality checks on every table, by the name they carry in the UI
COUNT_CHECK, CHECKSUM_CHECK, DRIFT_CHECK, FRESHNESS_CHECK, GX_CHECK = (
    "row_count_parity", "checksum_reconciliation", "schema_drift", "replication_freshness", "great_expectations")  # fmt: skip
QualityCheckName = Literal[
    "row_count_parity",
    "checksum_reconciliation",
    "schema_drift",
    "replication_freshness",
    "great_expectations",
]


class CheckPolicy(Strict):
    """How one check's failure counts: ``severity`` is how a failure shows (ERROR/WARN); a
    ``blocking`` check that fails as ERROR in the run that loaded the table fails that run."""

    enabled: bool = True
    severity: Literal["ERROR", "WARN"]
    blocking: bool


DEFAULT_CHECK_POLICIES: dict[str, CheckPolicy] = {
    COUNT_CHECK: CheckPolicy(severity="ERROR", blocking=True),
    CHECKSUM_CHECK: CheckPolicy(severity="ERROR", blocking=True),
    DRIFT_CHECK: CheckPolicy(severity="WARN", blocking=False),
    FRESHNESS_CHECK: CheckPolicy(severity="ERROR", blocking=False),
    GX_CHECK: CheckPolicy(severity="ERROR", blocking=False),
}


class CheckPolicyOverride(Strict):
    enabled: bool | None = None
    severity: Literal["ERROR", "WARN"] | None = None
    blocking: bool | None = None


class Expectation(Strict):
    """One Great Expectations expectation, by its snake_case name, e.g.
    ``expect_column_values_to_not_be_null`` with ``kwargs: {column: id}``."""

    expectation: str = Field(pattern=r"^expect_[a-z0-9_]+$")
    kwargs: dict = Field(default_factory=dict)


class SafeChanges(str, Enum):
    apply = "apply"
    review = "review"


class UnsafeChanges(str, Enum):
    pause = "pause"
    alert = "alert"


class SchemaChangePolicy(Strict):
    """What the platform does when a captured source table's columns change (schema/policy.py says
    which changes are safe)."""

    safe: SafeChanges = Field(
        default=SafeChanges.apply,
        description="apply: the platform runs the target DDL within seconds (audited); review: like unsafe",
    )
    unsafe: UnsafeChanges = Field(
        default=UnsafeChanges.pause,
        description="pause: the pipeline is paused with an alert until `cdc-platform apply-drift --yes` (or the "
        "cdc_apply_drift job); alert: only the alert, the pipeline runs on (its sink may fail)",
    )


class QualitySpec(Strict):
    checks: dict[QualityCheckName, CheckPolicyOverride] = Field(
        default_factory=dict, description="Per check: enabled, severity (ERROR/WARN), blocking"
    )
    schedule: str | None = Field(
        default=None, description="Cron of the counts, drift and freshness checks (default: the component's)"
    )
    checksum_schedule: str | None = Field(
        default=None, description="Cron of the checksum reconciliation (default: the component's, nightly)"
    )
    freshness_seconds: float = Field(
        default=300.0, gt=0, description="Heartbeat age above which a table is stale"
    )
    chunk_rows: int = Field(default=1000, ge=10, le=1_000_000, description="Rows per checksum chunk")
    max_differences: int = Field(default=20, ge=1, le=10_000, description="Differing keys a checksum names")
    expectations: dict[str, list[Expectation]] = Field(
        default_factory=dict,
        description="Great Expectations suites, keyed by source schema.table, run against the target table",
    )

    @field_validator("schedule", "checksum_schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            # lazy: the specs load without Dagster (`cdc-platform stack`, `validate --offline`)
            from dagster._utils.schedules import is_valid_cron_string

            if not is_valid_cron_string(v):
                raise ValueError(f"{v!r} is not a cron expression (five fields, e.g. '0 2 * * *')")
        return v

    @field_validator("expectations")
    @classmethod
    def _tables(cls, v: dict[str, list[Expectation]]) -> dict[str, list[Expectation]]:
        TableSelection._qualified(list(v))
        return v

    def policy(self, check: str) -> CheckPolicy:
        base = DEFAULT_CHECK_POLICIES.get(check, CheckPolicy(severity="ERROR", blocking=False))
        override = self.checks.get(check)  # type: ignore[call-overload]
        if override is None:
            return base
        return base.model_copy(update=override.model_dump(exclude_none=True))


class PipelineSpec(Strict):
    name: str
    source: str
    target: str
    mode: Mode = Mode.full_load_and_cdc
    tables: TableSelection
    target_schema: str
    overrides: dict[str, TableOverride] = Field(
        default_factory=dict, description="keyed by source schema.table"
    )
    options: PipelineOptions = Field(default_factory=PipelineOptions)
    quality: QualitySpec = Field(default_factory=QualitySpec)
    schema_changes: SchemaChangePolicy = Field(default_factory=SchemaChangePolicy)
    description: str | None = None
    owners: list[str] = Field(
        default_factory=list, description="Dagster asset owners: e-mail addresses or team:<name>"
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="Dagster tags on every asset of the pipeline"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not PIPELINE_NAME.match(v):
            raise ValueError(
                f"{v!r} is not a valid pipeline name: lower-case letters, digits and underscores, "
                "starting with a letter, at most 40 characters (it names slots, topics and connectors)"
            )
        return v

    @field_validator("owners")
    @classmethod
    def _owners(cls, v: list[str]) -> list[str]:
        for owner in v:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+|team:[A-Za-z0-9_-]+", owner):
                raise ValueError(f"owner {owner!r} is neither an e-mail address nor team:<name>")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not re.fullmatch(r"([A-Za-z0-9_.-]+/)?[A-Za-z0-9_.-]{1,63}", key) or len(value) > 63:
                raise ValueError(
                    f"tag {key!r}: keys are letters, digits, _ . - (one optional prefix/), values at most 63 characters"
                )
        return v

    @field_validator("target_schema")
    @classmethod
    def _target_schema(cls, v: str) -> str:
        return check_identifier(v, "target schema")

    @field_validator("overrides")
    @classmethod
    def _override_keys(cls, v: dict[str, TableOverride]) -> dict[str, TableOverride]:
        TableSelection._qualified(list(v))
        return v

    @property
    def streams(self) -> bool:
        return self.mode != Mode.full_load_only

    @property
    def copies(self) -> bool:
        return self.mode != Mode.cdc_only


class SpecFile(Strict):
    """The top level of one YAML file: either or both sections."""

    connections: dict[str, dict] = Field(default_factory=dict)
    pipelines: list[dict] = Field(default_factory=list)
    version: Literal[1] = 1
