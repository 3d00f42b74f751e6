"""Row-count parity between a source table and its target, aware of changes in flight.

Counting both sides of a busy table never gives one instant. What makes the comparison sound is a
bound on the changes in flight. The sink has committed offset ``C0`` before the target is counted,
so everything up to ``C0`` is in that count. The source is counted next. ``E``, the topic's end
offset read afterwards, covers every change committed before the source count (reading it later
only loosens the bound). Each change event moves a count by at most one, so
``|source - target| <= E - C0``. A difference within the bound is replication in flight; one
outside it is a real divergence. An idle table has a bound of zero: the counts must be equal. A
difference beyond the bound is counted again (up to ``attempts``) before it is reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cdc_platform.db import mysql_connect, pg_connect
from cdc_platform.health.collect import PipelineWatch, TableWatch, kafka_offsets
from cdc_platform.schema.ddl import qualified
from cdc_platform.specs.models import ConnectionSpec

#: after the source count, how long Debezium gets to put its last changes into the topic
CAPTURE_GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class CountComparison:
    source_rows: int
    target_rows: int
    #: changes possibly in flight between the two counts (None: the pipeline does not stream)
    in_flight_bound: int | None
    attempts: int
    seconds: float

    @property
    def difference(self) -> int:
        return self.source_rows - self.target_rows

    @property
    def agrees(self) -> bool:
        return abs(self.difference) <= (self.in_flight_bound or 0)


def count_rows(conn: ConnectionSpec, specs_dir: Path, schema: str, table: str) -> int:
    kind = conn.kind.value
    sql = f"SELECT count(*) FROM {qualified(kind, schema, table)}"
    if kind == "postgresql":
        with pg_connect(conn, specs_dir, autocommit=True, connect_timeout=10) as db:
            return int(db.execute(sql).fetchone()[0])

    db = mysql_connect(conn, specs_dir, database="", connect_timeout=10)
    try:
        with db.cursor() as cur:
            cur.execute(sql)
            return int(cur.fetchone()[0])
    finally:
        db.close()


def compare_counts(
    source: ConnectionSpec, target: ConnectionSpec, specs_dir: Path, source_table: tuple[str, str],
    target_table: tuple[str, str], *, stream: tuple[str, str, str] | None = None, attempts: int = 3,
) -> CountComparison:  # fmt: skip
    """``stream`` = (bootstrap, topic, sink group) when changes replicate; None for a copy only."""
    started = time.monotonic()
    result: CountComparison | None = None
    for attempt in range(1, attempts + 1):
        committed = topic_offsets(*stream)[1] if stream else None
        target_rows = count_rows(target, specs_dir, *target_table)
        source_rows = count_rows(source, specs_dir, *source_table)
        bound = None
        if stream:
            time.sleep(CAPTURE_GRACE_SECONDS)
            end = topic_offsets(*stream)[0]
            bound = max(end - (committed or 0), 0)
        result = CountComparison(source_rows, target_rows, bound, attempt, time.monotonic() - started)
        if result.agrees or not stream:  # within the bound: replication in flight, nothing to retry
            return result
    assert result is not None
    return result


def topic_offsets(bootstrap: str, topic: str, group: str) -> tuple[int, int]:
    """(end offset, the sink's committed offset) of one topic, summed over its partitions."""
    watch = PipelineWatch("_", (TableWatch("_", topic, "_"),), group, None)
    ends, committed, _ = kafka_offsets(bootstrap, [watch])
    return ends.get(topic, 0), committed.get("_", {}).get(topic, 0)
