"""The S3 target's parts that need no services: its specs, its plan, the values change events
become, and the merge of snapshot and change rows."""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Context, Decimal

import pyarrow as pa
import pytest

from cdc_platform.pipeline.plan import build_plan
from cdc_platform.s3.latest import latest
from cdc_platform.s3.storage import TableLocation
from cdc_platform.s3.values import Substituted, arrow_schema, arrow_type, change_value
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.types import CanonicalType as T
from cdc_platform.specs.loader import load_specs
from cdc_platform.specs.models import ConnectionSpec
from tests.unit.test_specs import CONN, PIPE, _error, _write

LAKE = {"kind": "s3", "bucket": "lake", "prefix": "cdc/", "endpoint_url": "http://127.0.0.1:15000",
        "access_key_id": {"env": "K"}, "secret_access_key": {"env": "S"}}  # fmt: skip


def test_s3_specs_are_checked_where_they_are_written(tmp_path):
    _write(tmp_path, connections={"a": CONN, "b": {**LAKE, "bucket": None}})
    assert "an s3 connection needs a bucket" in _error(tmp_path)
    _write(tmp_path, connections={"a": CONN, "b": {**LAKE, "secret_access_key": None}})
    assert "give both access_key_id and secret_access_key" in _error(tmp_path)
    _write(tmp_path, connections={"a": CONN, "b": {**LAKE, "access_key_id": "AKIA-inline"}})
    assert "an inline key is not allowed" in _error(tmp_path)
    _write(tmp_path, connections={"a": LAKE, "b": CONN})
    assert "S3 is a target only" in _error(tmp_path)
    _write(tmp_path, connections={"a": CONN, "b": LAKE}, pipelines=[{**PIPE, "options": {"sink_tasks": 2}}])
    assert "field 'options.sink_tasks'" in _error(tmp_path)
    _write(
        tmp_path,
        connections={"a": CONN, "b": LAKE},
        pipelines=[{**PIPE, "options": {"change_events": "lean"}}],
    )
    assert "field 'options.change_events'" in _error(tmp_path) and "set it to full" in _error(tmp_path)
    _write(tmp_path, connections={"a": CONN, "b": LAKE})
    assert load_specs(tmp_path).pipelines["p1"].spec.target == "b"


def test_an_s3_plan_has_no_ddl_no_sink_and_the_converter_keeps_every_value(tmp_path, monkeypatch):
    monkeypatch.setenv("SRC_PW", "x")
    _write(tmp_path, connections={"a": CONN, "b": LAKE})
    specs = load_specs(tmp_path)
    table = Table("public", "t", (Column("id", T("integer"), False, "int4"),), ("id",))
    plan = build_plan(specs, specs.pipelines["p1"].spec, [table], "k:9092")
    # the heartbeat table is captured (its topic read by the writer), with no twin on the target
    assert plan.ddl == () and plan.sink_config is None and plan.heartbeat is not None
    assert plan.source_config["heartbeat.action.query"].startswith('INSERT INTO "public"."cdc_heartbeat_p1"')
    assert plan.source_config["exact.target"] == "s3"
    assert "transforms" not in plan.source_config  # the files need each change's source position
    assert dict(plan.routes) == {"p1.public.t": "t", "p1.public.cdc_heartbeat_p1": "cdc_heartbeat_p1"}
    where = TableLocation.of(specs.connection("b"), "s", "t")
    assert where.uri == "s3://lake/cdc/s/t/" and where.change_file(0, 5, 12).endswith(
        "/changes/p0/00000000000000000005-00000000000000000012.parquet"
    )


def test_column_types_of_the_parquet_files():
    assert arrow_type(T("numeric", precision=12, scale=2)) == pa.decimal128(12, 2)
    assert arrow_type(T("numeric", precision=60, scale=10)) == pa.decimal256(60, 10)
    assert arrow_type(T("numeric")) == pa.string()  # unbounded: the exact text
    assert arrow_type(T("timestamptz")) == pa.timestamp("us", tz="UTC")
    schema = arrow_schema(Table("s", "t", (Column("id", T("bigint"), False, "int8"),), ("id",)))
    assert schema.names == ["id", "_cdc_op", "_cdc_source_ts_ms", "_cdc_position", "_cdc_seq"]


