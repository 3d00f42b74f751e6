"""A pipeline's heartbeat table: end-to-end latency measured through the pipeline itself.

Debezium runs ``heartbeat.action.query`` every ``heartbeat.interval.ms``: it upserts one row, the
source clock in milliseconds, into a small table the pipeline captures like its own tables. The
sink applies it to a twin on the target, where ``applied_at`` is stamped by the target's clock
when the row lands. So the metrics read, per pipeline:

- **latency** = ``applied_at - ts_ms`` of the latest heartbeat: how long a change took from the
  source's commit to the target (both clocks; on different hosts they must be NTP-synchronised);
- **heartbeat age** = ``now - ts_ms`` on the target: how stale the target is at worst. It grows
  without bound when any part of the chain stops, even while every table is idle.

The heartbeat is also a change in the captured database on every interval, so an idle PostgreSQL
source's slot keeps confirming positions and stops retaining WAL that other databases write.

One table per pipeline (``cdc_heartbeat_<pipeline>``) rather than one shared table: a pipeline must
never be kept looking fresh by another pipeline's sink writing the same row.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdc_platform.schema.ddl import qualified
from cdc_platform.schema.model import HEARTBEAT_PREFIX

#: the prefix of every heartbeat table; discovery never offers such a table as a pipeline table
#: the key under which the source connector's config records the heartbeat table (Debezium ignores
#: keys it does not know); teardown reads it to drop the table when the spec is gone
HEARTBEAT_TABLE_KEY = "cdc.platform.heartbeat.table"
SUPPORTED_SOURCES = ("postgresql", "mysql", "mariadb")
#: an S3 target has no twin table: its writer reads the heartbeat topic itself and stores what arrived
#: (cdc_platform/health/s3_heartbeat.py)
SUPPORTED_TARGETS = ("postgresql", "mysql", "mariadb", "s3")


@dataclass(frozen=True)
class Heartbeat:
    pipeline: str
    #: schema (MySQL/MariaDB: database) of the source table, where the pipeline's tables live
    source_schema: str
    target_schema: str

    @property
    def table(self) -> str:
        return f"{HEARTBEAT_PREFIX}{self.pipeline}"

    @property
    def source_qualified(self) -> str:
        return f"{self.source_schema}.{self.table}"

    def source_ddl(self, kind: str) -> str:
        name = qualified(kind, self.source_schema, self.table)
        return f"CREATE TABLE IF NOT EXISTS {name} (pipeline VARCHAR(64) NOT NULL PRIMARY KEY, ts_ms BIGINT NOT NULL)"

    def action_query(self, kind: str) -> str:
        """The upsert Debezium runs on every heartbeat, through its own source connection."""
        name = qualified(kind, self.source_schema, self.table)
        if kind == "postgresql":
            return (
                f"INSERT INTO {name} (pipeline, ts_ms) VALUES ('{self.pipeline}', "
                "(extract(epoch FROM clock_timestamp()) * 1000)::bigint) "
                "ON CONFLICT (pipeline) DO UPDATE SET ts_ms = EXCLUDED.ts_ms"
            )
        if kind in ("mysql", "mariadb"):
            return (
                f"INSERT INTO {name} (pipeline, ts_ms) VALUES ('{self.pipeline}', "
                "ROUND(UNIX_TIMESTAMP(NOW(6)) * 1000)) ON DUPLICATE KEY UPDATE ts_ms = VALUES(ts_ms)"
            )
        raise ValueError(f"no heartbeat table for a {kind} source")

    def target_ddl(self, kind: str) -> list[str]:
        """The target twin, with ``applied_at`` set by the target whenever the sink writes the row."""
        if kind == "s3":
            return []
        name = qualified(kind, self.target_schema, self.table)
        if kind == "postgresql":
            function = qualified(kind, self.target_schema, "cdc_heartbeat_stamp")
            return [
                f"CREATE TABLE IF NOT EXISTS {name} (pipeline VARCHAR(64) NOT NULL PRIMARY KEY, "
                "ts_ms BIGINT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())",
                f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS "
                "$$BEGIN NEW.applied_at := clock_timestamp(); RETURN NEW; END$$",
                f"CREATE OR REPLACE TRIGGER cdc_heartbeat_stamp BEFORE INSERT OR UPDATE ON {name} "
                f"FOR EACH ROW EXECUTE FUNCTION {function}()",
            ]
        if kind in ("mysql", "mariadb"):
            return [
                f"CREATE TABLE IF NOT EXISTS {name} (pipeline VARCHAR(64) NOT NULL PRIMARY KEY, "
                "ts_ms BIGINT NOT NULL, applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) "
                "ON UPDATE CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
            ]
        raise ValueError(f"no heartbeat table for a {kind} target")

    def reading_sql(self, kind: str) -> str:
        """``ts_ms``, ``applied_at`` and the target's ``now`` in epoch milliseconds, for one pipeline."""
        name = qualified(kind, self.target_schema, self.table)
        if kind == "postgresql":
            return (
                "SELECT ts_ms, (extract(epoch FROM applied_at) * 1000)::bigint, "
                f"(extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM {name} WHERE pipeline = %s"
            )
        return (
            "SELECT ts_ms, ROUND(UNIX_TIMESTAMP(applied_at) * 1000), ROUND(UNIX_TIMESTAMP(NOW(6)) * 1000) "
            f"FROM {name} WHERE pipeline = %s"
        )

    def drop_source_sql(self, kind: str) -> str:
        return f"DROP TABLE IF EXISTS {qualified(kind, self.source_schema, self.table)}"


def heartbeat_from_recorded(pipeline: str, recorded: str) -> Heartbeat | None:
    """The heartbeat a deployed source connector recorded under :data:`HEARTBEAT_TABLE_KEY`."""
    schema, _, table = recorded.partition(".")
    if not schema or table != f"{HEARTBEAT_PREFIX}{pipeline}":
        return None
    return Heartbeat(pipeline, schema, "")
