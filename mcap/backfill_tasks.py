"""What a backfill asks for: which coins, which times, in how many calls, and how many of the
month's calls it must leave to the regular snapshots.

Pure functions of their arguments (the files read here are the latest snapshot and the
catalogue), tested on their own.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .clock import next_month_start, parse_iso
from .errors import UsageError
from .history.points_ranges import Coverage
from .plans import (
    DAY,
    MAX_POINTS,
    MONTHLY_CALLS,
    WINDOW_MARGIN_S,
    class_of,
    describe,
    step_of,
    window_s,
)
from .settings import CALLS_PER_SNAPSHOT

SNAPSHOT_JSON = "market_cap_snapshot.json"
COINS_JSON = "coins_metadata.json"
EARLIEST = parse_iso("2010-07-17T00:00:00Z")  # the oldest data the API has (bitcoin)


@dataclass(frozen=True)
class Coin:
    """A coin to backfill: its id, rank (0: unranked), and where its data starts, if known."""

    id: str
    rank: int
    first_data: int | None = None


@dataclass(frozen=True)
class Task:
    """One call: `interval` points of a coin from `start` to `end` (epochs on the grid)."""

    coin: str
    rank: int
    interval: str
    start: int
    end: int

    @property
    def points(self) -> int:
        return (self.end - self.start) // step_of(self.interval) + 1


def _first_data(row: dict[str, Any]) -> int | None:
    try:
        return int(parse_iso(str(row.get("first_data_at"))))
    except ValueError:
        return None


def universe(out_dir: Path, spec: str | None) -> list[Coin]:
    """The coins of `--coins SPEC`, highest rank first (unranked after, as listed).

    Raises:
        UsageError: the spec is malformed, or the file it needs is not there yet.
    """
    if spec == "catalogue":
        document = _read(out_dir / COINS_JSON, "run 01_fetch_all_coins_list.py first")
        coins = [Coin(c["id"], c.get("rank") or 0) for c in document.get("coins", [])]
        return sorted(coins, key=lambda coin: (coin.rank == 0, coin.rank))
    if spec is not None and not spec.startswith("top:"):
        ids = [part.strip() for part in spec.split(",") if part.strip()]
        if not ids:
            raise UsageError("--coins takes top:N, a comma list of coin ids, or catalogue")
        return [Coin(ident, 0) for ident in dict.fromkeys(ids)]
    document = _read(out_dir / SNAPSHOT_JSON, "run 02_fetch_all_market_caps.py first")
    coins = [Coin(c["id"], c.get("rank") or 0, _first_data(c)) for c in document["coins"]]
    if spec is None:
        return coins
    try:
        count = int(spec[4:])
    except ValueError:
        count = 0
    if count < 1:
        raise UsageError(f"--coins {spec}: top:N needs a whole number N of at least 1")
    return coins[:count]


def _read(path: Path, what_to_do: str) -> dict[str, Any]:
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"{path.name} is not there yet", hint=what_to_do) from None
    except ValueError as exc:
        raise UsageError(f"{path.name} is not readable ({exc})", hint=what_to_do) from None
    if not isinstance(document, dict) or not isinstance(document.get("coins"), list):
        raise UsageError(f"{path.name} has no list of coins", hint=what_to_do)
    return document


def time_span(
    tier: str, interval: str, days: float | None, now: float, learned: dict[str, int]
) -> tuple[int, int]:
    """The grid times to fill, [start, end], within what the plan serves.

    Raises:
        UsageError: the plan has no points of this class, or not as far back as asked.
    """
    step = step_of(interval)
    window = window_s(tier, interval)
    cls = class_of(interval)
    if cls in learned:  # a refusal taught a tighter window than the table's
        window = min(window, learned[cls]) if window else learned[cls]
    if window == 0:
        raise UsageError(f"--interval {interval}: {describe(tier)}")
    end = int(now // step * step)
    reach = None if window is None else window - WINDOW_MARGIN_S
    if days is None:
        start = EARLIEST if reach is None else now - reach
    else:
        start = now - days * DAY
        if reach is not None and start < now - reach:
            raise UsageError(f"--days {days:g} with --interval {interval}: {describe(tier)}")
    first = int(math.ceil(start / step) * step)
    return first, end


def tasks_for(
    coins: list[Coin], interval: str, span: tuple[int, int], coverage: Coverage
) -> list[Task]:
    """The calls still needed: each coin's uncovered times, in runs of at most MAX_POINTS."""
    step = step_of(interval)
    span = (int(span[0]), int(span[1]))
    tasks = []
    for coin in coins:
        start = span[0]
        if coin.first_data is not None:  # asking before a coin's data starts costs nothing
            start = max(start, -(-coin.first_data // step) * step)
        for first, last in uncovered(coverage, coin.id, step, start, span[1]):
            tasks += chunks(coin, interval, first, last)
    return tasks


def uncovered(
    coverage: Coverage, coin: str, step: int, start: int, end: int
) -> list[tuple[int, int]]:
    """Grid runs of [start, end] no answered range holds (a range holds every time of this
    grid when its own step divides this one)."""
    held = sorted((r.start, r.end) for r in coverage.by_coin.get(coin, ()) if step % r.step == 0)
    runs, cursor = [], start
    for first, last in held:
        first, last = -(-first // step) * step, last // step * step
        if last < cursor or first > last:
            continue
        if first > cursor:
            runs.append((cursor, min(end, first - step)))
        cursor = max(cursor, last + step)
        if cursor > end:
            break
    if cursor <= end:
        runs.append((cursor, end))
    return [(a, b) for a, b in runs if a <= b]


def chunks(coin: Coin, interval: str, first: int, last: int) -> list[Task]:
    """[first, last] of one coin in calls of at most MAX_POINTS points."""
    step = step_of(interval)
    return [
        Task(coin.id, coin.rank, interval, start, min(last, start + step * (MAX_POINTS - 1)))
        for start in range(first, last + 1, step * MAX_POINTS)
    ]


def monthly_budget(budget: int | None, tier: str) -> int | None:
    """--monthly-budget, else (a key) the tier's monthly calls: what the backfill may count on."""
    return budget if budget is not None else MONTHLY_CALLS.get(tier)


def reserve_calls(every_min: int, attempts: int, now: float) -> int:
    """Calls the regular snapshots need until the month ends at their cadence, with one run's
    retries: what a backfill must never spend."""
    slots = math.ceil((next_month_start(now) - now) / (every_min * 60))
    return math.ceil(slots * CALLS_PER_SNAPSHOT * 1.05) + CALLS_PER_SNAPSHOT * (attempts - 1)


@dataclass(frozen=True)
class Allowance:
    """What a backfill may spend this month: the month's calls (None: no limit) and the
    reserve the snapshots keep (0 without a limit)."""

    budget: int | None
    reserve: int

    def spare(self, used: int) -> int | None:
        """Calls left beyond the reserve once `used` are spent (None: no limit)."""
        return None if self.budget is None else self.budget - self.reserve - used


def allowance(
    budget: int | None, tier: str, every_min: int, attempts: int, now: float
) -> Allowance:
    """monthly_budget and, when there is one, reserve_calls at `now`."""
    month = monthly_budget(budget, tier)
    return Allowance(month, reserve_calls(every_min, attempts, now) if month else 0)
