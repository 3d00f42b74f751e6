"""Moments as people read them, and back.

Epoch seconds are what the code compares; a person reading a sensor cursor, an audit line or an
alert reads UTC wall time. Both directions live here so every place shows time the same way.
"""

from __future__ import annotations

import datetime as dt
import time


def utc_text(epoch: float) -> str:
    """``2026-12-05 06:44:09`` (UTC), the form the CLI, alerts, audit lines and held pipelines print."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def iso_utc(epoch: float | None) -> str | None:
    """``2026-12-05T06:44:09.123Z``: exact to the millisecond, sortable, and unambiguous in JSON."""
    if epoch is None:
        return None
    moment = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_of(value: str | float | int | None) -> float | None:
    """The inverse of :func:`iso_utc`; also takes epoch numbers, the form stored before it existed."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
