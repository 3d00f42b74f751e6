"""S3 targets with ``table_format: iceberg`` on the real stack's S3 server (moto, and SeaweedFS in
``make test``'s S3 phase): the change log and the current-state table in a SQL catalog on the platform
database, read back through pyiceberg and through DuckDB's own Iceberg reader.

The merge's rules are exercised on tables written directly (updates, deletes, composite keys, a
late older change, a re-load that drops keys, merges in parts, schema evolution without rewriting
files, time travel); the whole chain on a PostgreSQL pipeline: full load, Debezium, the S3 writer
sensor appending to the change log (and a writer killed between its append and its Kafka commit),
the automation condition asking for the merge, and the current state equal to the source."""

from __future__ import annotations

import glob
import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import Decimal

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cdc_platform.dagster.resources import CdcSettingsResource
from cdc_platform.pipeline.plan import PipelineNames, table_topic
from cdc_platform.s3 import current_state
from cdc_platform.s3.changes import S3Table, waiting_changes
from cdc_platform.s3.current_state import merge_current
from cdc_platform.s3.iceberg_catalog import LakeNames, lake_catalog
from cdc_platform.s3.iceberg_tables import (
    FULL_LOAD_PROPERTY,
    append_changes,
    append_once,
    ensure_lake_tables,
    for_iceberg,
    full_load_properties,
    lake_arrow_schema,
    recorded_offsets,
)
from cdc_platform.s3.snapshot import source_rows
from cdc_platform.s3.storage import TableLocation
from cdc_platform.s3.values import arrow_schema
from cdc_platform.schema.discovery import discover_pipeline_tables
from cdc_platform.schema.model import Column, CopyJob, Table
from cdc_platform.schema.types import CanonicalType
from cdc_platform.specs.models import CHECKSUM_CHECK, COUNT_CHECK, FRESHNESS_CHECK, ConnectionSpec
from tests.dagster_support import run_schedule
from tests.pipeline_support import component_defs, connection, materialize, teardown, write_specs
from tests.support import pg_connect, pg_database, unique

pytestmark = pytest.mark.integration

CDC = ["_cdc_op", "_cdc_source_ts_ms", "_cdc_position", "_cdc_seq", "_cdc_partition"]


def duckdb_rows(stack, metadata_location: str) -> list[dict]:
    """The table as DuckDB's Iceberg extension reads it from S3 (extensions from PyPI, loaded by path)."""
    import duckdb

    con = duckdb.connect(
        config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false"}
    )
    for extension in ("httpfs", "avro", "iceberg"):
        module = __import__(f"duckdb_extension_{extension}")
        (path,) = glob.glob(os.path.join(os.path.dirname(module.__file__), "extensions", "*",
                                         f"{extension}.duckdb_extension"))  # fmt: skip
        con.execute(f"LOAD '{path}'")
    endpoint = stack.s3_url.split("://", 1)[1].rstrip("/")
    con.execute(f"CREATE SECRET (TYPE s3, KEY_ID 'testing', SECRET 'testing', ENDPOINT '{endpoint}', "
                "URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')")  # fmt: skip
    cursor = con.execute(f"SELECT * FROM iceberg_scan('{metadata_location}')")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass
class IcebergPipeline:
    """A PostgreSQL -> Iceberg pipeline of ``public.t``: its specs, definitions and Dagster instance."""

    name: str
    specs: object
    defs: dg.Definitions
    instance: dg.DagsterInstance
    pipeline_assets: dg.AssetsDefinition
    current_assets: dg.AssetsDefinition
    settings: CdcSettingsResource


def iceberg_pipeline(
    stack, tmp_path, src: str, lake_conn: dict, alerts: dict | None = None, **spec
) -> IcebergPipeline:
    """``spec``: more fields of the pipeline spec (options, quality)."""
    import yaml

    name = unique("ice")
    specs = write_specs(tmp_path, {"src": connection(stack, "postgresql", src), "lake": lake_conn},
                        [{"name": name, "source": "src", "target": "lake", "target_schema": "replica",
                          "tables": {"names": ["public.t"]}, **spec}])  # fmt: skip
    if alerts is not None:
        (specs.directory / "alerts.yaml").write_text(yaml.safe_dump({"alerts": alerts}))
    defs = component_defs(specs)
    built = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    (pipeline_assets,) = [a for a in built if dg.AssetKey(["lake", "replica", "t_changes"]) in a.keys]
    (current_assets,) = [a for a in built if a.node_def.name.endswith("_current_state")]
    settings = CdcSettingsResource(specs_dir=str(specs.directory), kafka_bootstrap=stack.kafka_bootstrap)
    return IcebergPipeline(
        name, specs, defs, dg.DagsterInstance.ephemeral(), pipeline_assets, current_assets, settings
    )


def wait_captured(stack, pipeline: str, topic: str, at_least: int, timeout: float = 90.0) -> None:
    """Until Debezium has put ``at_least`` changes beyond what the pipeline's writer has written."""
    deadline = time.monotonic() + timeout
    while sum(waiting_changes(stack.kafka_bootstrap, pipeline, [topic]).values()) < at_least:
        assert time.monotonic() < deadline, (
            f"fewer than {at_least} changes reached {topic} within {timeout:.0f} s"
        )
        time.sleep(0.5)


