"""`--report`'s time charts as data: the total market cap, the top 10 coins, bitcoin's
dominance, each a shared time axis and its series, from history.report_sql's aggregates.

A snapshot series breaks where slots were missed: between two buckets whose snapshots are
further apart than the one gap rule allows (history.gaps.GAP_FACTOR cadences), a gap point is
added with no value. Backfilled and derived series are drawn apart (dashed, with points) and
never break: they have no cadence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .history.gaps import GAP_FACTOR
from .history.report_sql import (
    BITCOIN,
    Window,
    coin_caps,
    derived_totals,
    dominance,
    snapshot_totals,
    top_coins,
)

SNAPSHOT, HISTORICAL, DERIVED = "snapshot", "historical", "derived"


@dataclass(frozen=True)
class Series:
    """One line: its label, its kind (SNAPSHOT breaks at gaps; HISTORICAL and DERIVED are
    backfilled and drawn apart) and its value at each of the chart's times (None: none)."""

    label: str
    kind: str
    values: tuple[float | None, ...]

    @property
    def points(self) -> int:
        return sum(value is not None for value in self.values)


@dataclass(frozen=True)
class Chart:
    """Times (epoch seconds, UTC), the series over them, and the indices of gap points."""

    x: tuple[int, ...]
    series: tuple[Series, ...]
    gaps: tuple[int, ...] = ()
    unit: str = "usd"  # or "percent"

    @property
    def drawable(self) -> bool:
        """Two points in time at least: one is a figure, not a line."""
        return sum(1 for i in range(len(self.x)) if any(s.values[i] is not None
                                                        for s in self.series)) >= 2  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "x": list(self.x),
            "gaps": list(self.gaps),
            "unit": self.unit,
            "series": [{"label": s.label, "kind": s.kind, "values": list(s.values)}
                       for s in self.series],
        }  # fmt: skip


def _number(value: Any, digits: int = 0) -> float | None:
    """A finite value rounded for the page (market caps to the dollar), else None."""
    if value is None or not math.isfinite(value):
        return None
    rounded = round(float(value), digits)
    return int(rounded) if digits == 0 else rounded


def gap_times(buckets: list[tuple], every_min: int) -> list[int]:
    """A time between each two consecutive snapshot buckets with missed slots between them
    (first snapshot of the next minus last of the previous over GAP_FACTOR cadences)."""
    found = []
    for before, after in zip(buckets, buckets[1:], strict=False):
        if after[1] - before[2] > GAP_FACTOR * every_min * 60:
            found.append((before[0] + after[0]) // 2)
    return found


def build_chart(
    columns: list[tuple[str, str, Mapping[int, float | None]]],
    gaps: Iterable[int] = (),
    unit: str = "usd",
) -> Chart:
    """A chart from (label, kind, {time: value}) columns, with gap points at `gaps`."""
    gaps = set(gaps)
    times = sorted(gaps.union(*(values.keys() for _, _, values in columns)))
    series = tuple(
        Series(label, kind, tuple(values.get(t) for t in times)) for label, kind, values in columns
    )
    return Chart(tuple(times), series, tuple(i for i, t in enumerate(times) if t in gaps), unit)


def totals_chart(con: Any, window: Window, width: int, every_min: int) -> tuple[Chart, list[int]]:
    """The global market cap and the collected coins' sum per snapshot bucket, and the sum over
    the backfilled coins (derived); returns the gap times too (the other charts share them)."""
    rows = snapshot_totals(con, window, width)
    gaps = gap_times(rows, every_min)
    derived = derived_totals(con, window, width)
    coins = sorted({int(n) for _, _, n in derived if n is not None})
    held = f"{coins[0]:,}" if len(coins) == 1 else f"{coins[0]:,}–{coins[-1]:,}" if coins else "0"
    columns = [
        ("Global market cap (the API's /global)", SNAPSHOT, {r[0]: _number(r[3]) for r in rows}),
        ("Sum over the collected coins", SNAPSHOT, {r[0]: _number(r[4]) for r in rows}),
    ]
    if derived:
        label = f"Derived: sum over the backfilled coins ({held} coins; no /global history)"
        columns.append((label, DERIVED, {b: _number(v) for b, v, _ in derived}))
    return build_chart(columns, gaps), gaps


def top_chart(
    con: Any, window: Window, width: int, gaps: list[int]
) -> tuple[Chart | None, int | None]:
    """The market caps of the last snapshot's top 10 coins (by rank), snapshot buckets, plus
    each one's backfilled points where it has some; and the time the ranks are from."""
    at, ranked = top_coins(con, window)
    if not ranked:
        return None, at
    ids = [coin for coin, _ in ranked]
    seen: dict[tuple[str, str], dict[int, float | None]] = {}
    for source in (SNAPSHOT, HISTORICAL):
        for bucket, coin, cap in coin_caps(con, window, width, ids, source):
            seen.setdefault((coin, source), {})[bucket] = _number(cap)
    columns = []
    for coin, rank in ranked:
        columns.append((f"#{rank} {coin}", SNAPSHOT, seen.get((coin, SNAPSHOT), {})))
    for coin, rank in ranked:
        if (coin, HISTORICAL) in seen:
            columns.append((f"#{rank} {coin} (backfilled)", HISTORICAL, seen[(coin, HISTORICAL)]))
    return build_chart(columns, gaps), at


def dominance_chart(con: Any, window: Window, width: int, gaps: list[int]) -> Chart:
    """Bitcoin's share of the global market cap, per snapshot bucket (the API keeps no
    /global history, so backfilled points have no share)."""
    shares = {bucket: _number(share, 3) for bucket, share in dominance(con, window, width)}
    label = f"{BITCOIN}'s share of the global market cap"
    return build_chart([(label, SNAPSHOT, shares)], gaps, unit="percent")
