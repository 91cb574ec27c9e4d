"""history/snapshots.jsonl read strictly: the committed one-line summary of each snapshot."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..clock import parse_iso
from .files import lines_with_offsets


@dataclass(frozen=True)
class SnapshotRecord:
    """A committed line of snapshots.jsonl, as the views use it."""

    ts: str
    coin_count: int
    expected_count: int | None
    snapshot_id: str | None
    market_cap_usd: Any
    coins_market_cap_usd: Any


def committed_snapshots(
    handle: BinaryIO | None, committed: int, start: int = 0
) -> tuple[tuple[SnapshotRecord, ...], list[str]]:
    """The committed lines of snapshots.jsonl from byte `start` (a line boundary), and the
    problems found; line numbers count from `start`."""
    records: list[SnapshotRecord] = []
    problems: list[str] = []
    if handle is None:
        if committed:
            problems.append("snapshots.jsonl is missing but snapshots were committed")
        return (), problems
    size = os.fstat(handle.fileno()).st_size
    if size < committed:
        problems.append(f"snapshots.jsonl is {size} bytes, shorter than the {committed} committed")
    lines = lines_with_offsets(None, limit=committed, start=start, handle=handle)
    for number, (_, line) in enumerate(lines, 1):
        try:
            entry = json.loads(line)
            ts, count = entry["ts"], entry["coin_count"]
            parse_iso(ts)
            if type(count) is not int or count < 0:
                raise ValueError(f"coin_count {count!r}")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            problems.append(f"snapshots.jsonl line {number} is unreadable ({str(exc)[:80]})")
            continue
        if records and ts <= records[-1].ts:
            problems.append(f"snapshots.jsonl line {number}: {ts} is not after {records[-1].ts}")
            continue
        expected = entry.get("expected_count")
        records.append(
            SnapshotRecord(
                ts, count, expected if type(expected) is int else None,
                entry.get("snapshot_id"), entry.get("market_cap_usd"),
                entry.get("coins_market_cap_usd"),
            )
        )  # fmt: skip
    return tuple(records), problems


def tail_start(handle: BinaryIO, size: int, since: str, back: int = 1 << 18) -> int:
    """A line boundary of snapshots.jsonl before which every line is older than `since`
    (0: the whole file), found by looking back from the end, four times further each time,
    so a reader of the recent snapshots does not parse a year of them."""
    while back < size:
        handle.seek(size - back - 1)
        handle.readline()  # the end of the line the guess cut (or just its newline)
        boundary = handle.tell()
        try:
            ts = json.loads(handle.readline())["ts"]
        except (ValueError, KeyError, TypeError, RecursionError):
            ts = None  # a damaged line proves nothing: look further back
        if isinstance(ts, str) and ts < since:
            return boundary
        back *= 4
    return 0
