"""The Iceberg side of the S3 target that needs no services: its spec fields, the catalog's
properties (secrets resolved only there), and the Iceberg types of the Parquet layout's columns."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa

from cdc_platform.s3.changes import WriterShare
from cdc_platform.s3.current_state import Floor
from cdc_platform.s3.iceberg_catalog import LakeNames, catalog_name, file_io_properties, warehouse
from cdc_platform.s3.iceberg_tables import for_iceberg, iceberg_arrow_schema, offset_properties
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.types import CanonicalType as T
from cdc_platform.specs.loader import load_specs
from cdc_platform.specs.models import ConnectionSpec
from tests.unit.test_specs import CONN, PIPE, _error, _write

LAKE = {"kind": "s3", "bucket": "lake", "prefix": "cdc/", "endpoint_url": "http://127.0.0.1:15000",
        "access_key_id": {"env": "K"}, "secret_access_key": {"env": "S"}, "table_format": "iceberg"}  # fmt: skip


def test_iceberg_spec_fields_are_checked_where_they_are_written(tmp_path):
    _write(tmp_path, connections={"a": CONN, "b": {**LAKE, "table_format": "delta"}})
    assert "table_format" in _error(tmp_path) and "'parquet' or 'iceberg'" in _error(tmp_path)
    _write(tmp_path, connections={"a": CONN, "b": {**LAKE, "catalog": {"type": "rest", "token": "inline"}}})
    assert "catalog property 'token' holds a secret" in _error(tmp_path)
    _write(
        tmp_path,
        connections={"a": CONN, "b": {**LAKE, "table_format": "parquet", "catalog": {"type": "rest"}}},
    )
    assert "catalog properties apply to table_format iceberg only" in _error(tmp_path)
    _write(tmp_path, connections={"a": {**CONN, "table_format": "iceberg"}, "b": LAKE})
    assert "table_format, catalog and snapshot_retention_hours apply to s3 connections only" in _error(
        tmp_path
    )
    _write(
        tmp_path,
        connections={"a": CONN, "b": {**LAKE, "table_format": "parquet", "snapshot_retention_hours": 24}},
    )
    assert "snapshot_retention_hours applies to table_format iceberg only" in _error(tmp_path)


def test_partitions_and_writer_runs_are_checked_against_the_target(tmp_path):
    parquet = {**LAKE, "table_format": "parquet"}
    _write(
        tmp_path,
        connections={"a": CONN, "b": parquet},
        pipelines=[{**PIPE, "options": {"topic_partitions": 4}}],
    )
    assert "use table_format: iceberg on connection 'b' for more partitions" in _error(tmp_path)
    _write(tmp_path, connections={"a": CONN, "b": LAKE},
           pipelines=[{**PIPE, "options": {"topic_partitions": 2, "s3_writer_runs": 3}}])  # fmt: skip
    assert "s3_writer_runs is 3, more than the 2 partition(s)" in _error(tmp_path)
    _write(tmp_path, pipelines=[{**PIPE, "options": {"topic_partitions": 2, "s3_writer_runs": 2}}])
    assert "options.s3_writer_runs is for S3 targets" in _error(tmp_path)
    _write(tmp_path, connections={"a": CONN, "b": LAKE},
           pipelines=[{**PIPE, "options": {"topic_partitions": 4, "s3_writer_runs": 2}}])  # fmt: skip
    assert load_specs(tmp_path).pipelines["p1"].spec.options.s3_writer_runs == 2


def test_writer_shares_split_the_partitions_without_overlap():
    shares = [WriterShare(i, 3) for i in range(3)]
    owners = [[s for s in shares if s.owns(p)] for p in range(8)]
    assert all(len(o) == 1 for o in owners) and [str(o[0]) for o in owners[:4]] == [
        "1 of 3", "2 of 3", "3 of 3", "1 of 3"]  # fmt: skip


def test_the_floor_judges_each_partitions_changes_by_its_own_position():
    """A load that began at offsets {0: 5, 1: 500}: a change is stale below its own partition's
    offset, however it compares with the other's; copied rows of an older load are stale too."""
    floor = Floor(load_seq=2 * 505, since={0: 5, 1: 500})
    rows = pa.table({
        "_cdc_seq": pa.array([2 * 4 + 1, 2 * 5 + 1, 2 * 499 + 1, 2 * 500 + 1, 2 * 300, 2 * 505, 2 * 7 + 1], pa.int64()),
        "_cdc_partition": pa.array([0, 0, 1, 1, None, None, 2], pa.int32()),
    })  # fmt: skip
    assert floor.stale(rows).to_pylist() == [True, False, True, False, True, False, False]
    assert floor.highest == 2 * 505
    older = pa.table(
        {"_cdc_seq": pa.array([2 * 4 + 1, 2 * 6 + 1], pa.int64())}
    )  # before _cdc_partition existed
    assert Floor(12, {0: 6}).stale(older).to_pylist() == [True, False]


def test_the_catalog_gets_the_keys_from_their_references_and_a_warehouse_per_connection(monkeypatch):
    monkeypatch.setenv("K", "key-id")
    monkeypatch.setenv("S", "the-secret")
    conn = ConnectionSpec(name="lake", **LAKE)
    props = file_io_properties(conn, None)
    assert props["s3.access-key-id"] == "key-id" and props["s3.secret-access-key"] == "the-secret"
    assert props["s3.endpoint"] == "http://127.0.0.1:15000"
    assert warehouse(conn) == "s3://lake/cdc" and catalog_name(conn) == "cdc_lake_cdc"
    assert "the-secret" not in repr(conn) and "the-secret" not in conn.model_dump_json()
    assert LakeNames("replica", "t").change_log == ("replica", "t_changes")
    assert LakeNames("replica", "t").current == ("replica", "t")


def test_iceberg_types_hold_every_value_of_the_parquet_layout():
    table = Table("public", "t", (
        Column("id", T("smallint"), False, "smallint"),
        Column("wide", T("numeric", precision=50, scale=10), True, "numeric(50,10)"),
        Column("exact", T("numeric", precision=38, scale=2), True, "numeric(38,2)"),
    ), ("id",))  # fmt: skip
    schema = iceberg_arrow_schema(table)
    assert schema.field("id").type == pa.int32() and schema.field("wide").type == pa.string()
    assert schema.field("exact").type == pa.decimal128(38, 2)
    rows = pa.table({"id": pa.array([-32768, 32767], pa.int16()),
                     "wide": pa.array([Decimal("-0.0000000001"), Decimal("9" * 40 + ".5")], pa.decimal256(50, 10)),
                     "exact": pa.array([None, Decimal("1.25")], pa.decimal128(38, 2))})  # fmt: skip
    assert for_iceberg(rows).to_pylist() == [
        {"id": -32768, "wide": "-0.0000000001", "exact": None},
        {"id": 32767, "wide": "9" * 40 + ".5000000000", "exact": Decimal("1.25")},
    ]
    assert offset_properties({1: 9, 0: 41}) == {"cdc.offset.0": "41", "cdc.offset.1": "9"}
