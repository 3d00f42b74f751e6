"""Change events as the JSON converter writes them, parsed for the S3 writer and its readers.

Light on purpose (no Arrow): the metrics schedule reads heartbeats with it on the code location's
load path.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class ChangeEvent:
    """A change event's payload, and the Connect schema fields of its ``before`` and ``after``."""

    payload: dict | None
    fields: dict[str, dict[str, dict]]


#: the JSON converter writes ``{"schema": ..., "payload": ...}`` in this order; the schema (four in
#: five of an event's bytes) repeats unchanged across a table's events, so it is parsed once
_SCHEMA_START, _PAYLOAD_KEY = b'{"schema":', b',"payload":'


@functools.lru_cache(maxsize=256)
def _side_fields(schema_bytes: bytes) -> dict[str, dict[str, dict]]:
    schema = json.loads(schema_bytes) or {}
    return {part["field"]: {f["field"]: f for f in part.get("fields", [])}
            for part in schema.get("fields", []) if part.get("field") in ("before", "after")}  # fmt: skip


def parse_event(raw: bytes) -> ChangeEvent:
    """The event's payload, its schema's fields from a cache: decoding stays at a fraction of the
    event's bytes. (A ``,"payload":`` cannot occur unescaped inside the schema: every quote inside a
    JSON string is escaped, and a Connect schema has no ``payload`` key.)"""
    cut, body = raw.find(_PAYLOAD_KEY), raw.rstrip()
    if raw.startswith(_SCHEMA_START) and cut > 0 and body.endswith(b"}"):
        try:
            payload = orjson.loads(body[cut + len(_PAYLOAD_KEY) : -1])
        except orjson.JSONDecodeError:
            pass  # not the converter's layout after all: parsed whole below
        else:
            return ChangeEvent(payload, _side_fields(raw[len(_SCHEMA_START) : cut]))
    event = orjson.loads(raw)
    if isinstance(event, dict) and "payload" in event:  # another key order: parsed whole
        schema = json.dumps(event.get("schema") or {}).encode()
        return ChangeEvent(event["payload"], _side_fields(schema))
    return ChangeEvent(event, {})  # schemaless: the payload itself
