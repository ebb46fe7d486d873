"""JSON as the writers render it: compact JSON, OTLP attributes and values, and ARNs."""

from __future__ import annotations

import json
from typing import Any

_dumps = json.JSONEncoder(separators=(",", ":")).encode
if json.encoder.c_make_encoder is not None:  # skip building an encoder per call: ~2x faster
    _c_encode = json.encoder.c_make_encoder(
        None, None, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )

    def _dumps(o: Any) -> str:  # noqa: F811
        return "".join(_c_encode(o, 0))


def _sattr(key: str, value: str) -> str:
    """A string attribute as OTLP/JSON; value must need no JSON escaping."""
    return f'{{"key":"{key}","value":{{"stringValue":"{value}"}}}}'


def _arn_of(identity_json: str) -> str:
    return json.loads(identity_json)["arn"]


def _nanos(t_us: int, as_number: bool) -> str:
    """A unix-nano timestamp as JSON: usually a string, as OTLP/JSON says; sometimes a number."""
    ns = t_us * 1000 + (t_us * 7919) % 1000  # sub-microsecond digits, deterministic
    return str(ns) if as_number else f'"{ns}"'


def _intval_json(v: int, as_number: bool) -> str:
    """An OTLP intValue as JSON: a string (proto3 JSON for int64) or, from some exporters, a number."""
    return f'{{"intValue":{v}}}' if as_number else f'{{"intValue":"{v}"}}'


def _anyvalue(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list | tuple):
        return {"arrayValue": {"values": [_anyvalue(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": _kvlist(v)}
    return {"stringValue": str(v)}


def _kvlist(d: dict[str, Any]) -> dict[str, Any]:
    return {"values": [{"key": k, "value": _anyvalue(v)} for k, v in d.items()]}