def plain(rows: list[dict], key: list[str]) -> list[dict]:
    return sorted(
        ({k: v for k, v in r.items() if k not in CDC} for r in rows), key=lambda r: [r[k] for k in key]
    )


KEYED = Table(
    "public", "t",
    (Column("a", CanonicalType("integer"), False, "int"), Column("b", CanonicalType("varchar", 10), False, "varchar"),
     Column("v", CanonicalType("numeric", precision=12, scale=2), True, "numeric(12,2)")),
    ("a", "b"),
)  # fmt: skip


def _rows(
    table: Table, values: list[tuple], op: str, seqs: list[int], partition: int | None = None
) -> pa.Table:
    names = [c.name for c in table.columns]
    records = [
        {**dict(zip(names, v, strict=True)), "_cdc_op": op, "_cdc_seq": s, "_cdc_partition": partition}
        for v, s in zip(values, seqs, strict=True)
    ]
    return pa.Table.from_pylist(records, schema=lake_arrow_schema(table))


def test_the_current_state_follows_updates_deletes_late_changes_and_a_reload(lake_conn, monkeypatch, stack):
    conn = ConnectionSpec(name="lake", **lake_conn)
    catalog = lake_catalog(conn, None)
    change_log, current = ensure_lake_tables(catalog, LakeNames("replica", "t"), KEYED)
    dec = Decimal
    loaded = [(i, k, dec(f"{i}.{k == 'x' and 10 or 20}")) for i in range(1, 6) for k in ("x", "y")]
    change_log.append(for_iceberg(_rows(KEYED, loaded, "r", [10] * len(loaded))),
                      snapshot_properties={FULL_LOAD_PROPERTY: "10"})  # fmt: skip
    first = merge_current(change_log.refresh(), current, ["a", "b"], "replica.t")
    assert (first.keys_changed, first.rows_written, first.total_rows) == (10, 10, 10)
    state_after_load = plain(current.refresh().scan().to_arrow().to_pylist(), ["a", "b"])

    # an update and a delete of one half of a composite key (its other half stays), and a late change
    # older than the row it would replace (ignored by _cdc_seq), written as two appends
    append_changes(change_log, _rows(KEYED, [(1, "x", dec("99.99")), (2, "y", None)], "u", [21, 23]), {0: 11})
    append_changes(change_log, _rows(KEYED, [(3, "x", None), (4, "x", dec("7.00"))], "d", [25, 5]), {0: 12})
    second = merge_current(change_log.refresh(), current.refresh(), ["a", "b"], "replica.t")
    assert second.changes_read == 4 and second.rows_deleted == 1 and second.total_rows == 9
    rows = {(r["a"], r["b"]): r for r in current.refresh().scan().to_arrow().to_pylist()}
    assert rows[(1, "x")]["v"] == dec("99.99") and rows[(1, "x")]["_cdc_op"] == "u"
    assert rows[(2, "y")]["v"] is None and (3, "x") not in rows and (3, "y") in rows
    assert rows[(4, "x")]["v"] == dec("4.10"), "a change older than the row does not replace it"
    assert recorded_offsets(change_log.refresh()) == {0: 12}

    # nothing new: no commit; time travel to the first merge still reads the loaded rows
    assert merge_current(change_log.refresh(), current.refresh(), ["a", "b"], "replica.t").snapshot_id is None
    travelled = current.refresh().scan(snapshot_id=first.snapshot_id).to_arrow().to_pylist()
    assert plain(travelled, ["a", "b"]) == state_after_load

    # a re-load that no longer holds key (5, *): gone, though no delete was ever captured; a change
    # older than the re-load arriving after it is ignored; merged in parts of one file each
    monkeypatch.setattr(current_state, "CHUNK_ROWS", 1)
    reloaded = [(i, k, dec("1.00")) for i in range(1, 5) for k in ("x", "y")]
    change_log.append(for_iceberg(_rows(KEYED, reloaded, "r", [40] * len(reloaded))),
                      snapshot_properties={FULL_LOAD_PROPERTY: "40"})  # fmt: skip
    append_changes(change_log.refresh(), _rows(KEYED, [(9, "z", dec("9.00"))], "c", [31]), {0: 15})
    append_changes(change_log.refresh(), _rows(KEYED, [(1, "y", dec("2.00"))], "u", [43]), {0: 21})
    logged: list[str] = []
    third = merge_current(change_log.refresh(), current.refresh(), ["a", "b"], "replica.t", logged.append)
    assert any("merged 1 of 3 parts" in line for line in logged), logged
    state = plain(current.refresh().scan().to_arrow().to_pylist(), ["a", "b"])
    expected = [{"a": a, "b": b, "v": dec("2.00") if (a, b) == (1, "y") else v} for a, b, v in reloaded]
    assert state == expected and third.total_rows == 8
    assert (
        duckdb_rows(stack, current.refresh().metadata_location)
        and plain(duckdb_rows(stack, current.refresh().metadata_location), ["a", "b"]) == expected
    )


