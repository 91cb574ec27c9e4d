"""Strict JSON both ways: what we parse refuses NaN and duplicate keys, what we write is pure."""

from __future__ import annotations

import json
import math
from typing import Any

# One encoder for every line: json.dumps with options builds a new encoder per call.
# ensure_ascii (the default) keeps U+2028 & co. escaped, so a line is always one line.
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def dumps(obj: Any) -> str:
    """Strict, compact JSON (no NaN/Infinity, ASCII only)."""
    return _ENCODER.encode(obj)


def _reject_constant(name: str) -> Any:
    # The message avoids the token itself: outputs must never contain it, even in errors.
    raise ValueError("a non-finite number (not-a-number or infinite) in JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key {dup!r} in a JSON object")
    return obj


def loads_strict(body: bytes | str) -> Any:
    """json.loads that refuses NaN/Infinity, out-of-range numbers and duplicate keys.

    Raises:
        ValueError: including json.JSONDecodeError and CPython's int-digit limit.
        RecursionError: absurdly deep nesting.
    """
    return json.loads(
        body,
        parse_constant=_reject_constant,
        parse_float=_parse_float,
        object_pairs_hook=_object_without_duplicate_keys,
    )


def loads_object(body: bytes) -> dict[str, Any] | None:
    """A JSON object read back from one of our own files, or None when it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
