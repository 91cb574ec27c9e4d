"""Time in one place: the run's clock and the UTC text forms every file uses."""

from __future__ import annotations

import calendar
import datetime
import os
import re
import time

# For tests only: shifts the clock of a whole run (a snapshot "next month", a clock moved back).
CLOCK_OFFSET_ENV = "COLLECTOR_CLOCK_OFFSET_S"


def now() -> float:
    """Epoch seconds, shifted by COLLECTOR_CLOCK_OFFSET_S when a test sets it."""
    return time.time() + offset()


def offset() -> float:
    """The test's shift of the clock (0 outside tests)."""
    return float(os.environ.get(CLOCK_OFFSET_ENV) or 0)


def utc_iso(ts: float | None = None) -> str:
    """ISO-8601 UTC with Z, to the second: `2026-11-25T20:30:00Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now() if ts is None else ts))


_ISO_SECONDS = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")


def parse_iso(text: str) -> float:
    """Our own `YYYY-MM-DDTHH:MM:SSZ` back into epoch seconds.

    Raises:
        ValueError: any other text.
    """
    if not isinstance(text, str):
        raise TypeError(f"a time must be text, not {type(text).__name__}")
    match = _ISO_SECONDS.fullmatch(text)
    if match is None:
        raise ValueError(f"time {text[:40]!r} is not YYYY-MM-DDTHH:MM:SSZ")
    fields = tuple(map(int, match.groups()))
    datetime.datetime(*fields)  # a real date and time (ValueError: 2026-02-30, T25:61)
    # A regex and the constructor, not strptime: a year's views parse every snapshot's time
    # (17,568 a paid year), and strptime cost them 0.25 s.
    return float(calendar.timegm((*fields, 0, 0, 0)))


def compact_id(iso: str) -> str:
    """`2026-11-25T20:30:00Z` → `20261125T203000Z` (a snapshot id, a file-name stamp)."""
    return iso.replace("-", "").replace(":", "")


def month_key(ts: float) -> str:
    return time.strftime("%Y-%m", time.gmtime(ts))


def day_key(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


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


def time_bound(text: str, end_of_day: bool = False) -> str:
    """A user's `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ` as our UTC text, checked as a real
    date and time (no month 13, no 30 February, no hour 25); a date means its first second,
    or its last with `end_of_day`.

    Raises:
        ValueError: anything else.
    """
    shape = re.fullmatch(r"\d{4}-\d\d-\d\d(T\d\d:\d\d:\d\dZ)?", text)
    for layout in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d") if shape else ():
        try:
            moment = time.strptime(text, layout)
        except ValueError:
            continue
        if len(text) == 10:
            return text + ("T23:59:59Z" if end_of_day else "T00:00:00Z")
        if moment.tm_sec > 59:  # strptime accepts a leap second 60
            break
        return text
    raise ValueError(f"not a valid date or UTC time: {text!r} (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)")