def test_a_keys_changes_order_by_offset_within_its_partition_and_a_full_load_by_each_partitions_position(
    lake_conn, stack
):
    """Offsets of different partitions do not compare: partition 1 is far ahead of partition 0 here.
    A load whose copy began at offsets {0: 5, 1: 500} holds every change below them, and loses to
    every change at or above them, whatever their size against the other partition's."""
    conn = ConnectionSpec(name="lake", **lake_conn)
    change_log, current = ensure_lake_tables(lake_catalog(conn, None), LakeNames("replica", "p"), KEYED)
    dec = Decimal
    # before the load: a change of (1, x) on partition 0 (offset 3) and of (2, x) on partition 1
    # (offset 450): both older than the copy, so its rows win though 2 x 450 + 1 is above its seq
    append_changes(change_log, _rows(KEYED, [(1, "x", dec("0.01"))], "u", [2 * 3 + 1], 0), {0: 3})
    append_changes(change_log, _rows(KEYED, [(2, "x", dec("0.02"))], "u", [2 * 450 + 1], 1), {1: 450})
    loaded = [(1, "x", dec("1.00")), (2, "x", dec("2.00")), (3, "x", dec("3.00")), (4, "x", dec("4.00"))]
    seq = 2 * (5 + 500)
    change_log.append(for_iceberg(_rows(KEYED, loaded, "r", [seq] * len(loaded))),
                      snapshot_properties=full_load_properties(seq, {0: 5, 1: 500}))  # fmt: skip
    # after the copy began: (3, x) on partition 0 at offset 6 (2 x 6 + 1 = 13, far below the load's
    # seq) wins; (4, x) on partition 1 at offset 499 (captured before the copy, written late) loses
    append_changes(change_log.refresh(), _rows(KEYED, [(3, "x", dec("3.33"))], "u", [2 * 6 + 1], 0), {0: 6})
    append_changes(
        change_log.refresh(), _rows(KEYED, [(4, "x", dec("4.44"))], "u", [2 * 499 + 1], 1), {1: 499}
    )
    merge_current(change_log.refresh(), current, ["a", "b"], "replica.p")
    values = {r["a"]: r["v"] for r in current.refresh().scan().to_arrow().to_pylist()}
    assert values == {1: dec("1.00"), 2: dec("2.00"), 3: dec("3.33"), 4: dec("4.00")}

    # later, in the next merge: a change of (1, x) at partition 0 offset 7 beats the copied row; one of
    # (3, x) at offset 8 then a late one at offset 6 (seq 13 again): the newer stays
    append_changes(change_log.refresh(), _rows(KEYED, [(1, "x", dec("1.11")), (3, "x", dec("3.88"))], "u",
                                               [2 * 7 + 1, 2 * 8 + 1], 0), {0: 8})  # fmt: skip
    append_changes(change_log.refresh(), _rows(KEYED, [(3, "x", dec("3.66"))], "u", [2 * 6 + 1], 0), {0: 8})
    merge_current(change_log.refresh(), current.refresh(), ["a", "b"], "replica.p")
    values = {r["a"]: r["v"] for r in current.refresh().scan().to_arrow().to_pylist()}
    assert values == {1: dec("1.11"), 2: dec("2.00"), 3: dec("3.88"), 4: dec("4.00")}

    # a re-load whose copy began at {0: 9, 1: 501} no longer holds (2, x): gone; (1, x) changed at
    # partition 0 offset 9 (after the copy began) keeps its change; (3, x)'s change is under the floor
    seq = 2 * (9 + 501)
    reloaded = [(1, "x", dec("1.50")), (3, "x", dec("3.90")), (4, "x", dec("4.90"))]
    change_log.refresh().append(for_iceberg(_rows(KEYED, reloaded, "r", [seq] * len(reloaded))),
                                snapshot_properties=full_load_properties(seq, {0: 9, 1: 501}))  # fmt: skip
    append_changes(change_log.refresh(), _rows(KEYED, [(1, "x", dec("1.99"))], "u", [2 * 9 + 1], 0), {0: 9})
    merge_current(change_log.refresh(), current.refresh(), ["a", "b"], "replica.p")
    values = {r["a"]: r["v"] for r in current.refresh().scan().to_arrow().to_pylist()}
    assert values == {1: dec("1.99"), 3: dec("3.90"), 4: dec("4.90")}
    assert current_state.merge_floor(current.refresh()) == current_state.Floor(seq, {0: 9, 1: 501})


