"""How a PostgreSQL table is split into ranges of heap pages for a copy in several streams
(``ctid_ranges``). The answer the server gives (kind, pages, version) is the test's input here; the
ranges themselves are run against a live server in tests/integration/test_pg_copy_relay.py."""

from __future__ import annotations

import pytest

from cdc_platform.pipeline.full_load import from_postgresql
from cdc_platform.pipeline.full_load.from_postgresql import PAGES_PER_STREAM, ctid_ranges
from cdc_platform.schema.model import Column, Table
from cdc_platform.schema.types import CanonicalType

TABLE = Table("public", "orders", (Column("id", CanonicalType("bigint"), False, "bigint"),), ("id",))


class Answer:
    """A cursor whose one query answers (relkind, pages, server_version_num)."""

    def __init__(self, kind: str, pages: int, version: int = 150000):
        self.row, self.asked = (kind, pages, version), []

    def execute(self, sql, params=None):
        self.asked.append(params)
        return self

    def fetchone(self):
        return self.row


def test_one_stream_asks_nothing_and_copies_the_whole_table():
    cursor = Answer("r", 10**6)
    assert ctid_ranges(cursor, TABLE, 1) == [""]
    assert cursor.asked == []


def test_ranges_are_contiguous_open_ended_and_cover_every_page():
    pages = 3 * PAGES_PER_STREAM + 7
    cursor = Answer("r", pages)
    assert ctid_ranges(cursor, TABLE, 3) == [
        f" WHERE ctid < '({pages // 3},0)'::tid",
        f" WHERE ctid >= '({pages // 3},0)'::tid AND ctid < '({pages * 2 // 3},0)'::tid",
        f" WHERE ctid >= '({pages * 2 // 3},0)'::tid",
    ]
    assert cursor.asked == [('"public"."orders"',)]


@pytest.mark.parametrize(
    ("kind", "pages", "version", "streams", "expected"),
    [
        ("r", 2 * PAGES_PER_STREAM - 1, 150000, 2, 1),  # too small for two ranges
        ("r", 2 * PAGES_PER_STREAM, 150000, 4, 2),  # as many ranges as the size allows
        ("r", 100 * PAGES_PER_STREAM, 150000, 4, 4),
        ("p", 100 * PAGES_PER_STREAM, 150000, 4, 1),  # a partitioned table's parent
        ("r", 100 * PAGES_PER_STREAM, 130000, 4, 1),  # no TID range scans before 14
    ],
)
def test_how_many_ranges(kind, pages, version, streams, expected, monkeypatch):
    ranges = ctid_ranges(Answer(kind, pages, version), TABLE, streams)
    assert len(ranges) == expected
    if expected == 1:
        assert ranges == [""]


def test_the_threshold_is_the_modules_own(monkeypatch):
    monkeypatch.setattr(from_postgresql, "PAGES_PER_STREAM", 1)
    assert len(ctid_ranges(Answer("r", 5), TABLE, 3)) == 3
