"""Missed slots: the one gap calculation, and the `history/gaps.jsonl` records 04 keeps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..clock import parse_iso
from ..fsio import append_durably, ensure_subdir, locked
from ..jsonio import dumps
from .files import HistoryFiles

# Two snapshots further apart than this many cadences have missed slots between them.
GAP_FACTOR = 1.5
# Gap repair looks at the gaps of this many days (no plan serves sub-daily points beyond a
# year, and few beyond 30 days); --status reports them.
REPAIR_LOOK_BACK_S = 35 * 86_400


@dataclass(frozen=True)
class Gap:
    start: str
    end: str
    missing_slots: int


def find_gaps(timestamps: list[str], every_min: int) -> list[Gap]:
    """Intervals between consecutive snapshots longer than 1.5 cadences, with missed slots."""
    step = every_min * 60
    gaps = []
    for before, after in zip(timestamps, timestamps[1:], strict=False):
        delta = parse_iso(after) - parse_iso(before)
        if delta > GAP_FACTOR * step:
            gaps.append(Gap(before, after, max(1, round(delta / step) - 1)))
    return gaps


def record_gap(files: HistoryFiles, record: dict[str, Any]) -> None:
    """Append one line to history/gaps.jsonl (missed slots, failed runs)."""
    ensure_subdir(files.dir)
    with locked(files.lock):
        append_durably(files.gaps, (dumps(record) + "\n").encode())


def recent_gap_records(files: HistoryFiles, limit: int = 500) -> list[dict[str, Any]]:
    """The newest readable records of gaps.jsonl (damaged lines are skipped)."""
    try:
        lines = files.gaps.read_bytes().split(b"\n")[-limit - 1 :]
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def record_missed_slots(files: HistoryFiles, previous: str, current: str, every_min: int) -> None:
    """After a commit: a gap record when slots were missed since the previous snapshot."""
    gaps = find_gaps([previous, current], every_min)
    if not gaps:
        return
    failed = sum(
        1
        for record in recent_gap_records(files)
        if record.get("type") == "failed_run" and str(record.get("at", "")) > previous
    )
    record_gap(
        files,
        {
            "type": "gap",
            "from": previous,
            "to": current,
            "missing_slots": gaps[0].missing_slots,
            "failed_runs": failed,
            "reason": f"{failed} failed run(s)"
            if failed
            else "no run recorded (machine off, cron stopped, lock busy or data unchanged)",
        },
    )


def record_failed_run(files: HistoryFiles, at: str, exit_code: int, error: str) -> None:
    """A failed run is listed so that a missing slot has a reason."""
    record_gap(files, {"type": "failed_run", "at": at, "exit_code": exit_code, "error": error})


def latest_repairs(files: HistoryFiles) -> dict[tuple[str, str], dict[str, Any]]:
    """(from, to) of a gap → its latest `repair` record (gap repair, gap_repair.py)."""
    return repairs_among(recent_gap_records(files, limit=5000))


def repairs_among(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(from, to) of a gap → the last `repair` record of `records` for it."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        if record.get("type") == "repair":
            latest[gap_key(record)] = record
    return latest


def gap_key(record: dict[str, Any]) -> tuple[str, str]:
    """The (from, to) a gap or repair record names, as text."""
    return str(record.get("from")), str(record.get("to"))
