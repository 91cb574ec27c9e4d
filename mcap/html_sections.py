"""`--report`'s page, section by section: the time charts' specs (drawn by
report_assets/report.js), the coverage calendar and the open gaps as plain HTML, the quota and
the runs. Each section says where its figures come from, or in a sentence why it draws none.
"""

from __future__ import annotations

import html
from typing import Any

from .clock import parse_iso
from .report_charts import Chart
from .report_data import ReportData
from .report_ops import Day, Quota, Runs

MIN_CHART_TIMES = 2
_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def money(value: float | None) -> str:
    """`$1.23 T`, `$456.00 M`, `$12.34`."""
    if value is None:
        return "–"
    sign, size = ("-" if value < 0 else ""), abs(value)
    for unit, suffix in _UNITS:
        if size >= unit:
            return f"{sign}${size / unit:.2f} {suffix}"
    return f"{sign}${size:.2f}"


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def bucket_text(seconds: int) -> str:
    if seconds <= 1:
        return "Every snapshot and every backfilled time"
    hours = seconds / 3600
    size = f"{hours:g} h" if hours < 24 else f"{hours / 24:g} day(s)"
    return f"One point per {size}: the last snapshot (or backfilled time) in it"


def section(key: str, title: str, source: str, content: str) -> str:
    heading = f'<h2>{esc(title)}</h2><p class="source">{source}</p>'
    return f'<section id="{key}">{heading}{content}</section>'


def chart_or(key: str, spec: dict[str, Any] | None, charts: dict[str, Any], empty: str) -> str:
    if spec is None:
        return f'<p class="empty" id="{key}-empty">{esc(empty)}</p>'
    charts[key] = spec
    return f'<div class="chart" id="chart-{key}"></div>'


def _time_spec(
    chart: Chart | None, y_label: str, log: bool = False, underlay: bool = False
) -> dict[str, Any] | None:
    if chart is None or not chart.drawable:
        return None
    return {"kind": "time", "yLabel": y_label, "log": log, "underlay": underlay,
            **chart.to_json()}  # fmt: skip


def time_sections(data: ReportData, charts: dict[str, Any]) -> str:
    c = data.charts
    points = esc(bucket_text(c.bucket_s))
    none = "Nothing to draw yet: a line needs two points in time in this range."
    totals = section(
        "totals", "Total market cap over time (USD)",
        "Solid: each snapshot's global market cap from the API's /global and the sum over the "
        "coins it collected (history/snapshots.jsonl); dashed with points: the sum over the "
        f"backfilled coins at each backfilled time (derived, source 'historical'). {points}; "
        "a solid line breaks where slots were missed.",
        chart_or("totals", _time_spec(c.totals, "USD", underlay=True), charts, none),
    )  # fmt: skip
    at = f"the last snapshot in range ({esc(c.top_at)})" if c.top_at else "the last snapshot"
    top = section(
        "top", "Top 10 coins by market cap (USD), ranked by the latest snapshot",
        f"The ten coins ranked 1–10 in {at}: solid, their market cap in each snapshot; dashed "
        f"with points, their backfilled points (/tickers/{{id}}/historical). {points}. On "
        "this log scale a zero or missing market cap is not drawn (the legend shows –).",
        chart_or("top", _time_spec(c.top, "USD (log scale)", log=True), charts,
                  "No ranked coin in this range yet: the top 10 come from a snapshot."),
    )  # fmt: skip
    dominance = section(
        "dominance", "Bitcoin dominance: btc-bitcoin's share of the global market cap (%)",
        "Each snapshot's btc-bitcoin market cap over its global market cap (/global). "
        f"Backfilled points have no share: the API keeps no /global history. {points}.",
        chart_or("dominance", _time_spec(c.dominance, "% of the global market cap"), charts,
                  none),
    )  # fmt: skip
    return "\n".join((totals, top, dominance))


def _day_title(day: Day) -> str:
    parts = [day.day]
    if day.slots:
        parts.append(f"{day.snapshots} snapshot(s) of {day.slots} slot(s) "
                     f"({100 * (day.coverage or 0):.1f} %)")  # fmt: skip
    elif day.snapshots:
        parts.append(f"{day.snapshots} snapshot(s)")
    else:
        parts.append("no snapshot due")
    if day.missed:
        parts.append(f"{day.missed} missed slot(s) in gaps.jsonl, {day.repaired} refilled")
    if day.failed_exits:
        codes = ", ".join(str(code) for code in day.failed_exits)
        parts.append(f"{len(day.failed_exits)} failed run(s) (exit {codes})")
    if day.backfilled_points:
        parts.append(f"backfilled: {day.backfilled_points:,} point(s) of "
                     f"{day.backfilled_coins:,} coin(s)")  # fmt: skip
    return "; ".join(parts)


def _day_class(day: Day) -> str:
    coverage = day.coverage
    if coverage is None or (not day.snapshots and day.backfilled_points):
        base = "bfonly" if day.backfilled_points and not day.snapshots else "idle"
    else:
        base = "full" if coverage >= 1 else "high" if coverage >= 0.9 else (
            "mid" if coverage >= 0.5 else "low")  # fmt: skip
    marks = [base]
    if day.backfilled_points and day.snapshots:
        marks.append("bf")
    if day.missed > day.repaired:
        marks.append("gap")
    if day.failed_exits:
        marks.append("fail")
    return " ".join(marks)


