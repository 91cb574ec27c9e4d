"""`--report`'s figures, gathered once through the reader of record: DuckDB aggregates over
the `history` and `totals` views (history.report_sql), history/gaps.jsonl, the request
ledger and collection.log, as frozen data for the page (html_report). Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .clock import parse_iso, utc_iso
from .context import STATS_NAME
from .errors import ArchiveDamaged
from .history import TimeRange, open_picture
from .history.gaps import GAP_FACTOR
from .history.query import history_views
from .history.report_sql import (
    EVERY_POINT_S,
    Extent,
    Window,
    backfill_by_day,
    bucket_seconds,
    extents,
    snapshots_by_day,
)
from .history.summaries import SnapshotRecord
from .jsonio import loads_object
from .report_charts import Chart, dominance_chart, top_chart, totals_chart
from .report_ops import (
    Day,
    OpenGap,
    Quota,
    Runs,
    calendar,
    gap_records,
    ongoing_gap,
    open_gaps,
    quota,
    runs,
)
from .settings import Config

ALL_TIME = ("1970-01-01", "9999-12-31")


@dataclass(frozen=True)
class Charts:
    """The time charts and what they are drawn from."""

    bucket_s: int = EVERY_POINT_S
    totals: Chart | None = None
    top: Chart | None = None
    top_at: str | None = None  # the snapshot whose ranks pick the top 10
    dominance: Chart | None = None


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows, as of `generated_at`."""

    out_dir: str
    generated_at: str
    every_min: int
    asked: tuple[str | None, str | None]  # --from, --to as given
    window: tuple[str, str]  # the range as UTC bounds
    snapshots: Extent
    backfilled: Extent  # backfilled times (each a time at which points were backfilled)
    latest: SnapshotRecord | None  # the last snapshot in the range
    charts: Charts
    calendar: tuple[Day, ...]
    gaps: tuple[OpenGap, ...]
    more_gaps: int
    quota: Quota
    runs: Runs
    warnings: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.snapshots.times and not self.backfilled.times


def gather(config: Config, now: float) -> ReportData:
    """The report's figures for the configured range.

    Raises:
        ArchiveDamaged: the history cannot be read truthfully (74).
    """
    start, end = config.report_range
    span = TimeRange.parse(start or ALL_TIME[0], end or ALL_TIME[1])
    window = Window.of(span.start, span.end)
    limit = min(now, parse_iso(span.end))
    with open_picture(config.out_dir) as picture:
        with history_views(picture, config.quotes) as con:
            found, charts, snapshots, backfill = _aggregates(con, picture, window, config)
        records = [r for r in picture.snapshots if span.holds(r.ts)]
        first = picture.first_ts
        warnings = tuple(picture.warnings()) + _clock_warning(picture.snapshots, now)
        files = picture.files
    shot = found.get("snapshot", Extent())
    if shot.last is not None:  # slots count until the collector is overdue, not before
        limit = min(limit, max(shot.last, now - GAP_FACTOR * config.every_min * 60))
    anchor = None if first is None else parse_iso(first)
    lines = gap_records(files)
    bounds = (anchor, parse_iso(span.start), limit)
    days = calendar(snapshots, backfill, lines, bounds, config.every_min)
    ongoing = ongoing_gap(shot.last, min(now, parse_iso(span.end)), config.every_min)
    gaps, more = open_gaps(lines, (span.start, span.end), ongoing)
    budget, budget_from = _budget(config)
    return ReportData(
        out_dir=str(config.out_dir), generated_at=utc_iso(now), every_min=config.every_min,
        asked=(start, end), window=(span.start, span.end), snapshots=shot,
        backfilled=found.get("historical", Extent()), latest=records[-1] if records else None,
        charts=charts, calendar=tuple(days), gaps=tuple(gaps), more_gaps=more,
        quota=quota(config.out_dir, now, budget, budget_from),
        runs=runs(config.out_dir, (span.start, span.end)), warnings=warnings,
    )  # fmt: skip


def _clock_warning(snapshots: Any, now: float) -> tuple[str, ...]:
    """A last snapshot after this machine's clock: the calendar and the gaps count up to the
    clock, so the page says why they look short (--status calls it unhealthy)."""
    if not snapshots or parse_iso(snapshots[-1].ts) <= now:
        return ()
    return (
        f"The last snapshot ({snapshots[-1].ts}) is after this machine's clock "
        f"({utc_iso(now)}): was the clock moved back? Slots and gaps are counted up to the "
        "clock; fix the system clock and report again.",
    )


def _aggregates(con: Any, picture: Any, window: Window, config: Config) -> tuple:
    """The SQL part, with a file DuckDB could not read reported as damage (74)."""
    import duckdb

    try:
        found = extents(con, window)
        width = bucket_seconds(found)
        totals, gaps = totals_chart(con, window, width, config.every_min)
        top, top_at = top_chart(con, window, width, gaps)
        dominance = dominance_chart(con, window, width, gaps)
        charts = Charts(width, totals, top, None if top_at is None else utc_iso(top_at),
                        dominance)  # fmt: skip
        return found, charts, snapshots_by_day(con, window), backfill_by_day(con, window)
    except duckdb.IOException as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for path, name in picture.fd_names().items():
            text = text.replace(path, name)
        raise ArchiveDamaged(f"a history file could not be read for the report: {text}") from None


def _budget(config: Config) -> tuple[int | None, str]:
    """The cron job's budget as its last run recorded it, else this command's."""
    try:
        stats = loads_object((config.out_dir / STATS_NAME).read_bytes())
    except (OSError, ValueError):
        stats = None
    if isinstance(stats, dict) and "monthly_budget" in stats:
        value = stats["monthly_budget"]
        if value is None or (type(value) is int and value >= 0):
            return value, f"the last run's --monthly-budget ({STATS_NAME})"
    return config.monthly_budget, "this command's --monthly-budget"
