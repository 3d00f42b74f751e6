"""Where a change's latency goes, stage by stage, PostgreSQL -> PostgreSQL or MariaDB -> PostgreSQL.

A pipeline replicates one table while a writer commits ``--rate`` single-row inserts per second.
The target table gets a trigger that stamps ``applied_at`` with the target's clock when the sink
writes the row, and a consumer reads the same changes from the pipeline's topic. Per change:

- ``capture``: the source commit (``source.ts_ms``) -> Debezium built the event (``ts_ms``);
- ``produce``: Debezium's event -> the record's Kafka timestamp (the producer's send time);
- ``sink``: the Kafka timestamp -> the sink's statement on the target (``applied_at``);
- ``visible``: ``applied_at`` -> the poller first saw the row (the sink's commit, and the poll).

All clocks are this machine's. ``source.ts_ms`` has millisecond resolution on PostgreSQL; MariaDB's
binlog stamps events in whole seconds, so from MariaDB only ``sink``, ``visible`` and ``total`` mean
much. Not a test. Run: ``python bench/latency_breakdown.py [--pairs postgresql-postgresql] [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cdc_latency import Db, percentile  # noqa: E402

from cdc_platform.kafka_connect import KafkaConnectResource  # noqa: E402
from cdc_platform.pipeline.plan import PipelineNames, table_topic  # noqa: E402
from cdc_platform.pipeline.teardown import teardown_pipeline  # noqa: E402
from cdc_platform.settings import load_stack_settings  # noqa: E402
from tests.pipeline_support import connection, materialize, write_specs  # noqa: E402
from tests.support import mariadb_database, pg_database, unique  # noqa: E402

STAGES = ("capture", "produce", "sink", "visible", "total")


class TopicReader(threading.Thread):
    """Debezium's timestamps and the Kafka timestamp of every insert event, by row id."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("breakdown"),
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
        self.consumer.subscribe([topic])
        self.stop_event = threading.Event()
        self.events: dict[int, tuple[float, float, float]] = {}

    def run(self) -> None:
        while not self.stop_event.is_set():
            message = self.consumer.poll(0.2)
            if message is None or message.error() or message.value() is None:
                continue
            payload = json.loads(message.value())["payload"]
            if payload.get("op") != "c":
                continue
            _, kafka_ms = message.timestamp()
            self.events[int(payload["after"]["id"])] = (
                payload["source"]["ts_ms"] / 1000,
                payload["ts_ms"] / 1000,
                kafka_ms / 1000,
            )
        self.consumer.close()


def run_pair(stack, pair: str, rate: int, seconds: float) -> dict[str, list[float]]:
    source_kind, target_kind = pair.split("-")
    if target_kind != "postgresql":
        raise SystemExit(
            "the breakdown stamps applied_at with a PostgreSQL trigger: the target must be PostgreSQL"
        )
    connect = KafkaConnectResource(url=stack.connect_url, timeout_seconds=60)
    with pg_database(stack, "bsrc") as pg_src, pg_database(stack, "btgt") as tgt_db, \
            mariadb_database(stack, "bsrc") as my_src:  # fmt: skip
        src_db = pg_src if source_kind == "postgresql" else my_src
        src_schema = "public" if source_kind == "postgresql" else src_db
        source = Db(stack, source_kind, src_db, src_schema)
        source.run("CREATE TABLE stages (id bigint PRIMARY KEY, payload varchar(100))")
        name = unique("brk")
        with tempfile.TemporaryDirectory() as tmp:
            specs = write_specs(Path(tmp), {"src": connection(stack, source_kind, src_db),
                                            "tgt": connection(stack, "postgresql", tgt_db)},
                                [{"name": name, "source": "src", "target": "tgt", "target_schema": "replica",
                                  "tables": {"names": [f"{src_schema}.stages"]},
                                  # the stages need each event's source commit time (source.ts_ms)
                                  "options": {"change_events": "full"}}])  # fmt: skip
            materialize(stack, specs, name)
            source_spec = specs.connection(specs.pipelines[name].spec.source)
            try:
                target = Db(stack, "postgresql", tgt_db, "replica")
                target.run("ALTER TABLE replica.stages ADD COLUMN applied_at double precision")
                target.run("CREATE FUNCTION replica.stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                           "NEW.applied_at := extract(epoch FROM clock_timestamp()); RETURN NEW; END $$")  # fmt: skip
                target.run("CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON replica.stages "
                           "FOR EACH ROW EXECUTE FUNCTION replica.stamp()")  # fmt: skip
                reader = TopicReader(stack.kafka_bootstrap, table_topic(source_spec, PipelineNames(name),
                                                                        f"{src_schema}.stages"))  # fmt: skip
                reader.start()
                seen: dict[int, tuple[float, float]] = {}
                done = threading.Event()

                def poll() -> None:
                    last = 0
                    while not done.is_set():
                        rows = target.run("SELECT id, applied_at FROM replica.stages WHERE id > %s", (last,))
                        at = time.time()
                        for row_id, applied in rows:
                            seen.setdefault(int(row_id), (float(applied), at))
                            last = max(last, int(row_id))
                        time.sleep(0.01)

                poller = threading.Thread(target=poll, daemon=True)
                poller.start()
                started = time.monotonic()
                for n in range(1, int(rate * seconds) + 1):
                    time.sleep(max(0.0, started + n / rate - time.monotonic()))
                    source.run("INSERT INTO stages (id, payload) VALUES (?, 'x')", (n,))
                time.sleep(5)
                done.set()
                reader.stop_event.set()
                poller.join()
                reader.join()
            finally:
                teardown_pipeline(name, connect, lambda *_: None, source=source_spec, specs_dir=specs.directory,
                                  delete_topics=True, kafka_bootstrap=stack.kafka_bootstrap)  # fmt: skip
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    for row_id, (committed, built, sent) in reader.events.items():
        if row_id not in seen:
            continue
        applied, visible = seen[row_id]
        for stage, value in zip(STAGES, (built - committed, sent - built, applied - sent, visible - applied,
                                         visible - committed), strict=True):  # fmt: skip
            stages[stage].append(value)
    return stages


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", default="postgresql-postgresql")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    stack = load_stack_settings()
    for pair in args.pairs.split(","):
        stages = run_pair(stack, pair, args.rate, args.seconds)
        parts = "  ".join(f"{s} p50 {percentile(v, 50) * 1000:5.0f} / p99 {percentile(v, 99) * 1000:5.0f} ms"
                          for s, v in stages.items())  # fmt: skip
        print(f"{pair:24} {len(stages['total']):,} changes  {parts}", flush=True)


if __name__ == "__main__":
    main()