def test_two_writers_with_the_same_offsets_append_them_once(lake_conn, stack):
    """The fence under several writers: a writer holding an older snapshot of the change log (another
    appended since) loses the catalog's commit, retries on the newest snapshot, and writes only the
    offsets no append recorded; offsets all recorded write nothing."""
    conn = ConnectionSpec(name="lake", **lake_conn)
    catalog = lake_catalog(conn, None)
    change_log, _ = ensure_lake_tables(catalog, LakeNames("replica", "f"), KEYED)
    stale = catalog.load_table(("replica", "f_changes"))  # the second writer's view, before any append
    dec = Decimal
    first = _rows(KEYED, [(i, "x", dec("1.00")) for i in range(10)], "c", [2 * o + 1 for o in range(10)], 0)
    assert append_once(change_log, first, {0: 9}) is not None
    # the slower writer had read offsets 5..14: 5..9 are in; only 10..14 are appended, after a lost commit
    overlap = _rows(
        KEYED, [(i, "x", dec("2.00")) for i in range(5, 15)], "c", [2 * o + 1 for o in range(5, 15)], 0
    )
    assert append_once(stale, overlap, {0: 14}) is not None
    assert append_once(catalog.load_table(("replica", "f_changes")), overlap, {0: 14}) is None, "all recorded"
    rows = catalog.load_table(("replica", "f_changes")).scan().to_arrow().to_pylist()
    assert sorted((r["_cdc_seq"] - 1) // 2 for r in rows) == list(range(15))
    assert recorded_offsets(catalog.load_table(("replica", "f_changes"))) == {0: 14}


def test_maintenance_expires_old_snapshots_with_their_files_and_compacts_small_ones(
    lake_conn, monkeypatch, stack
):
    """Twenty flushes and merges, then maintenance as if two hours later with a one-hour retention:
    both tables keep only the snapshots the platform reads (the heads, the merged-through one, each
    partition's newest offset), the files only expired snapshots held are gone from S3, each table's
    small files become one, and no row changes: pyiceberg, DuckDB, the writer's offsets read as
    before, and the next merge reads only the new change, not the compacted ones."""
    import boto3

    from cdc_platform.s3 import lake_maintenance

    conn = ConnectionSpec(name="lake", **lake_conn)
    catalog = lake_catalog(conn, None)
    change_log, current = ensure_lake_tables(catalog, LakeNames("replica", "m"), KEYED)
    dec = Decimal
    loaded = [(i, "x", dec("0.00")) for i in range(100)]
    change_log.append(for_iceberg(_rows(KEYED, loaded, "r", [0] * 100)),
                      snapshot_properties=full_load_properties(0, {0: 0, 1: 0}))  # fmt: skip
    merge_current(change_log.refresh(), current, ["a", "b"], "replica.m")
    for n in range(1, 21):  # alternating partitions: updates (a file rewritten) and inserts (a file added)
        partition = n % 2
        ids = range(100 + 5 * n, 105 + 5 * n) if partition else range(n, n + 5)
        changed = [(i, "x", dec(f"{n}.00")) for i in ids]
        append_changes(change_log.refresh(), _rows(KEYED, changed, "cu"[1 - partition], [2 * n + 1] * 5, partition),
                       {partition: n})  # fmt: skip
        merge_current(change_log.refresh(), current.refresh(), ["a", "b"], "replica.m")
    change_log, current = change_log.refresh(), current.refresh()
    before = plain(current.scan().to_arrow().to_pylist(), ["a", "b"])
    logged = sorted(change_log.scan().to_arrow().to_pylist(), key=lambda r: (r["_cdc_seq"], r["a"]))
    offsets = recorded_offsets(change_log)
    s3 = boto3.client("s3", endpoint_url=stack.s3_url, aws_access_key_id="testing", aws_secret_access_key="testing",
                      region_name="us-east-1")  # fmt: skip

    def objects() -> set[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=lake_conn["bucket"], Prefix="wh/")
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    stored = objects()
    old_snapshot = current.metadata.snapshots[1].snapshot_id
    monkeypatch.setattr(lake_maintenance, "COMPACT_MIN_FILES", 3)
    assert lake_maintenance.due(current)
    through = current_state.merged_through(current)
    done = lake_maintenance.maintain(change_log, current, through, retention_hours=1, now=time.time() + 7200)
    change_log, current = change_log.refresh(), current.refresh()
    assert done.snapshots_expired >= 2 * 18 and done.files_deleted >= 8 and done.files_compacted >= 10 + 21, (
        done
    )
    assert not lake_maintenance.due(current), "the next maintenance waits an interval"
    assert len(change_log.metadata.snapshots) <= 4 and len(current.metadata.snapshots) <= 3
    assert recorded_offsets(change_log) == offsets == {0: 20, 1: 19}
    assert current_state.merged_through(current) == through
    gone = stored - objects()
    assert gone and all("/metadata/" in k or "/data/" in k for k in gone)
    assert not any(k.endswith(".metadata.json") for k in gone), "metadata files are the catalog's history"
    assert len(list(current.scan().plan_files())) == len(list(change_log.scan().plan_files())) == 1, (
        "each table's small files are one now"
    )
    assert sorted(change_log.scan().to_arrow().to_pylist(), key=lambda r: (r["_cdc_seq"], r["a"])) == logged
    assert plain(current.scan().to_arrow().to_pylist(), ["a", "b"]) == before
    assert plain(duckdb_rows(stack, current.metadata_location), ["a", "b"]) == before
    with pytest.raises(ValueError):
        current.scan(snapshot_id=old_snapshot).to_arrow()
    # the next change merges incrementally, on the compacted table
    append_changes(change_log, _rows(KEYED, [(0, "x", dec("9.99"))], "u", [2 * 21 + 1], 1), {1: 21})
    after = merge_current(change_log.refresh(), current, ["a", "b"], "replica.m")
    assert after.changes_read == 1
    assert {r["a"]: r["v"] for r in current.refresh().scan().to_arrow().to_pylist()}[0] == dec("9.99")


def test_new_columns_and_widened_types_evolve_both_tables_without_rewriting_a_file(lake_conn, stack):
    conn = ConnectionSpec(name="lake", **lake_conn)
    catalog = lake_catalog(conn, None)
    names = LakeNames("replica", "w")
    before = Table("public", "w", (
        Column("id", CanonicalType("integer"), False, "int"),
        Column("v", CanonicalType("numeric", precision=10, scale=2), True, "numeric(10,2)"),
        Column("s", CanonicalType("smallint"), True, "smallint"),
    ), ("id",))  # fmt: skip
    change_log, current = ensure_lake_tables(catalog, names, before)
    append_changes(
        change_log, _rows(before, [(1, Decimal("12345678.90"), 7), (2, None, -32768)], "c", [1, 3]), {0: 1}
    )
    merge_current(change_log.refresh(), current, ["id"], "replica.w")
    files_before = {t.file.file_path for t in change_log.refresh().scan().plan_files()}

    after = Table("public", "w", (
        Column("id", CanonicalType("bigint"), False, "bigint"),
        Column("v", CanonicalType("numeric", precision=14, scale=2), True, "numeric(14,2)"),
        Column("s", CanonicalType("smallint"), True, "smallint"),
        Column("note", CanonicalType("text"), True, "text"),
    ), ("id",))  # fmt: skip
    change_log, current = ensure_lake_tables(catalog, names, after)
    for table in (change_log, current):
        fields = {f.name: str(f.field_type) for f in table.schema().fields}
        assert fields["id"] == "long" and fields["v"] == "decimal(14, 2)" and fields["note"] == "string", (
            fields
        )
    assert {t.file.file_path for t in change_log.scan().plan_files()} == files_before, "no file rewritten"
    big = 2**40
    append_changes(change_log, _rows(after, [(big, Decimal("123456789012.34"), 1, "new"), (2, Decimal("1.00"), 2, None)],
                                     "u", [5, 7]), {0: 3})  # fmt: skip
    merge_current(change_log.refresh(), current.refresh(), ["id"], "replica.w")
    got = plain(current.refresh().scan().to_arrow().to_pylist(), ["id"])
    assert got == [
        {"id": 1, "v": Decimal("12345678.90"), "s": 7, "note": None},
        {"id": 2, "v": Decimal("1.00"), "s": 2, "note": None},
        {"id": big, "v": Decimal("123456789012.34"), "s": 1, "note": "new"},
    ]
    assert plain(duckdb_rows(stack, current.refresh().metadata_location), ["id"]) == got


PG_TABLE = """CREATE TABLE t (id int PRIMARY KEY, small smallint, amount numeric(12,2), wide numeric(50,10),
  ratio float8, at timestamptz, day date, note text, doc jsonb)"""

KILLED_WRITER = """
import os, pickle, signal, sys
import cdc_platform.s3.changes as changes
target, specs_dir, bootstrap, pipeline, table = pickle.loads(open(sys.argv[1], "rb").read())
changes._commit = lambda consumer, offsets: os.kill(os.getpid(), signal.SIGKILL)
changes.flush_tables(target, specs_dir, bootstrap, pipeline, "postgresql", [table], print)
"""


def test_postgres_to_iceberg_change_log_and_current_state_equal_the_source(
    stack, connect, tmp_path, lake_conn
):
    with pg_database(stack, "src") as src:
        with pg_connect(stack, src) as conn:
            conn.execute(PG_TABLE)
            conn.execute("INSERT INTO t SELECT g, g - 100, g / 7.0, g * 1e25 + g / 3.0, g / 3.0, now(), "
                         "date '2024-01-01' + g, 'row ' || g, jsonb_build_object('g', g) FROM generate_series(1, 200) g")  # fmt: skip
            conn.execute("INSERT INTO t VALUES (201, 32767, 'NaN', -0.0000000001, 'Infinity', '-infinity', 'infinity', "
                         "'', 'null')")  # fmt: skip
        ice = iceberg_pipeline(stack, tmp_path, src, lake_conn)
        name, specs, defs, instance = ice.name, ice.specs, ice.defs, ice.instance
        pipeline_assets, current_assets, settings = ice.pipeline_assets, ice.current_assets, ice.settings
        assert {k.path[-1] for k in pipeline_assets.keys} >= {
            "t_changes",
            "target_schema",
            "source_connector",
        }
        current_key = dg.AssetKey(["lake", "replica", "t"])
        assert set(current_assets.keys) == {current_key}
        assert current_assets.specs_by_key[current_key].deps[0].asset_key == dg.AssetKey(
            ["lake", "replica", "t_changes"]
        )
        sensor = defs.get_sensor_def("cdc_s3_writer")
        catalog = lake_catalog(specs.connection("lake"), specs.directory)
        (table,) = discover_pipeline_tables(
            specs.pipelines[name].spec, specs.connection("src"), specs.directory
        )

        def merge() -> dg.AssetMaterialization:
            result = dg.materialize([current_assets], instance=instance, resources={"cdc_settings": settings})
            (event,) = result.get_asset_materialization_events()
            return event.step_materialization_data.materialization

        def expected() -> list[dict]:
            names = [c.name for c in table.columns]
            rows = source_rows(
                specs.connection("src"), CopyJob(table, "x", "x"), specs.directory, None, 1000, {}
            )
            records = [dict(zip(names, r, strict=True)) for r in rows]
            schema = pa.schema([f for f in arrow_schema(table) if f.name not in CDC])
            return plain(for_iceberg(pa.Table.from_pylist(records, schema=schema)).to_pylist(), ["id"])

        def tick():
            result = sensor(dg.build_sensor_context(instance=instance, resources={"cdc_settings": settings}))
            for event in result.asset_events if isinstance(result, dg.SensorResult) else []:
                instance.report_runless_asset_event(event)  # as the daemon stores a sensor's events
            return result

        try:
            materialize(stack, specs, name, assets=pipeline_assets, instance=instance)
            loaded = merge()
            selection = dg.AssetSelection.assets(current_key)
            settled = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, asset_selection=selection
            )
            assert settled.total_requested == 0, "merged: nothing due"
            assert loaded.metadata["dagster/row_count"].value == 201
            assert loaded.metadata["snapshot_retention_hours"].value == 168, (
                "maintenance ran after the first merge"
            )
            current = catalog.load_table(("replica", "t"))
            assert plain(current.scan().to_arrow().to_pylist(), ["id"]) == expected()
            row = {r["id"]: r for r in current.scan().to_arrow().to_pylist()}[201]
            assert row["small"] == 32767 and row["amount"] is None and row["wide"] == "-0.0000000001"

            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t SELECT g, 1, g, g, g, now(), date '2024-06-01', 'new', '{}' "
                             "FROM generate_series(202, 400) g")  # fmt: skip
                conn.execute("UPDATE t SET note = 'updated', wide = 123456789012345678901234567890.0123456789 "
                             "WHERE id % 10 = 0")  # fmt: skip
                conn.execute("DELETE FROM t WHERE id % 15 = 0")
            # every change in Kafka first (199 inserts, 40 updates, 26 deletes and their tombstones), so the
            # writer killed below has them all to write
            topic = table_topic(specs.connection("src"), PipelineNames(name), table.qualified)
            wait_captured(stack, name, topic, 199 + 40 + 2 * 26)

            # a real death between the Iceberg commit and the Kafka commit: no change twice
            job = S3Table(table.qualified, table_topic(specs.connection("src"), PipelineNames(name), table.qualified),
                          table, TableLocation.of(specs.connection("lake"), "replica", "t"), LakeNames("replica", "t"))  # fmt: skip
            args = tmp_path / "flush.pickle"
            args.write_bytes(
                pickle.dumps((specs.connection("lake"), specs.directory, stack.kafka_bootstrap, name, job))
            )
            died = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(args)], capture_output=True, text=True,
                                  timeout=120, env={**os.environ})  # fmt: skip
            assert died.returncode == -signal.SIGKILL, died.stdout + died.stderr
            change_log = catalog.load_table(("replica", "t_changes"))
            recorded = recorded_offsets(change_log)
            assert recorded, "the dead writer committed its Iceberg append"

            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                tick()
                rows = catalog.load_table(("replica", "t_changes")).scan().to_arrow()
                if rows.num_rows >= 201 + 199 + 40 + 26:
                    break
                time.sleep(1)
            changes = [r for r in catalog.load_table(("replica", "t_changes")).scan().to_arrow().to_pylist()
                       if r["_cdc_op"] != "r"]  # fmt: skip
            seqs = [r["_cdc_seq"] for r in changes]
            assert len(seqs) == len(set(seqs)) == 199 + 40 + 26, "every change exactly once"

            # the writer's materializations make the current state due under its automation condition
            due = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, asset_selection=selection, cursor=settled.cursor
            )
            assert due.get_num_requested(current_key) == 1
            merged = merge()
            assert (
                merged.metadata["rows_deleted"].value == 13  # the other 13 were inserted since
                and merged.metadata["dagster/row_count"].value == 400 - 26
            )
            current = catalog.load_table(("replica", "t"))
            assert plain(current.scan().to_arrow().to_pylist(), ["id"]) == expected()
            by_duckdb = plain(duckdb_rows(stack, current.metadata_location), ["id"])
            assert [r["id"] for r in by_duckdb] == [r["id"] for r in expected()]
            assert by_duckdb == expected()

            # the quality schedules judge the current state: equal now; then a change not yet merged is in
            # flight (not judged), and a value changed behind the platform's back is named by key and column
            agreed = run_schedule(defs, instance, "cdc_lake_checksum_checks_schedule")[CHECKSUM_CHECK]
            assert agreed.passed and agreed.metadata["source_rows"].value == 400 - 26, agreed.description
            counted = run_schedule(defs, instance, "cdc_lake_quality_checks_schedule")[COUNT_CHECK]
            assert counted.passed and counted.metadata["difference"].value == 0, counted.description
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t VALUES (1000, 1, 1, 1, 1, now(), '2024-01-01', 'late', '{}')")
                conn.execute("UPDATE t SET note = 'moving' WHERE id = 1")
            current = catalog.load_table(("replica", "t"))
            rows = current.scan().to_arrow()
            tampered = pc.if_else(
                pc.equal(rows["id"], 7), pa.scalar("tampered", rows["note"].type), rows["note"]
            )
            current.overwrite(rows.set_column(rows.schema.get_field_index("note"), "note", tampered))
            wait_captured(stack, name, topic, 2)  # the two source changes are in flight, not yet written
            judged = run_schedule(defs, instance, "cdc_lake_checksum_checks_schedule")[CHECKSUM_CHECK]
            assert not judged.passed and judged.metadata["not_judged_in_flight"].value == 2, (
                judged.description
            )
            assert judged.metadata["differences"].value == [
                {"kind": "changed", "key": "id=7", "columns": ["note"]}
            ]
            assert "1 changed row(s) differ: id=7 (note)" in judged.description
            counted = run_schedule(defs, instance, "cdc_lake_quality_checks_schedule")[COUNT_CHECK]
            assert counted.passed and counted.metadata["difference"].value == 1, counted.description
        finally:
            teardown(stack, connect, specs, name)


