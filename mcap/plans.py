"""The plans' limits for the historical endpoint, as data: how far back each interval class
may read, per tier (docs/design.md, "API traps"; the API's own plans page).

A request the plan cannot serve is refused before any call; a refusal the API sends anyway
("… is not allowed in this plan") narrows the window for the rest of the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .clock import parse_iso

DAY = 86_400
YEAR = 365 * DAY
TIERS = ("free", "starter", "pro", "business", "ultimate", "enterprise")
PAID_DEFAULT_TIER = "starter"  # a key of an unknown plan: assume the smallest paid one
# interval → (seconds between points, class)
INTERVALS: dict[str, tuple[int, str]] = {
    "5m": (300, "5-minute"), "10m": (600, "5-minute"), "15m": (900, "5-minute"),
    "30m": (1800, "5-minute"), "45m": (2700, "5-minute"),
    "1h": (3600, "hourly"), "2h": (7200, "hourly"), "3h": (10_800, "hourly"),
    "6h": (21_600, "hourly"), "12h": (43_200, "hourly"),
    "24h": (DAY, "daily"), "1d": (DAY, "daily"), "7d": (7 * DAY, "daily"),
    "14d": (14 * DAY, "daily"), "30d": (30 * DAY, "daily"), "90d": (90 * DAY, "daily"),
    "365d": (365 * DAY, "daily"),
}  # fmt: skip
# What a backfill may ask for: intervals whose grid is known (epoch multiples, so daily points
# at 00:00 UTC). 7d … 365d are left out: their alignment is undocumented, and daily points
# cost the same (one call holds 13.7 years of them).
GRID_INTERVALS = tuple(name for name, (step, _) in INTERVALS.items() if step <= 86_400)
# class → tier → how far back (seconds); None: unlimited; 0: not in the plan.
WINDOWS: dict[str, dict[str, int | None]] = {
    "daily": {"free": YEAR, "starter": 5 * YEAR, "pro": None, "business": None,
              "ultimate": None, "enterprise": None},
    "hourly": {"free": DAY, "starter": 30 * DAY, "pro": 90 * DAY, "business": YEAR,
               "ultimate": None, "enterprise": None},
    "5-minute": {"free": 0, "starter": 7 * DAY, "pro": 30 * DAY, "business": YEAR,
                 "ultimate": None, "enterprise": None},
}  # fmt: skip
MONTHLY_CALLS: dict[str, int | None] = {
    "free": 20_000, "starter": 400_000, "pro": 1_000_000, "business": 5_000_000,
    "ultimate": 10_000_000, "enterprise": None,
}  # fmt: skip
MAX_POINTS = 5_000  # per call (`limit`)
WINDOW_MARGIN_S = 3_600  # the cutoff rolls to the nanosecond: start a little after it
REFUSAL = re.compile(r"is not allowed in this plan", re.IGNORECASE)
_CUTOFF = re.compile(r"before (\d{4}-\d\d-\d\d)(?:T(\d\d:\d\d:\d\d)(?:\.\d+)?Z?)?")
_CLASS_WORDS = {"daily": "daily", "hourly": "hourly", "minute": "5-minute"}


def step_of(interval: str) -> int:
    return INTERVALS[interval][0]


def class_of(interval: str) -> str:
    return INTERVALS[interval][1]


def window_s(tier: str, interval: str) -> int | None:
    """How far back `interval` may read on `tier` (None: no limit; 0: not in the plan)."""
    return WINDOWS[class_of(interval)][tier]


def describe(tier: str) -> str:
    """What the plan serves, in words: `the free plan: daily points for the last 365 days, …`."""
    parts = []
    for cls, unit in (("daily", "daily"), ("hourly", "hourly"), ("5-minute", "5-minute")):
        window = WINDOWS[cls][tier]
        if window == 0:
            parts.append(f"no {unit} points")
        elif window is None:
            parts.append(f"{unit} points as far back as they go")
        else:
            parts.append(f"{unit} points for the last {_days(window)}")
    return f"the {tier} plan serves " + ", ".join(parts)


def _days(seconds: int) -> str:
    days = seconds // DAY
    if days % 365 == 0 and days > 365:
        return f"{days // 365} years"
    return f"{days} day{'s' * (days > 1)}"


@dataclass(frozen=True)
class Refusal:
    """A plan-window refusal: which class, and the cutoff the API named (None: no points at
    all of that class on this plan)."""

    cls: str
    cutoff: float | None


def parse_refusal(message: str) -> Refusal | None:
    """`Getting daily historical data before 2025-12-01T20:14:03.123Z is not allowed in this
    plan` → Refusal("daily", epoch); anything else (a quota 402) → None."""
    if not REFUSAL.search(message):
        return None
    lowered = message.lower()
    cls = next((c for word, c in _CLASS_WORDS.items() if f"getting {word}" in lowered), None)
    found = _CUTOFF.search(message)
    if found is None:
        return Refusal(cls or "unknown", None)
    cutoff = parse_iso(f"{found.group(1)}T{found.group(2) or '00:00:00'}Z")
    return Refusal(cls or "unknown", cutoff + 1)  # the fraction rounded up
