"""Rows and parameters as bytes: JSON with tagged types, for Redis values and cache keys.

Not pickle: a Redis shared by several services must not be able to make this process run
code. Values of other types cannot be stored in Redis (the in-process layer keeps them as
objects); in keys they are represented by type and ``repr``.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

Row = tuple[Any, ...]


class NotEncodable(TypeError):
    pass


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return {"$a": [_encode(v) for v in value]}
    if isinstance(value, dict):
        return {"$j": value}  # json/jsonb as psycopg loads them
    if isinstance(value, decimal.Decimal):
        return {"$d": str(value)}
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$td": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    raise NotEncodable(f"cannot store {type(value).__name__} in the shared cache")


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    ((tag, body),) = value.items()
    if tag == "$a":
        return [_decode(v) for v in body]
    if tag == "$j":
        return body
    if tag == "$d":
        return decimal.Decimal(body)
    if tag == "$dt":
        return dt.datetime.fromisoformat(body)
    if tag == "$date":
        return dt.date.fromisoformat(body)
    if tag == "$time":
        return dt.time.fromisoformat(body)
    if tag == "$td":
        return dt.timedelta(days=body[0], seconds=body[1], microseconds=body[2])
    if tag == "$uuid":
        return uuid.UUID(body)
    if tag == "$b":
        return base64.b64decode(body)
    raise ValueError(f"unknown tag {tag!r}")


def encode_entry(rows: Sequence[Row], lsn: int, stored_at: float) -> bytes:
    """Raises NotEncodable for values JSON cannot carry faithfully."""
    payload = {"rows": [[_encode(v) for v in row] for row in rows], "lsn": lsn, "at": stored_at}
    return json.dumps(payload, separators=(",", ":")).encode()


def decode_entry(data: bytes | str) -> tuple[list[Row], int, float]:
    payload = json.loads(data)
    rows = [tuple(_decode(v) for v in row) for row in payload["rows"]]
    return rows, int(payload["lsn"]), float(payload["at"])


def _key_default(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}:{value!r}"


def encode_params(params: Sequence[Any] | Mapping[str, Any] | None) -> str:
    """Deterministic text for parameters; 1, 1.0, True and '1' stay distinct."""
    if params is None:
        return "null"
    if isinstance(params, Mapping):
        return json.dumps(dict(params), default=_key_default, sort_keys=True)
    return json.dumps(list(params), default=_key_default, sort_keys=True)