def test_source_schema_changes_evolve_the_iceberg_tables_under_a_writer(stack, connect, tmp_path, lake_conn):
    """A new column, a widened decimal and int -> bigint, and a dropped column, followed by the
    cdc_schema_changes sensor while rows keep arriving: both Iceberg tables evolve in place (no file of
    the change log rewritten), the rows written before a change keep their values, the dropped column
    stays (NULL in newer rows), and the current state equals the source."""
    from tests.faults import SlowWriter

    with pg_database(stack, "src") as src:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id bigint PRIMARY KEY, amount numeric(10,2), price int, qty int)")
            conn.execute("INSERT INTO t SELECT g, g / 100.0, g, g FROM generate_series(1, 100) g")
        ice = iceberg_pipeline(stack, tmp_path, src, lake_conn)
        name, specs, defs, instance = ice.name, ice.specs, ice.defs, ice.instance
        pipeline_assets, current_assets, settings = ice.pipeline_assets, ice.current_assets, ice.settings
        writer_sensor, schema_sensor = (
            defs.get_sensor_def("cdc_s3_writer"),
            defs.get_sensor_def("cdc_schema_changes"),
        )
        catalog = lake_catalog(specs.connection("lake"), specs.directory)

        def tick() -> None:
            writer_sensor(dg.build_sensor_context(instance=instance, resources={"cdc_settings": settings}))

        def follow() -> str:
            result = schema_sensor(dg.build_sensor_context(
                instance=instance, resources={"kafka_connect": connect, "cdc_settings": settings}))  # fmt: skip
            return result.skip_reason.skip_message if result.skip_reason else ""

        def write(i: int) -> None:
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t (id, amount) SELECT g, g / 100.0 FROM generate_series(%s::bigint, "
                             "%s::bigint + 9) g", (1000 + i * 10, 1000 + i * 10))  # fmt: skip

        writer = SlowWriter(write, 0)
        try:
            materialize(stack, specs, name, assets=pipeline_assets, instance=instance)
            writer.start()
            tick()
            files_before = {
                t.file.file_path for t in catalog.load_table(("replica", "t_changes")).scan().plan_files()
            }
            with pg_connect(stack, src) as conn:
                conn.execute("ALTER TABLE t ADD COLUMN note text")
                conn.execute("UPDATE t SET note = 'n' || id WHERE id % 3 = 0")
            tick()  # the writer meets the new column before the sensor: it waits
            assert "applied" in follow()
            with pg_connect(stack, src) as conn:
                conn.execute(
                    "ALTER TABLE t ALTER COLUMN amount TYPE numeric(16,2), ALTER COLUMN qty TYPE bigint"
                )
                conn.execute("UPDATE t SET amount = 12345678901234.56, qty = 5000000000000 WHERE id % 4 = 0")
            assert "applied" in follow()
            with pg_connect(stack, src) as conn:
                conn.execute("ALTER TABLE t DROP COLUMN price")
            assert "applied" in follow()
            writer.stop_event.set()
            writer.join()
            assert writer.errors == 0 and writer.next_id > 3

            def source() -> list[dict]:
                with pg_connect(stack, src) as conn:
                    cursor = conn.execute("SELECT id, amount, qty, note FROM t ORDER BY id")
                    return [
                        dict(zip(("id", "amount", "qty", "note"), r, strict=True)) for r in cursor.fetchall()
                    ]

            deadline, got, expected = time.monotonic() + 120, [], []
            while time.monotonic() < deadline:
                tick()
                dg.materialize([current_assets], instance=instance, resources={"cdc_settings": settings})
                rows = catalog.load_table(("replica", "t")).scan().to_arrow().to_pylist()
                got = sorted(
                    ({k: r[k] for k in ("id", "amount", "qty", "note")} for r in rows), key=lambda r: r["id"]
                )
                expected = source()
                if got == expected:
                    break
                time.sleep(1)
            assert got == expected, [r for r in expected if r not in got][:5]
            for identifier in (("replica", "t_changes"), ("replica", "t")):
                fields = {f.name: str(f.field_type) for f in catalog.load_table(identifier).schema().fields}
                assert (
                    fields["amount"] == "decimal(16, 2)"
                    and fields["qty"] == "long"
                    and fields["note"] == "string"
                )
                assert "price" in fields, "a dropped column stays, NULL in newer rows"
            change_log = catalog.load_table(("replica", "t_changes"))
            assert files_before <= {t.file.file_path for t in change_log.scan().plan_files()}, (
                "no file rewritten"
            )
            prices = {
                r["id"]: r["price"]
                for r in catalog.load_table(("replica", "t")).scan().to_arrow().to_pylist()
            }
            assert prices[7] == 7 and all(prices[i] is None for i in prices if i >= 1000)
        finally:
            writer.stop_event.set()
            teardown(stack, connect, specs, name)


