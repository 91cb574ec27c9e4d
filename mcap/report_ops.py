"""`--report`'s operational figures: the coverage calendar, the open gaps, the quota, the runs.

The calendar counts a day's committed snapshots (from the `totals` view) against its slots
at the cadence, and marks what `history/gaps.jsonl` says (missed slots, failed runs, gap
repair) and the backfilled points. The quota is the request ledger's; the runs are the
`run end` lines of collection.log and its rotations (docs/report.md).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .clock import day_key, month_start, next_month_start, parse_iso, utc_iso
from .history.files import HistoryFiles
from .history.gaps import GAP_FACTOR, gap_key, recent_gap_records, repairs_among
from .ledger import RequestLedger
from .logsetup import LOG_BACKUPS, LOG_NAME

DAY_S = 86400
MAX_GAP_ROWS = 100
SNAPSHOT_SCRIPTS = ("02_", "03_", "04_")  # the runs that fill the calendar's slots
ALL_RECORDS = 10**9  # gaps.jsonl: every readable line (it holds a line per gap or failure)
RUN_END = re.compile(rb"^(\S+) \S+ (\S+) run=\S+ run end status=(\w+) exit=(\d+)")
REFUSED = re.compile(rb"^(\S+) \S+ (\S+) run=\S+ refused, exit 75")


@dataclass(frozen=True)
class Day:
    """One calendar cell: a UTC day's snapshots against its slots, and what else happened."""

    day: str
    snapshots: int = 0
    slots: int = 0
    missed: int = 0  # missed slots by gaps.jsonl's gap lines
    repaired: int = 0  # of those, in gaps that gap repair refilled
    failed_exits: tuple[int, ...] = ()  # gaps.jsonl's failed_run lines
    backfilled_points: int = 0
    backfilled_coins: int = 0

    @property
    def coverage(self) -> float | None:
        return min(1.0, self.snapshots / self.slots) if self.slots else None


@dataclass(frozen=True)
class OpenGap:
    """A gap no repair has refilled: its ends, missed slots, why, and gap repair's state."""

    start: str
    end: str
    missed: int
    reason: str
    repair: str  # "not tried", "partly", "unrepairable", or "ongoing" (no snapshot since)


def slots_of_day(day: str, first: float, since: float, limit: float, step: int) -> int:
    """Slots first + k·step (k ≥ 0) inside the day, from `since` up to `limit`."""
    start = parse_iso(f"{day}T00:00:00Z")
    low, high = max(start, first, since), min(start + DAY_S - 1, limit)
    if high < low:
        return 0
    return max(0, math.floor((high - first) / step) - math.ceil((low - first) / step) + 1)


def calendar(
    snapshots: dict[str, int],
    backfill: dict[str, tuple[int, int]],
    records: list[dict[str, Any]],
    bounds: tuple[float | None, float, float],
    every_min: int,
) -> list[Day]:
    """Every day from the first snapshot or backfilled point in the range to the last day
    with either, or to the limit while snapshots were due. `bounds`: the first snapshot ever
    (the slots' anchor; None: no snapshot), the range's start, the limit (now, or sooner)."""
    first, since, limit = bounds
    step = every_min * 60
    days = sorted(set(snapshots) | set(backfill))
    if first is not None and snapshots:
        days.append(day_key(limit))
    if not days:
        return []
    missed, repaired, failed = _marks(records, step)
    out, at = [], parse_iso(f"{min(days)}T00:00:00Z")
    while day_key(at) <= max(days):
        day = day_key(at)
        points, coins = backfill.get(day, (0, 0))
        slots = 0 if first is None else slots_of_day(day, first, since, limit, step)
        out.append(Day(day, snapshots.get(day, 0), slots, missed[day], repaired[day],
                       tuple(failed.get(day, ())), points, coins))  # fmt: skip
        at += DAY_S
    return out


def _marks(records: list[dict[str, Any]], step: int) -> tuple[Counter, Counter, dict]:
    """Per day: missed slots (each slot on its own day), those repaired, failed runs' exits."""
    missed: Counter = Counter()
    repaired: Counter = Counter()
    failed: dict[str, list[int]] = {}
    repairs = repairs_among(records)
    for record in records:
        kind = record.get("type")
        try:
            if kind == "gap":
                start = parse_iso(str(record["from"]))
                done = repairs.get(gap_key(record), {}).get("status") == "repaired"
                for k in range(1, int(record["missing_slots"]) + 1):
                    day = day_key(start + k * step)
                    missed[day] += 1
                    repaired[day] += done
            elif kind == "failed_run":
                failed.setdefault(day_key(parse_iso(str(record["at"]))), []).append(
                    int(record["exit_code"])
                )
        except (KeyError, TypeError, ValueError):
            continue  # a line of another shape says nothing about a day
    return missed, repaired, failed


def gap_records(files: HistoryFiles) -> list[dict[str, Any]]:
    """Every readable line of history/gaps.jsonl (damaged lines are skipped)."""
    return recent_gap_records(files, limit=ALL_RECORDS)


def open_gaps(
    records: list[dict[str, Any]], window: tuple[str, str], ongoing: OpenGap | None
) -> tuple[list[OpenGap], int]:
    """Gaps in the window whose latest repair is not 'repaired', newest first (at most
    MAX_GAP_ROWS), and how many more there are."""
    repairs = repairs_among(records)
    found = [ongoing] if ongoing else []
    for record in records:
        if record.get("type") != "gap":
            continue
        start, end = str(record.get("from", "")), str(record.get("to", ""))
        if end < window[0] or start > window[1]:
            continue
        state = repairs.get(gap_key(record), {}).get("status")
        if state == "repaired":
            continue
        found.append(OpenGap(start, end, int(record.get("missing_slots") or 0),
                             str(record.get("reason", "")), str(state or "not tried")))  # fmt: skip
    found.sort(key=lambda gap: gap.end, reverse=True)
    return found[:MAX_GAP_ROWS], max(0, len(found) - MAX_GAP_ROWS)


