"""The history's commit record, `history/.state.json`: its shape and how it is checked."""

from __future__ import annotations

import json
from typing import Any

from ..clock import parse_iso
from ..fsio import atomic_write_bytes
from ..jsonio import dumps
from .files import HistoryFiles

STATE_VERSION = 1
RECENT_IDS_KEPT = 500
_COUNTS = ("history_size", "snapshots_size", "snapshot_count", "archived_bytes", "cutting")


def empty_state() -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "history_size": 0,
        "snapshots_size": 0,
        "snapshot_count": 0,
        "last_ts": None,
        "last_snapshot_id": None,
        "last_coin_count": None,
        "recent_snapshot_ids": [],
        "last_updated": {},
        "archived_bytes": 0,  # head of the plain file already in Parquet archives
        "cutting": 0,  # bytes being dropped from the head of the plain file
        "pending_compaction": [],  # months an older version was moving to .jsonl.gz
    }


def state_problem(state: Any) -> str | None:
    """What makes a state read from disk unusable, or None."""
    if not isinstance(state, dict):
        return "not a JSON object"
    for key in _COUNTS:
        if type(state.get(key)) is not int or state[key] < 0:
            return f"{key} is {state.get(key)!r}"
    if state["archived_bytes"] > state["history_size"]:
        return "archived_bytes is past the committed size"
    for key in ("last_ts", "last_snapshot_id"):
        if not isinstance(state.get(key), str | None):
            return f"{key} is {state.get(key)!r}"
    if state["last_ts"] is not None:
        try:
            parse_iso(state["last_ts"])
        except ValueError:
            return f"last_ts is {state['last_ts']!r}"
    if not isinstance(state.get("last_coin_count"), int | None):
        return "last_coin_count is not a count"
    if not isinstance(state.get("recent_snapshot_ids"), list):
        return "recent_snapshot_ids is not a list"
    if not isinstance(state.get("last_updated"), dict):
        return "last_updated is not an object"
    pending = state.get("pending_compaction")
    if not isinstance(pending, list) or not all(isinstance(m, str) for m in pending):
        return "pending_compaction is not a list of months"
    return None


def load_state(files: HistoryFiles) -> tuple[dict[str, Any] | None, str | None]:
    """(state, None) when the file is usable; (None, why not) when missing or damaged."""
    try:
        state = empty_state() | json.loads(files.state.read_bytes())
    except FileNotFoundError:
        return None, "missing"
    except (OSError, ValueError, RecursionError, TypeError) as exc:
        return None, f"unreadable ({exc})"
    problem = state_problem(state)
    return (state, None) if problem is None else (None, f"damaged: {problem}")


def save_state(files: HistoryFiles, state: dict[str, Any]) -> None:
    """Replace the state file atomically: the history's commit point."""
    atomic_write_bytes(files.state, (dumps(state) + "\n").encode())