def test_an_s3_pipelines_writer_lag_is_measured_and_alerts(stack, connect, tmp_path, lake_conn, httpserver):
    """The metrics schedule's job measures an S3 pipeline's lag as its writer's (consumer group
    ``cdc-<pipeline>-s3``), per table and for the pipeline; an alert rule on it opens while the writer
    is behind and resolves once it has written, through the alert sensor."""

    from cdc_platform.health.metrics_store import MetricsStore

    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    with pg_database(stack, "src") as src:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        ice = iceberg_pipeline(stack, tmp_path, src, lake_conn, alerts={
            "channels": {"hook": {"kind": "webhook", "url": httpserver.url_for("/hook"), "format": "slack"}},
            "rules": [{"name": "writer_lag", "metric": "lag_messages", "subject": "sink", "above": 50,
                       "resolve_after": 0, "severity": "warning", "channels": ["hook"]}],
        })  # fmt: skip
        name, specs, defs, instance = ice.name, ice.specs, ice.defs, ice.instance
        pipeline_assets, settings = ice.pipeline_assets, ice.settings
        collect_job = defs.resolve_job_def("cdc_collect_metrics")
        alert_sensor, writer = defs.get_sensor_def("cdc_alerts"), defs.get_sensor_def("cdc_s3_writer")

        def lag() -> float:
            assert collect_job.execute_in_process(instance=instance).success
            return MetricsStore().latest(name).get(("sink", "lag_messages"), (0, -1))[1]

        def alerts() -> list[str]:
            result = alert_sensor(
                dg.build_sensor_context(instance=instance, resources={"cdc_settings": settings})
            )
            return [e.metadata["alert_state"].value for e in result.asset_events or []
                    if isinstance(e, dg.AssetObservation)]  # fmt: skip

        try:
            materialize(stack, specs, name, assets=pipeline_assets, instance=instance)
            assert lag() == 0 and alerts() == []
            with pg_connect(stack, src) as conn:
                conn.execute("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 300) g")
            deadline = time.monotonic() + 60
            while lag() < 300:
                assert time.monotonic() < deadline, "the writer's lag never showed the 300 changes"
                time.sleep(1)
            assert MetricsStore().latest(name)[("public.t", "lag_messages")][1] == 300
            assert alerts() == ["triggered"]
            deadline = time.monotonic() + 60
            while lag() > 0:
                writer(dg.build_sensor_context(instance=instance, resources={"cdc_settings": settings}))
                assert time.monotonic() < deadline, "the writer never caught up"
            assert alerts() == ["resolved"]
            texts = [r[0].get_json()["text"] for r in httpserver.log]
            assert texts[0].startswith("[FIRING]") and texts[-1].startswith("[RESOLVED]"), texts
        finally:
            teardown(stack, connect, specs, name)


