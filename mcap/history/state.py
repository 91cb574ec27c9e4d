"""The history's commit record, `history/.state.json`, as the typed `HistoryHead`.

The head says how much of each plain file is committed, which snapshot was last, and how far
the plain rows are already in Parquet (docs/design.md, "Commit protocol"). It is replaced
atomically; that replace is the commit point of every append and every archive step.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..clock import parse_iso
from ..fsio import atomic_write_bytes
from ..jsonio import dumps
from .files import HistoryFiles

STATE_VERSION = 1
RECENT_IDS_KEPT = 500
_COUNTS = ("history_size", "snapshots_size", "snapshot_count", "archived_bytes", "cutting")


@dataclass(frozen=True)
class HistoryHead:
    """What is committed: sizes of the plain files, the last snapshot, the archived prefix."""

    history_size: int = 0
    snapshots_size: int = 0
    snapshot_count: int = 0
    last_ts: str | None = None
    last_snapshot_id: str | None = None
    last_coin_count: int | None = None
    recent_snapshot_ids: tuple[str, ...] = ()
    # id → last_updated of the last snapshot (None: unknown), for change detection.
    last_updated: Mapping[str, Any] = field(default_factory=dict)
    archived_bytes: int = 0  # head of the plain file already in Parquet archives
    cutting: int = 0  # bytes being dropped from the head of the plain file (a switch)
    pending_compaction: tuple[str, ...] = ()  # months an older version was moving to .jsonl.gz

    def replace(self, **changes: Any) -> HistoryHead:
        return dataclasses.replace(self, **changes)

    @property
    def empty(self) -> bool:
        return self.snapshot_count == 0 and self.history_size == 0

    def to_json(self) -> dict[str, Any]:
        """The state file's object, keys in their historical order."""
        return {
            "version": STATE_VERSION,
            "history_size": self.history_size,
            "snapshots_size": self.snapshots_size,
            "snapshot_count": self.snapshot_count,
            "last_ts": self.last_ts,
            "last_snapshot_id": self.last_snapshot_id,
            "last_coin_count": self.last_coin_count,
            "recent_snapshot_ids": list(self.recent_snapshot_ids),
            "last_updated": dict(self.last_updated),
            "archived_bytes": self.archived_bytes,
            "cutting": self.cutting,
            "pending_compaction": list(self.pending_compaction),
        }

    @classmethod
    def from_json(cls, data: Any) -> HistoryHead:
        """Raises ValueError naming the first field that makes a state unusable."""
        problem = state_problem(data)
        if problem:
            raise ValueError(problem)
        return cls(
            history_size=data.get("history_size", 0),
            snapshots_size=data.get("snapshots_size", 0),
            snapshot_count=data.get("snapshot_count", 0),
            last_ts=data.get("last_ts"),
            last_snapshot_id=data.get("last_snapshot_id"),
            last_coin_count=data.get("last_coin_count"),
            recent_snapshot_ids=tuple(data.get("recent_snapshot_ids") or ()),
            last_updated=dict(data.get("last_updated") or {}),
            archived_bytes=data.get("archived_bytes", 0),
            cutting=data.get("cutting", 0),
            pending_compaction=tuple(data.get("pending_compaction") or ()),
        )


def settled(head: HistoryHead, plain_size: int) -> HistoryHead:
    """The head as the plain file is, after a switch that drops its archived head was cut off.

    The switch saves `cutting`, replaces the file, then saves the new sizes; the file's size
    tells which side of the replace a kill landed on.
    """
    if not head.cutting:
        return head
    if plain_size == head.history_size - head.cutting:  # the head was dropped
        return head.replace(history_size=plain_size, archived_bytes=0, cutting=0)
    return head.replace(cutting=0)


def state_problem(state: Any) -> str | None:
    """What makes a state read from disk unusable, or None."""
    if not isinstance(state, dict):
        return "not a JSON object"
    for key in _COUNTS:
        value = state.get(key, 0)
        if type(value) is not int or value < 0:
            return f"{key} is {value!r}"
    if state.get("archived_bytes", 0) > state.get("history_size", 0):
        return "archived_bytes is past the committed size"
    for key in ("last_ts", "last_snapshot_id"):
        if not isinstance(state.get(key), str | None):
            return f"{key} is {state.get(key)!r}"
    if state.get("last_ts") is not None:
        try:
            parse_iso(state["last_ts"])
        except ValueError:
            return f"last_ts is {state['last_ts']!r}"
    if not isinstance(state.get("last_coin_count"), int | None):
        return "last_coin_count is not a count"
    recent = state.get("recent_snapshot_ids", [])
    if not isinstance(recent, list) or not all(isinstance(i, str) for i in recent):
        return "recent_snapshot_ids is not a list of ids"
    if not isinstance(state.get("last_updated", {}), dict):
        return "last_updated is not an object"
    pending = state.get("pending_compaction", [])
    if not isinstance(pending, list) or not all(isinstance(m, str) for m in pending):
        return "pending_compaction is not a list of months"
    return None


def load_state(files: HistoryFiles) -> tuple[HistoryHead | None, str | None]:
    """(head, None) when the file is usable; (None, why not) when missing or damaged."""
    try:
        data = json.loads(files.state.read_bytes())
    except FileNotFoundError:
        return None, "missing"
    except (OSError, ValueError, RecursionError, TypeError) as exc:
        return None, f"unreadable ({exc})"
    try:
        return HistoryHead.from_json(data), None
    except ValueError as exc:
        return None, f"damaged: {exc}"


def save_state(files: HistoryFiles, head: HistoryHead) -> None:
    """Replace the state file atomically: the history's commit point."""
    atomic_write_bytes(files.state, (dumps(head.to_json()) + "\n").encode())