def ongoing_gap(last: float | None, limit: float, every_min: int) -> OpenGap | None:
    """No snapshot since `last` for longer than the gap rule allows, up to `limit` (now)."""
    step = every_min * 60
    if last is None or limit - last <= GAP_FACTOR * step:
        return None
    return OpenGap(utc_iso(last), utc_iso(limit), max(1, round((limit - last) / step) - 1),
                   "no snapshot since (04 records the gap when the next one commits)",
                   "ongoing")  # fmt: skip


@dataclass(frozen=True)
class Quota:
    """This month's calls by UTC day (the ledger's day_requests), the budget, projections."""

    month: str
    days: tuple[tuple[str, int | None], ...]  # every day of the month; None: still to come
    used: int
    uncounted: int  # calls of the month made before per-day counting began
    budget: int | None
    budget_from: str
    projected: int | None  # at this month's pace, to the month's end
    at: float


def quota(out_dir: Path, now: float, budget: int | None, budget_from: str) -> Quota:
    """The month of `now` from request_ledger.json (read, never written)."""
    ledger = RequestLedger(out_dir).load(now)
    start, end = month_start(now), next_month_start(now)
    days: list[tuple[str, int | None]] = []
    at = start
    while at < end:
        day = day_key(at)
        days.append((day, ledger.day_requests.get(day, 0) if at <= now else None))
        at += DAY_S
    counted = sum(v for d, v in ledger.day_requests.items() if d.startswith(ledger.month))
    elapsed = (now - start) / DAY_S
    projected = None
    if elapsed >= 1 / 24:  # an hour at least: a pace from minutes would say little
        projected = round(ledger.month_requests / elapsed * (end - start) / DAY_S)
    uncounted = max(0, ledger.month_requests - counted)
    return Quota(ledger.month, tuple(days), ledger.month_requests, uncounted, budget,
                 budget_from, projected, now)  # fmt: skip


@dataclass(frozen=True)
class Runs:
    """Runs per UTC day by outcome, from collection.log and its rotations."""

    days: tuple[str, ...]
    outcomes: tuple[tuple[str, tuple[int, ...]], ...]  # ("ok", per day), ("failed, exit 69", …)
    others: tuple[tuple[str, int, int], ...]  # other scripts: (script, runs, failed)
    log_since: str | None  # the first line's time of the oldest log file read
    log_files: int


def log_files(out_dir: Path) -> list[Path]:
    """collection.log.5 … .1, collection.log: oldest first, those that exist."""
    names = [f"{LOG_NAME}.{k}" for k in range(LOG_BACKUPS, 0, -1)] + [LOG_NAME]
    return [out_dir / name for name in names if (out_dir / name).is_file()]


def runs(out_dir: Path, window: tuple[str, str]) -> Runs:
    """Each `run end status=… exit=…` line (and each lock refusal, exit 75) in the window:
    the snapshot collectors' (02–04) per day by outcome, the other scripts' in totals."""
    per_day: dict[str, Counter] = {}
    others: dict[str, Counter] = {}
    files = log_files(out_dir)
    since = None
    for path in files:
        with open(path, "rb") as handle:
            for line in handle:
                since = since or line[:19].decode("ascii", "replace") + "Z"
                outcome = _outcome(line)
                if outcome is None:
                    continue
                ts, script, label = outcome
                if not window[0] <= ts <= window[1]:
                    continue
                if script.startswith(SNAPSHOT_SCRIPTS):
                    per_day.setdefault(ts[:10], Counter())[label] += 1
                else:
                    others.setdefault(script, Counter())[label.startswith("failed")] += 1
    days = _day_range(sorted(per_day))
    labels = sorted({label for counts in per_day.values() for label in counts}, key=_label_order)
    outcomes = tuple((label, tuple(per_day.get(d, Counter())[label] for d in days))
                     for label in labels)  # fmt: skip
    summary = tuple((script, sum(c.values()), c[True]) for script, c in sorted(others.items()))
    return Runs(tuple(days), outcomes, summary, since, len(files))


def _outcome(line: bytes) -> tuple[str, str, str] | None:
    """(UTC time to the second, script, outcome label) of a run's last line, else None."""
    if b" run end " in line:
        match = RUN_END.match(line)
        if match is None:
            return None
        stamp, script, status, code = (part.decode("ascii", "replace") for part in match.groups())
        label = status if status != "failed" else f"failed, exit {code}"
    elif b"refused, exit 75" in line:
        match = REFUSED.match(line)
        if match is None:
            return None
        stamp, script = (part.decode("ascii", "replace") for part in match.groups())
        label = "refused (another run held the lock), exit 75"
    else:
        return None
    return stamp[:19] + "Z", script, label


def _label_order(label: str) -> tuple[int, str]:
    order = {"ok": 0, "skipped": 1}
    return order.get(label, 3 if label.startswith("refused") else 2), label


def _day_range(days: list[str]) -> list[str]:
    """Every day from the first to the last (days without runs have none)."""
    if not days:
        return []
    out, at = [], parse_iso(f"{days[0]}T00:00:00Z")
    while day_key(at) <= days[-1]:
        out.append(day_key(at))
        at += DAY_S
    return out