def test_the_heartbeat_reaches_the_change_log_and_tells_freshness_and_latency(
    stack, connect, tmp_path, lake_conn
):
    """The writer reads the pipeline's heartbeat topic at each tick: the metrics schedule's job turns it
    into latency and heartbeat age, the current state's freshness check passes while the writer ticks,
    and fails, naming the age, once it has not for longer than the threshold."""
    from cdc_platform.health.metrics_store import MetricsStore

    with pg_database(stack, "src") as src:
        with pg_connect(stack, src) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t VALUES (1, 'a')")
        ice = iceberg_pipeline(stack, tmp_path, src, lake_conn, options={"heartbeat_interval_ms": 1000},
                               quality={"freshness_seconds": 20})  # fmt: skip
        writer = ice.defs.get_sensor_def("cdc_s3_writer")
        collect_job = ice.defs.resolve_job_def("cdc_collect_metrics")
        try:
            materialize(stack, ice.specs, ice.name, assets=ice.pipeline_assets, instance=ice.instance)
            deadline, figures = time.monotonic() + 90, {}
            while time.monotonic() < deadline:
                writer(
                    dg.build_sensor_context(instance=ice.instance, resources={"cdc_settings": ice.settings})
                )
                assert collect_job.execute_in_process(instance=ice.instance).success
                figures = {
                    m: v
                    for (subject, m), (_, v) in MetricsStore().latest(ice.name).items()
                    if subject == "pipeline"
                }
                if "heartbeat_age_seconds" in figures:
                    break
                time.sleep(1)
            assert 0 <= figures.get("latency_seconds", -1) < 30 and figures["heartbeat_age_seconds"] < 30, (
                figures
            )
            # a tick just before the check, as the daemon's writer keeps ticking; the threshold leaves room
            # for a busy machine's Debezium and the check run's own start
            writer(dg.build_sensor_context(instance=ice.instance, resources={"cdc_settings": ice.settings}))
            fresh = run_schedule(ice.defs, ice.instance, "cdc_lake_quality_checks_schedule")[FRESHNESS_CHECK]
            assert fresh.passed and fresh.metadata["heartbeat_age_seconds"].value < 20, fresh.description
            time.sleep(21)  # the writer does not tick: nothing newer reaches the change log
            stale = run_schedule(ice.defs, ice.instance, "cdc_lake_quality_checks_schedule")[FRESHNESS_CHECK]
            assert not stale.passed and stale.metadata["heartbeat_age_seconds"].value >= 20, stale.description
            assert "the change log is at most" in stale.description
        finally:
            teardown(stack, connect, ice.specs, ice.name)
