"""What the backfilled points cover: the answered calls of ranges.jsonl, read strictly, and
the per-coin coverage that decides which points are stored and which calls are left."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..clock import parse_iso
from ..plans import INTERVALS
from .files import lines_with_offsets


@dataclass(frozen=True)
class Range:
    """What one answered call covered: `step`-spaced times from `start` to `end`."""

    id: str
    interval: str
    step: int
    start: int
    end: int
    points: int

    def holds(self, ts: int) -> bool:
        return self.start <= ts <= self.end and ts % self.step == 0


def read_ranges(path: Path, start: int, limit: int) -> tuple[list[Range], int]:
    """The committed ranges from byte `start` on, oldest first, and the offset after them."""
    ranges, offset = [], start
    for end, line in lines_with_offsets(path, limit=limit, start=start):
        offset = end
        entry = json.loads(line)
        step = INTERVALS[entry["interval"]][0]
        ranges.append(
            Range(entry["id"], entry["interval"], step, int(parse_iso(entry["start"])),
                  int(parse_iso(entry["end"])), entry["points"])
        )  # fmt: skip
    return ranges, offset


class Coverage:
    """Which (coin, time) points are stored, by the ranges answered: a point is stored when a
    range of its coin holds its time."""

    def __init__(self, ranges: Iterable[Range] = (), size: int = 0) -> None:
        self.by_coin: dict[str, list[Range]] = {}
        self.size = size  # bytes of ranges.jsonl read so far
        for item in ranges:
            self.add(item)

    def add(self, item: Range) -> None:
        self.by_coin.setdefault(item.id, []).append(item)

    def catch_up(self, path: Path, committed: int) -> None:
        """Add what other writers committed to ranges.jsonl (`path`, `committed` bytes)
        since this coverage was read."""
        ranges, self.size = read_ranges(path, self.size, committed)
        for item in ranges:
            self.add(item)

    def holds(self, coin: str, ts: int) -> bool:
        return any(item.holds(ts) for item in self.by_coin.get(coin, ()))

    def covers(self, coin: str, step: int, start: int, end: int) -> bool:
        """Every `step`-spaced time of [start, end] was asked for already."""
        first = -(-start // step) * step
        return all(self.holds(coin, ts) for ts in range(first, end + 1, step))
