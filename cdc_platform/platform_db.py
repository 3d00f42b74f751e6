"""The platform's own tables beside the metrics (alerts, notifications, audit log, connection tests),
in the metrics store's database: SQLite under ``$DAGSTER_HOME`` by default, ``CDC_METRICS_URL``
(PostgreSQL in production) otherwise; beside a stack started with ``--profile production``, its
PostgreSQL's ``cdc_platform`` database.

The schema is versioned in ``cdc_schema_versions``; each migration runs once, in order, inside one
transaction, so an existing database is upgraded in place when a newer platform opens it.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from cdc_platform.settings import PLATFORM_DB, load_stack_settings


def metrics_url() -> str:
    configured = os.environ.get("CDC_METRICS_URL")
    if configured:
        return configured
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        stack = load_stack_settings()
        if stack.production:  # the CLI beside a production-profile stack reads what its services write
            return stack.postgres_url(PLATFORM_DB)
        home = str(stack.project_root / "dagster_home")
    return f"sqlite:///{Path(home) / 'cdc_metrics.sqlite'}"


METADATA = sa.MetaData()
VERSIONS = sa.Table(
    "cdc_schema_versions",
    METADATA,
    sa.Column("component", sa.String(50), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)
ALERTS = sa.Table(
    "cdc_alerts",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("pipeline", sa.String(64), nullable=False),
    #: sink | source | pipeline, or a table's schema.table
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("triggered_at", sa.Float, nullable=False),
    sa.Column("resolved_at", sa.Float),
    sa.Column("acknowledged_at", sa.Float),
    sa.Column("acknowledged_by", sa.String(200)),
    sa.Column("last_notified_at", sa.Float),
    sa.Column("notifications_sent", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_cdc_alerts_open", "rule", "pipeline", "subject", "resolved_at"),
)
NOTIFICATIONS = sa.Table(
    "cdc_alert_notifications",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("cdc_alerts.id"), nullable=False),
    sa.Column("channel", sa.String(100), nullable=False),
    #: triggered | reminder | resolved
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("sent_at", sa.Float, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text),
)


AUDIT = sa.Table(
    "cdc_audit_log",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(300), nullable=False),
    sa.Column("pipeline", sa.String(64)),
    #: e.g. connector.created, connector.restarted, slot.dropped, ddl.applied, alert.acknowledged
    sa.Column("action", sa.String(64), nullable=False),
    #: what was changed: a connector, slot, publication, table or alert
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("detail", sa.Text),
    #: JSON {key: {"old": ..., "new": ...}}, secrets masked
    sa.Column("diff", sa.Text),
    sa.Index("ix_cdc_audit_log_pipeline_at", "pipeline", "at"),
)
CONNECTION_TESTS = sa.Table(
    "cdc_connection_tests",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("connection", sa.String(100), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("response_ms", sa.Float),
    #: JSON list of {"check", "ok", "detail", "fix"}
    sa.Column("checks", sa.Text, nullable=False),
    sa.Index("ix_cdc_connection_tests_connection_at", "connection", "at"),
)
SAMPLES = sa.Table(
    "cdc_metric_samples",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("pipeline", sa.String(64), nullable=False),
    #: a table (schema.table of the source) or a connector role (source / sink)
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("metric", sa.String(100), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Index("ix_cdc_metric_samples_series", "pipeline", "subject", "metric", "ts"),
)
DEPLOYED_TABLES = sa.Table(
    "cdc_deployed_tables",
    METADATA,
    sa.Column("pipeline", sa.String(64), primary_key=True),
    #: the source table, schema.table
    sa.Column("qualified", sa.String(300), primary_key=True),
    #: JSON of the table's columns, types and key as the run that deployed it discovered them
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("deployed_at", sa.Float, nullable=False),
)

PIPELINE_CONTROL = sa.Table(
    "cdc_pipeline_control",
    METADATA,
    sa.Column("pipeline", sa.String(64), primary_key=True),
    #: what a person asked for: running | paused | stopped (nothing undoes it but another request)
    sa.Column("intent", sa.String(20), nullable=False),
    sa.Column("changed_at", sa.Float, nullable=False),
    sa.Column("changed_by", sa.String(300), nullable=False),
    sa.Column("reason", sa.Text),
)


def _v1(conn: sa.Connection) -> None:
    ALERTS.create(conn, checkfirst=True)
    NOTIFICATIONS.create(conn, checkfirst=True)


def _v2(conn: sa.Connection) -> None:
    AUDIT.create(conn, checkfirst=True)
    CONNECTION_TESTS.create(conn, checkfirst=True)


def _v3(conn: sa.Connection) -> None:
    DEPLOYED_TABLES.create(conn, checkfirst=True)


def _v4(conn: sa.Connection) -> None:
    # the metrics store created this table itself before it joined the migrations: keep what is there
    SAMPLES.create(conn, checkfirst=True)


def _v5(conn: sa.Connection) -> None:
    PIPELINE_CONTROL.create(conn, checkfirst=True)


#: (version, migration) in order; a new column or table is a new entry, never an edit of an old one
MIGRATIONS: list[tuple[int, Callable[[sa.Connection], None]]] = [
    (1, _v1),
    (2, _v2),
    (3, _v3),
    (4, _v4),
    (5, _v5),
]
COMPONENT = "platform"


def migrate(engine: sa.Engine) -> int:
    """Bring the platform's tables to the newest version; returns the version now in place."""
    with engine.begin() as conn:
        VERSIONS.create(conn, checkfirst=True)
        row = conn.execute(sa.select(VERSIONS.c.version).where(VERSIONS.c.component == COMPONENT)).first()
        current = row.version if row else 0
        for version, step in MIGRATIONS:
            if version > current:
                step(conn)
                current = version
        values = {"version": current, "applied_at": time.time()}
        if row is None:
            conn.execute(VERSIONS.insert().values(component=COMPONENT, **values))
        elif row.version != current:
            conn.execute(VERSIONS.update().where(VERSIONS.c.component == COMPONENT).values(**values))
    return current


@functools.cache
def _migrated(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    migrate(engine)
    return engine


def platform_engine(url: str | None = None) -> sa.Engine:
    """An engine on the platform database, migrated once per process and URL."""
    return _migrated(url or metrics_url())