def test_change_values_decode_debeziums_and_the_converters_forms():
    decimal_field = {
        "type": "bytes",
        "name": "org.apache.kafka.connect.data.Decimal",
        "parameters": {"scale": "3"},
    }
    raw = base64.b64encode((-1500).to_bytes(2, "big", signed=True)).decode()
    assert change_value(T("numeric", precision=10, scale=3), raw, decimal_field, "mysql") == Decimal("-1.500")
    assert change_value(
        T("numeric", precision=10, scale=2), "12.50", {"type": "string"}, "postgresql"
    ) == Decimal("12.50")
    assert change_value(T("numeric"), "NaN", {"type": "string"}, "postgresql") == "NaN"
    with pytest.raises(Substituted):
        change_value(T("numeric", precision=10, scale=2), "NaN", {"type": "string"}, "postgresql")
    assert str(change_value(T("double"), "-0", {}, "postgresql")) == "-0.0"
    assert change_value(T("date"), "2024-02-29", {}, "postgresql") == dt.date(2024, 2, 29)
    for special in ("infinity", "0044-03-15 BC", "0000-01-01"):
        with pytest.raises(Substituted):
            change_value(T("date"), special, {}, "postgresql")
    assert change_value(T("timestamptz"), "2024-05-01 10:00:00.123456+00", {}, "postgresql") == dt.datetime(
        2024, 5, 1, 10, 0, 0, 123456, tzinfo=dt.timezone.utc
    )
    assert change_value(
        T("timestamp"), 1_000_000, {"name": "io.debezium.time.MicroTimestamp"}, "mysql"
    ) == dt.datetime(1970, 1, 1, 0, 0, 1)
    assert change_value(T("binary"), base64.b64encode(b"\x00\xff").decode(), {}, "postgresql") == b"\x00\xff"
    assert change_value(T("char", length=4), "ab  ", {}, "postgresql") == "ab"


def test_the_latest_row_of_each_key_wins_and_deletes_remove_it():
    rows = pa.table({
        "id": [1, 1, 2, 3, 3, 4],
        "v": [float("nan"), 2.0, None, 4.0, 5.0, float("nan")],
        "_cdc_op": ["r", "u", "r", "r", "d", "c"],
        "_cdc_source_ts_ms": pa.nulls(6, pa.int64()),
        "_cdc_position": pa.nulls(6, pa.string()),
        "_cdc_seq": [0, 3, 0, 0, 5, 7],
    })  # fmt: skip
    merged = sorted(latest(rows, ["id"]).to_pylist(), key=lambda r: r["id"])
    assert [r["id"] for r in merged] == [1, 2, 4]
    assert merged[0]["v"] == 2.0 and merged[1]["v"] is None and str(merged[2]["v"]) == "nan"
    # a re-load's snapshot (seq 2 x its start offset) beats the changes before it, not those after
    reload = pa.table({"id": [9, 9, 9], "v": [1.0, 2.0, 3.0], "_cdc_op": ["c", "r", "u"],
                       "_cdc_source_ts_ms": pa.nulls(3, pa.int64()), "_cdc_position": pa.nulls(3, pa.string()),
                       "_cdc_seq": [2 * 4 + 1, 2 * 10, 2 * 10 + 1]})  # fmt: skip
    assert latest(reload, ["id"]).to_pylist() == [{"id": 9, "v": 3.0}]
    assert latest(reload.slice(0, 2), ["id"]).to_pylist() == [{"id": 9, "v": 2.0}]


def test_keys_are_never_logged_or_kept(monkeypatch):
    from cdc_platform.s3.storage import s3_client

    monkeypatch.setenv("K", "AKIAEXAMPLE")
    monkeypatch.setenv("S", "super-secret-key")
    conn = ConnectionSpec(name="lake", **LAKE)
    client = s3_client(conn, None)
    assert "super-secret-key" not in repr(client) and "super-secret-key" not in conn.model_dump_json()


