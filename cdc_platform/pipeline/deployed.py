"""The tables a pipeline was last deployed with: what its target and its change stream were built from.

Every run that deploys (target schema, copy or connectors) records the tables it discovered on the
source, in the platform's own database. The parts that run later read this record, not the stored
catalog of the code location: the S3 writer decodes change events by the columns the snapshot was
written with, and the ``schema_drift`` check compares the source now with what was deployed. So a
pipeline of named tables streams and is checked as soon as it is materialized, without
``cdc-platform refresh``. Teardown forgets the record.
"""

from __future__ import annotations

import json
import time

import sqlalchemy as sa

from cdc_platform.platform_db import DEPLOYED_TABLES, platform_engine
from cdc_platform.schema.model import Table, table_from_json, table_to_json


def record_deployed(pipeline: str, tables: list[Table]) -> None:
    """Replace the pipeline's record with ``tables`` (a table the pipeline no longer has is dropped)."""
    now = time.time()
    rows = [
        {"pipeline": pipeline, "qualified": t.qualified, "definition": json.dumps(table_to_json(t), sort_keys=True),
         "deployed_at": now}
        for t in tables
    ]  # fmt: skip
    with platform_engine().begin() as conn:
        conn.execute(DEPLOYED_TABLES.delete().where(DEPLOYED_TABLES.c.pipeline == pipeline))
        if rows:
            conn.execute(DEPLOYED_TABLES.insert(), rows)


def update_deployed(pipeline: str, table: Table) -> None:
    """One table's definition after the platform changed its target (e.g. applied a schema change)."""
    with platform_engine().begin() as conn:
        conn.execute(
            DEPLOYED_TABLES.update()
            .where(DEPLOYED_TABLES.c.pipeline == pipeline, DEPLOYED_TABLES.c.qualified == table.qualified)
            .values(definition=json.dumps(table_to_json(table), sort_keys=True), deployed_at=time.time())
        )


def deployed_tables(pipeline: str) -> dict[str, Table]:
    """schema.table -> the table as last deployed (empty: the pipeline was never materialized here)."""
    with platform_engine().connect() as conn:
        rows = conn.execute(
            sa.select(DEPLOYED_TABLES.c.qualified, DEPLOYED_TABLES.c.definition).where(
                DEPLOYED_TABLES.c.pipeline == pipeline
            )
        ).all()
    return {r.qualified: table_from_json(json.loads(r.definition)) for r in rows}


def forget_deployed(pipeline: str) -> None:
    with platform_engine().begin() as conn:
        conn.execute(DEPLOYED_TABLES.delete().where(DEPLOYED_TABLES.c.pipeline == pipeline))


def last_deployed_at(pipeline: str) -> float | None:
    """When a run last deployed the pipeline (None: never, or torn down since)."""
    with platform_engine().connect() as conn:
        return conn.execute(
            sa.select(sa.func.max(DEPLOYED_TABLES.c.deployed_at)).where(
                DEPLOYED_TABLES.c.pipeline == pipeline
            )
        ).scalar()
