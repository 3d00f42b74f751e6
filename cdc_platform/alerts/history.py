"""Alert history in the platform's own database (:mod:`cdc_platform.platform_db`): one row per
incident, and one per notification sent."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from cdc_platform.audit import record
from cdc_platform.platform_db import ALERTS, NOTIFICATIONS, platform_engine


@dataclass(frozen=True)
class Alert:
    id: int
    rule: str
    pipeline: str
    subject: str
    severity: str
    message: str
    value: float | None
    triggered_at: float
    resolved_at: float | None
    acknowledged_at: float | None
    acknowledged_by: str | None
    last_notified_at: float | None
    notifications_sent: int

    @property
    def state(self) -> str:
        if self.resolved_at is not None:
            return "resolved"
        return "acknowledged" if self.acknowledged_at is not None else "open"


class AlertHistory:
    def __init__(self, url: str | None = None):
        self.engine = platform_engine(url)

    def _alerts(self, query) -> list[Alert]:
        with self.engine.connect() as conn:
            return [Alert(**row._mapping) for row in conn.execute(query)]

    def open_alert(self, rule: str, pipeline: str, subject: str) -> Alert | None:
        found = self._alerts(sa.select(ALERTS).where(ALERTS.c.rule == rule, ALERTS.c.pipeline == pipeline,
                                                    ALERTS.c.subject == subject, ALERTS.c.resolved_at.is_(None)))  # fmt: skip
        return found[0] if found else None

    def open(self, rule: str, pipeline: str, subject: str, severity: str, message: str, value: float | None,
             at: float) -> Alert:  # fmt: skip
        with self.engine.begin() as conn:
            new_id = conn.execute(ALERTS.insert().values(rule=rule, pipeline=pipeline, subject=subject, severity=severity,
                                                         message=message, value=value, triggered_at=at)).inserted_primary_key[0]  # fmt: skip
        return self.get(int(new_id))

    def get(self, alert_id: int) -> Alert:
        found = self._alerts(sa.select(ALERTS).where(ALERTS.c.id == alert_id))
        if not found:
            raise KeyError(f"no alert with id {alert_id}")
        return found[0]

    def update_value(self, alert_id: int, value: float | None, message: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(ALERTS.update().where(ALERTS.c.id == alert_id).values(value=value, message=message))

    def resolve(self, alert_id: int, at: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(ALERTS.update().where(ALERTS.c.id == alert_id).values(resolved_at=at))

    def acknowledge(self, alert_id: int, by: str, at: float | None = None) -> Alert:
        alert = self.get(alert_id)
        if alert.resolved_at is not None:
            raise ValueError(f"alert {alert_id} is already resolved")
        with self.engine.begin() as conn:
            conn.execute(ALERTS.update().where(ALERTS.c.id == alert_id)
                         .values(acknowledged_at=at or time.time(), acknowledged_by=by))  # fmt: skip
        record("alert.acknowledged", f"alert {alert_id}", pipeline=alert.pipeline,
               detail=f"{alert.rule} on {alert.subject}, acknowledged by {by}")  # fmt: skip
        return self.get(alert_id)

    def record_notification(self, alert_id: int, channel: str, kind: str, ok: bool, error: str | None,
                            at: float) -> None:  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(NOTIFICATIONS.insert().values(alert_id=alert_id, channel=channel, kind=kind, sent_at=at,
                                                       ok=ok, error=error))  # fmt: skip
            if ok:
                conn.execute(ALERTS.update().where(ALERTS.c.id == alert_id).values(
                    last_notified_at=at, notifications_sent=ALERTS.c.notifications_sent + 1))  # fmt: skip

    def mark_notified(self, alert_id: int, at: float) -> None:
        """An alert with no channel, or whose channels all failed, still counts as announced now (in-app)."""
        with self.engine.begin() as conn:
            conn.execute(ALERTS.update().where(ALERTS.c.id == alert_id).values(last_notified_at=at))

    def notifications(self, alert_id: int) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(NOTIFICATIONS).where(NOTIFICATIONS.c.alert_id == alert_id)
                                .order_by(NOTIFICATIONS.c.id))  # fmt: skip
            return [dict(r._mapping) for r in rows]

    def listing(self, include_resolved: bool = False, limit: int = 200) -> list[Alert]:
        query = sa.select(ALERTS).order_by(ALERTS.c.triggered_at.desc()).limit(limit)
        if not include_resolved:
            query = query.where(ALERTS.c.resolved_at.is_(None))
        return self._alerts(query)