@pytest.mark.parametrize(
    ("precision", "scale", "text"),
    [
        (30, 0, "-393515302594375678509070382397"),
        (38, 8, "-123456789012345678901234567890.12345678"),
        (65, 30, "99999999999999999999999999999999999.999999999999999999999999999999"),
        (65, 30, "-0.000000000000000000000000000001"),
        (65, 0, "-" + "9" * 65),
    ],
)
def test_debezium_decimals_of_every_mysql_width_decode_exactly(precision, scale, text):
    """Kafka Connect's Decimal (unscaled two's complement + scale) of up to 65 digits, as MySQL and
    MariaDB columns can hold: exact, with no rounding to Python's default 28 digits."""
    want = Decimal(text)
    WIDE = Context(prec=100)  # noqa: N806 - the test's own arithmetic must not round either
    unscaled = int(want.scaleb(scale, context=WIDE))
    raw = unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)
    field = {
        "type": "bytes",
        "name": "org.apache.kafka.connect.data.Decimal",
        "parameters": {"scale": str(scale)},
    }
    got = change_value(
        T("numeric", precision=precision, scale=scale), base64.b64encode(raw).decode(), field, "mariadb"
    )
    assert got == want and got.as_tuple().exponent == -scale
    assert pa.array([got], arrow_type(T("numeric", precision=precision, scale=scale)))[0].as_py() == want


def test_a_value_the_parquet_column_refuses_is_named_by_column_offset_and_form_never_by_value():
    from cdc_platform.s3.changes import _arrow_rows, value_form

    table = Table("s", "t", (Column("id", T("integer"), False, "int"),
                             Column("price", T("numeric", precision=10, scale=2), True, "decimal(10,2)")), ("id",))  # fmt: skip
    schema = arrow_schema(table)
    rows = [{"id": i, "price": Decimal(p), "_cdc_op": "c", "_cdc_source_ts_ms": None, "_cdc_position": None,
             "_cdc_seq": 2 * (40 + i) + 1} for i, p in enumerate(["1.50", "2.25", "123456789012345.25", "4.00"])]  # fmt: skip
    written, refused = _arrow_rows(rows, schema)
    assert written.num_rows == 2 and written.column("price").to_pylist() == [Decimal("1.50"), Decimal("2.25")]
    assert refused is not None and refused.column == "price" and refused.offset == 42
    assert "a decimal of 15 integer and 2 fractional digits" in str(refused)
    assert "123456789012345" not in str(refused)
    assert _arrow_rows(rows[:2], schema)[1] is None
    assert value_form("secret text") == "a text of 11 characters"
    field = {"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}}
    assert value_form(Decimal("-0.5"), field) == (
        "a decimal of 0 integer and 1 fractional digits (sent as bytes org.apache.kafka.connect.data.Decimal scale 2)"
    )


def test_change_events_are_parsed_from_their_payload_with_the_schema_cached():
    """The JSON converter's layout (compact, schema first): only the payload is parsed per event; the
    schema's fields come from a cache. A column named ``payload`` and a text holding ``,"payload":``
    do not mislead the cut; another key order and schemaless events are parsed whole."""
    import json

    from cdc_platform.s3.events import _side_fields, parse_event

    fields = [
        {"type": "int32", "optional": False, "field": "id"},
        {"type": "string", "optional": True, "field": "payload"},
    ]
    schema = {"type": "struct", "fields": [{"type": "struct", "fields": fields, "optional": True, "field": "before"},
                                           {"type": "struct", "fields": fields, "optional": True, "field": "after"}]}  # fmt: skip
    payload = {
        "before": None,
        "after": {"id": 1, "payload": 'x,"payload":{}'},
        "op": "c",
        "source": {"lsn": 5},
    }
    compact = json.dumps({"schema": schema, "payload": payload}, separators=(",", ":")).encode()
    _side_fields.cache_clear()
    first, second = parse_event(compact), parse_event(compact)
    assert first.payload == payload and second.payload == payload
    assert first.fields["after"]["payload"] == {"type": "string", "optional": True, "field": "payload"}
    assert _side_fields.cache_info().hits >= 1, "the schema is parsed once"
    reordered = json.dumps({"payload": payload, "schema": schema}).encode()
    assert (
        parse_event(reordered).payload == payload
        and parse_event(reordered).fields["after"]["id"]["type"] == "int32"
    )
    assert parse_event(json.dumps(payload).encode()).payload == payload
