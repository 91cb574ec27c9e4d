"""One validated snapshot: the data that flows from the fetch to the files and the history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .clock import compact_id
from .history import Diff


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
