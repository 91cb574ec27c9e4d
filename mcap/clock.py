"""Time in one place: the run's clock and the UTC text forms every file uses."""

from __future__ import annotations

import calendar
import os
import time

# For tests only: shifts the clock of a whole run (a snapshot "next month", a clock moved back).
CLOCK_OFFSET_ENV = "COLLECTOR_CLOCK_OFFSET_S"


def now() -> float:
    """Epoch seconds, shifted by COLLECTOR_CLOCK_OFFSET_S when a test sets it."""
    return time.time() + float(os.environ.get(CLOCK_OFFSET_ENV) or 0)


def utc_iso(ts: float | None = None) -> str:
    """ISO-8601 UTC with Z, to the second: `2026-11-25T20:30:00Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now() if ts is None else ts))


def parse_iso(text: str) -> float:
    """Our own `YYYY-MM-DDTHH:MM:SSZ` back into epoch seconds.

    Raises:
        ValueError: any other text.
    """
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def compact_id(iso: str) -> str:
    """`2026-11-25T20:30:00Z` → `20261125T203000Z` (a snapshot id, a file-name stamp)."""
    return iso.replace("-", "").replace(":", "")


def month_key(ts: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(ts))


def hour_key(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H", time.gmtime(ts))


def month_start(ts: float) -> float:
    tm = time.gmtime(ts)
    return float(calendar.timegm((tm.tm_year, tm.tm_mon, 1, 0, 0, 0, 0, 0, 0)))


def next_month_start(ts: float) -> float:
    """First instant of the next calendar month, UTC."""
    tm = time.gmtime(ts)
    year, month = (tm.tm_year + 1, 1) if tm.tm_mon == 12 else (tm.tm_year, tm.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0)))
