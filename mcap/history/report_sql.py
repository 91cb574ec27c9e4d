"""`--report`'s aggregates: SQL over the views `history` and `totals` (history_views), so no
history row passes through Python — only the few thousand points a chart draws.

A chart has at most MAX_POINTS points per series: when a range holds more times than that,
the times are grouped in buckets (the narrowest of BUCKETS_S that fits) and each bucket
shows the value of its last snapshot (or backfilled point). docs/report.md says where each
chart's figures come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_POINTS = 3000
EVERY_POINT_S = 1  # a bucket of one second: every snapshot (their times are whole seconds)
BUCKETS_S = (3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 30 * 86400)
BITCOIN = "btc-bitcoin"
TOP_COINS = 10
_IN_RANGE = "ts BETWEEN CAST(? AS TIMESTAMP) AND CAST(? AS TIMESTAMP)"
_H_IN_RANGE = "h." + _IN_RANGE
_DAY = "strftime(ts, '%Y-%m-%d')"


@dataclass(frozen=True)
class Window:
    """The report's range as DuckDB timestamps (`YYYY-MM-DD HH:MM:SS`, UTC)."""

    start: str
    end: str

    @classmethod
    def of(cls, start: str, end: str) -> Window:
        """From our UTC texts (`2026-11-25T00:00:00Z`)."""
        return cls(start.replace("T", " ").rstrip("Z"), end.replace("T", " ").rstrip("Z"))

    @property
    def params(self) -> list[str]:
        return [self.start, self.end]


@dataclass(frozen=True)
class Extent:
    """One source's times in the range: how many, the first and the last (epoch seconds)."""

    times: int = 0
    first: int | None = None
    last: int | None = None


def extents(con: Any, window: Window) -> dict[str, Extent]:
    """Per source of `totals` ('snapshot', 'historical'): its distinct times in the range."""
    rows = con.execute(
        "SELECT source, count(DISTINCT ts), CAST(epoch(min(ts)) AS BIGINT), "
        f"CAST(epoch(max(ts)) AS BIGINT) FROM totals WHERE {_IN_RANGE} GROUP BY source",
        window.params,
    ).fetchall()
    return {source: Extent(times, first, last) for source, times, first, last in rows}


def bucket_seconds(found: dict[str, Extent]) -> int:
    """EVERY_POINT_S when no source has more than MAX_POINTS times, else the narrowest bucket
    that keeps the whole span within MAX_POINTS."""
    if all(extent.times <= MAX_POINTS for extent in found.values()):
        return EVERY_POINT_S
    firsts = [e.first for e in found.values() if e.first is not None]
    lasts = [e.last for e in found.values() if e.last is not None]
    span = max(lasts) - min(firsts)
    return next((width for width in BUCKETS_S if span / width <= MAX_POINTS), BUCKETS_S[-1])


def _bucket(width: int, column: str = "ts") -> str:
    return f"CAST(epoch(time_bucket(to_seconds({int(width)}), {column})) AS BIGINT)"


def snapshot_totals(con: Any, window: Window, width: int) -> list[tuple]:
    """Per bucket of snapshots: (bucket, first and last snapshot time, the last one's global
    market cap, the last one's sum over the collected coins), oldest first."""
    return con.execute(
        f"SELECT {_bucket(width)} AS b, CAST(epoch(min(ts)) AS BIGINT), "
        "CAST(epoch(max(ts)) AS BIGINT), arg_max(market_cap_usd, ts), "
        f"arg_max(coins_market_cap_usd, ts) FROM totals WHERE source = 'snapshot' AND "
        f"{_IN_RANGE} GROUP BY b ORDER BY b",
        window.params,
    ).fetchall()


def derived_totals(con: Any, window: Window, width: int) -> list[tuple]:
    """Per bucket of backfilled times: (bucket, the last time's sum over the coins backfilled
    at it, how many coins that sum holds), oldest first."""
    return con.execute(
        f"SELECT {_bucket(width)} AS b, arg_max(coins_market_cap_usd, ts), "
        f"arg_max(coin_count, ts) FROM totals WHERE source = 'historical' AND {_IN_RANGE} "
        "GROUP BY b ORDER BY b",
        window.params,
    ).fetchall()


def top_coins(con: Any, window: Window) -> tuple[int | None, list[tuple[str, int]]]:
    """The last snapshot in the range (epoch seconds) and its TOP_COINS ranked coins (id,
    rank), by rank."""
    (last,) = con.execute(
        f"SELECT max(ts) FROM totals WHERE source = 'snapshot' AND {_IN_RANGE}", window.params
    ).fetchone()
    if last is None:
        return None, []
    rows = con.execute(
        "SELECT id, rank FROM history WHERE source = 'snapshot' AND ts = ? AND rank > 0 "
        f"ORDER BY rank, id LIMIT {TOP_COINS}",
        [last],
    ).fetchall()
    return int(last.timestamp()), rows


def coin_caps(con: Any, window: Window, width: int, ids: list[str], source: str) -> list[tuple]:
    """Per bucket and coin of `ids`: (bucket, id, the market cap at its last time there)."""
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    return con.execute(
        f"SELECT {_bucket(width)} AS b, id, arg_max(market_cap_usd, ts) FROM history "
        f"WHERE source = ? AND id IN ({marks}) AND {_IN_RANGE} GROUP BY b, id ORDER BY b",
        [source, *ids, *window.params],
    ).fetchall()


def dominance(con: Any, window: Window, width: int, coin: str = BITCOIN) -> list[tuple]:
    """Per bucket of snapshots: (bucket, the coin's share of the global market cap in % at the
    last snapshot that holds both)."""
    return con.execute(
        f"SELECT {_bucket(width, 'h.ts')} AS b, "
        "arg_max(100 * h.market_cap_usd / t.market_cap_usd, h.ts) FROM history h JOIN totals t "
        "ON h.ts = t.ts AND t.source = 'snapshot' WHERE h.source = 'snapshot' AND h.id = ? "
        "AND t.market_cap_usd > 0 AND h.market_cap_usd IS NOT NULL AND "
        f"{_H_IN_RANGE} GROUP BY b ORDER BY b",
        [coin, *window.params],
    ).fetchall()


def snapshots_by_day(con: Any, window: Window) -> dict[str, int]:
    """UTC day → committed snapshots."""
    rows = con.execute(
        f"SELECT {_DAY} AS d, count(*) FROM totals WHERE source = 'snapshot' AND {_IN_RANGE} "
        "GROUP BY d",
        window.params,
    ).fetchall()
    return dict(rows)


def backfill_by_day(con: Any, window: Window) -> dict[str, tuple[int, int]]:
    """UTC day → (backfilled points, coins they are of)."""
    rows = con.execute(
        f"SELECT {_DAY} AS d, count(*), count(DISTINCT id) FROM history "
        f"WHERE source = 'historical' AND {_IN_RANGE} GROUP BY d",
        window.params,
    ).fetchall()
    return {day: (points, coins) for day, points, coins in rows}
