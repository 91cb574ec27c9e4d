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
    handle: BinaryIO | None, committed: int
) -> tuple[tuple[SnapshotRecord, ...], list[str]]:
    records: list[SnapshotRecord] = []
    problems: list[str] = []
    if handle is None:
        if committed:
            problems.append("snapshots.jsonl is missing but snapshots were committed")
        return (), problems
    size = os.fstat(handle.fileno()).st_size
    if size < committed:
        problems.append(f"snapshots.jsonl is {size} bytes, shorter than the {committed} committed")
    for number, (_, line) in enumerate(lines_with_offsets(None, limit=committed, handle=handle), 1):
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
