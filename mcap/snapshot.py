"""One validated snapshot: the data that flows from the fetch to the files and the history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .clock import compact_id


@dataclass(frozen=True)
class Diff:
    """What changed since the last committed snapshot."""

    appeared: list[str]
    disappeared: list[str]
    changed: int
    previous_ts: str | None


def diff_snapshots(
    previous_ts: str | None, previous: Mapping[str, Any], last_updated: Mapping[str, Any]
) -> Diff:
    """Coins that appeared, disappeared or changed since the last committed snapshot.

    A coin counts as unchanged only when both snapshots carry the same `last_updated`
    text; a missing, null or empty one always counts as changed.
    """
    if previous_ts is None:
        return Diff([], [], len(last_updated), None)
    appeared = [i for i in last_updated if i not in previous]
    disappeared = [i for i in previous if i not in last_updated]
    changed = sum(
        1
        for i, stamp in last_updated.items()
        if not (isinstance(stamp, str) and stamp and previous.get(i) == stamp)
    )
    return Diff(appeared, disappeared, changed, previous_ts)


@dataclass
class Snapshot:
    """What a collector run fetched, checked and is about to write and commit."""

    collected_at: str
    coins: list[dict[str, Any]]  # ticker objects as the API gave them, in rank order
    global_data: dict[str, Any]
    expected_count: int | None
    duplicates_dropped: int
    last_updated: dict[str, Any]  # id → last_updated, for change detection
    diff: Diff

    @property
    def snapshot_id(self) -> str:
        return compact_id(self.collected_at)
