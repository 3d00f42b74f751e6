"""The platform's own time series: every collected figure, so rates and durations can be computed.

Dagster keeps observations for the UI's plots; alert rules need "lag above N for 5 minutes" and the
collector needs the previous sample to turn offsets into rates, so the figures also go here:
SQLite under ``$DAGSTER_HOME`` by default, any SQLAlchemy URL (PostgreSQL in production) through
``CDC_METRICS_URL``. The table is one of the platform's migrated tables (cdc_platform/platform_db.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from cdc_platform.platform_db import SAMPLES, platform_engine


@dataclass(frozen=True)
class Sample:
    ts: float
    pipeline: str
    subject: str
    metric: str
    value: float


class MetricsStore:
    def __init__(self, url: str | None = None):
        self.engine = platform_engine(url)

    def record(self, samples: list[Sample]) -> None:
        if not samples:
            return
        with self.engine.begin() as conn:
            conn.execute(SAMPLES.insert(), [s.__dict__ for s in samples])

    def latest(self, pipeline: str) -> dict[tuple[str, str], tuple[float, float]]:
        """(subject, metric) -> (ts, value) of the newest sample of each series of ``pipeline``."""
        newest = (
            sa.select(SAMPLES.c.subject, SAMPLES.c.metric, sa.func.max(SAMPLES.c.ts).label("ts"))
            .where(SAMPLES.c.pipeline == pipeline)
            .group_by(SAMPLES.c.subject, SAMPLES.c.metric)
            .subquery()
        )
        query = sa.select(SAMPLES.c.subject, SAMPLES.c.metric, SAMPLES.c.ts, SAMPLES.c.value).join(
            newest,
            sa.and_(SAMPLES.c.subject == newest.c.subject, SAMPLES.c.metric == newest.c.metric,
                    SAMPLES.c.ts == newest.c.ts, SAMPLES.c.pipeline == pipeline),
        )  # fmt: skip
        with self.engine.connect() as conn:
            return {(r.subject, r.metric): (r.ts, r.value) for r in conn.execute(query)}

    def series(self, pipeline: str, subject: str, metric: str, since: float) -> list[tuple[float, float]]:
        query = (
            sa.select(SAMPLES.c.ts, SAMPLES.c.value)
            .where(SAMPLES.c.pipeline == pipeline, SAMPLES.c.subject == subject, SAMPLES.c.metric == metric,
                   SAMPLES.c.ts >= since)
            .order_by(SAMPLES.c.ts)
        )  # fmt: skip
        with self.engine.connect() as conn:
            return [(r.ts, r.value) for r in conn.execute(query)]

    def prune(self, older_than: float) -> int:
        with self.engine.begin() as conn:
            return conn.execute(SAMPLES.delete().where(SAMPLES.c.ts < older_than)).rowcount