def _calendar_html(days: tuple[Day, ...]) -> str:
    by_month: dict[str, dict[int, Day]] = {}
    for day in days:
        by_month.setdefault(day.day[:7], {})[int(day.day[8:])] = day
    cells = []
    for month, known in by_month.items():
        cells.append(f'<span class="m">{month}</span>')
        for number in range(1, 32):
            day = known.get(number)
            if day is None:
                cells.append('<span class="c out"></span>')
                continue
            cells.append(f'<span class="c {_day_class(day)}" data-day="{day.day}" '
                         f'title="{esc(_day_title(day))}">{number}</span>')  # fmt: skip
    return f'<div class="cal" id="calendar">{"".join(cells)}</div>'


CALENDAR_KEY = (
    ("full", "every slot"), ("high", "≥ 90 %"), ("mid", "≥ 50 %"), ("low", "< 50 %"),
    ("idle", "no snapshot due"), ("bfonly", "backfilled only"), ("high bf", "+ backfilled"),
    ("high gap", "gap not refilled"), ("high fail", "failed run"),
)  # fmt: skip


def calendar_section(days: tuple[Day, ...], every_min: int) -> str:
    if not days:
        content = (
            '<p class="empty" id="calendar-empty">No day holds a snapshot or a backfilled '
            "point yet.</p>"
        )
    else:
        key = "".join(f'<span><span class="c {c}"></span>{esc(t)}</span>' for c, t in CALENDAR_KEY)
        content = _calendar_html(days) + f'<div class="key">{key}</div>'
    return section(
        "coverage", "Coverage calendar: snapshots per UTC day against the day's slots",
        f"One cell per day: committed snapshots against the slots of a {every_min}-minute "
        "cadence (--every), from the first snapshot on; red outline: missed slots that gap "
        "repair has not refilled (history/gaps.jsonl); ✕: failed runs; blue: backfilled points "
        "(history/backfill/). Hover a day for its figures.",
        content,
    )  # fmt: skip


def quota_section(quota: Quota, charts: dict[str, Any]) -> str:
    days = [day for day, calls in quota.days if calls is not None]
    budget = "no budget set" if quota.budget is None else f"budget {quota.budget:,}"
    facts = (f"{quota.used:,} calls in {quota.month} ({budget}, from {esc(quota.budget_from)})"
             + ("" if quota.projected is None else
                f"; at this month's pace {quota.projected:,} by the month's end"))  # fmt: skip
    if quota.uncounted:
        facts += (f"; {quota.uncounted:,} of them were made before per-day counting began "
                  "(an older version) and are in no bar")  # fmt: skip
    spec = None
    if len(days) >= MIN_CHART_TIMES and quota.used:
        spec = _quota_spec(quota)
    return section(
        "quota", f"Quota: API calls per day in {quota.month} (UTC), budget and projection",
        "Every HTTP attempt of every script sharing the directory, retries included "
        f"(request_ledger.json's day_requests). {facts}.",
        chart_or("quota", spec, charts,
                  f"Not enough days to chart yet: {facts}."),
    )  # fmt: skip


def _noon(day: str) -> int:
    """A day's bar stands at its noon, inside the day it counts."""
    return int(parse_iso(f"{day}T12:00:00Z"))


def _quota_spec(quota: Quota) -> dict[str, Any]:
    x, per_day, running, total = [], [], [], 0
    for day, calls in quota.days:
        x.append(_noon(day))
        per_day.append(calls)
        total += calls or 0
        running.append(total + quota.uncounted if calls is not None else None)
    projection: list[int | None] = [None] * len(x)
    today = max(i for i, calls in enumerate(per_day) if calls is not None)
    if quota.projected is not None and today < len(x) - 1:
        projection[today] = running[today]
        projection[-1] = quota.projected
    return {"kind": "quota", "x": x, "perDay": per_day, "cumulative": running,
            "budget": quota.budget, "projection": projection}  # fmt: skip


def runs_section(runs: Runs, charts: dict[str, Any]) -> str:
    reach = (f"collection.log and {runs.log_files - 1} rotation(s), from {esc(runs.log_since)}"
             if runs.log_since else "no collection.log yet")  # fmt: skip
    others = "; ".join(f"{esc(s)}: {n:,} run(s), {f:,} failed" for s, n, f in runs.others)
    spec = None
    if len(runs.days) >= 1 and runs.outcomes:
        spec = {"kind": "runs", "x": [_noon(d) for d in runs.days],
                "series": [{"label": label, "values": list(values)}
                           for label, values in runs.outcomes]}  # fmt: skip
    return section(
        "runs", "Runs per UTC day by outcome (02, 03 and 04: the snapshot runs)",
        "Each run's last log line (<code>run end status=… exit=…</code>), and each run the lock "
        f"refused (exit 75): {reach}. " + (f"Other scripts in range: {others}." if others else ""),
        chart_or("runs", spec, charts, "No snapshot run in the log for this range."),
    )  # fmt: skip


def gaps_section(data: ReportData) -> str:
    if not data.gaps:
        content = '<p class="empty" id="gaps-empty">No open gap in this range.</p>'
    else:
        rows = "".join(
            f"<tr><td>{esc(g.start)}</td><td>{esc(g.end)}</td><td class=n>{g.missed:,}</td>"
            f"<td>{esc(g.repair)}</td><td>{esc(g.reason)}</td></tr>"
            for g in data.gaps
        )
        more = f"<p>… and {data.more_gaps:,} older.</p>" if data.more_gaps else ""
        content = (
            '<table class="gaps" id="gaps-table"><thead><tr><th>from</th><th>to</th>'
            "<th>missed slots</th><th>gap repair</th><th>reason</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>{more}"
        )
    return section(
        "gaps", "Open gaps: missed slots not refilled",
        "history/gaps.jsonl's gap lines whose latest repair line is not 'repaired' (newest "
        "first), and a gap still open now.",
        content,
    )  # fmt: skip
