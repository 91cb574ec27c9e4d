"""`04 --report FILE.html`: one self-contained page of the history's figures (report_data).

The only place that touches the chart library: uPlot (mcap/vendor/uplot, MIT), its
stylesheet and the page's own script and style (mcap/report_assets) are inlined, so the page
opens offline and asks the network for nothing. The calendar and the gaps table are plain
HTML. Why uPlot, from measurements: docs/report.md. The collector's own runs never import
this module (views.py imports it when --report is asked for).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .clock import now
from .context import RunContext
from .errors import ExitCode, UsageError
from .fsio import atomic_write_bytes
from .html_sections import (
    calendar_section,
    esc,
    gaps_section,
    money,
    quota_section,
    runs_section,
    time_sections,
)
from .report_data import ReportData, gather

VENDOR = Path(__file__).parent / "vendor" / "uplot"
ASSETS = Path(__file__).parent / "report_assets"
UPLOT_VERSION = "1.6.32"


def write_page(ctx: RunContext) -> int:
    """04 --report FILE.html: gather, render, replace FILE atomically; nothing else written.

    Raises:
        UsageError: FILE is not an .html path in an existing directory, or lies in history/.
        ArchiveDamaged: the history cannot be read truthfully (74); FILE is not written.
    """
    config = ctx.config
    target = Path(str(config.report_file)).expanduser()
    check_target(target, config.out_dir)
    data = gather(config, now())
    body = render(data)
    atomic_write_bytes(target, body)
    drawn = "nothing to chart yet" if data.empty else (
        f"{data.snapshots.times:,} snapshot(s), {data.backfilled.times:,} backfilled time(s), "
        f"{len(data.calendar)} day(s), {len(data.gaps)} open gap(s)")  # fmt: skip
    ctx.say(f"Report: {target} ({len(body) / 1e3:,.0f} kB): {drawn}")
    for warning in data.warnings:
        ctx.say(f"Warning: {warning}")
    return ExitCode.OK


def check_target(target: Path, out_dir: Path) -> None:
    """An .html file in an existing directory, outside history/ (a typo must not replace a
    history file)."""
    if target.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--report {target}: the page's name must end in .html")
    if target.is_dir():
        raise UsageError(f"--report {target} is a directory; name the page's file")
    if not target.parent.is_dir():
        raise UsageError(f"--report {target}: no such directory {target.parent} (--report "
                         "creates none)")  # fmt: skip
    history = (out_dir / "history").resolve()
    if target.resolve().is_relative_to(history):
        raise UsageError(f"--report {target} lies in {history}; write the page elsewhere")


def render(data: ReportData) -> bytes:
    """The page, UTF-8."""
    charts: dict[str, Any] = {}
    body = [_header(data)]
    body.append(calendar_section(data.calendar, data.every_min))
    body.append(time_sections(data, charts))
    body.append(quota_section(data.quota, charts))
    body.append(runs_section(data.runs, charts))
    body.append(gaps_section(data))
    payload = json.dumps({"charts": charts}, allow_nan=False, separators=(",", ":"))
    payload = payload.replace("</", "<\\/")  # no "</script>" inside the script element
    page = PAGE.format(
        title=esc(f"Market-cap history report — {data.out_dir}"),
        uplot_css=(VENDOR / "uPlot.min.css").read_text(encoding="utf-8"),
        css=(ASSETS / "report.css").read_text(encoding="utf-8"),
        body="\n".join(body),
        payload=payload,
        uplot_js=(VENDOR / "uPlot.iife.min.js").read_text(encoding="utf-8"),
        js=(ASSETS / "report.js").read_text(encoding="utf-8"),
        version=UPLOT_VERSION,
        csp=CSP,
    )
    return page.encode("utf-8")


def _header(data: ReportData) -> str:
    asked = data.asked
    scope = "all of the history"
    if asked[0] or asked[1]:
        scope = f"{esc(asked[0] or 'the start')} … {esc(asked[1] or 'now')} (--from/--to)"
    latest = data.latest
    facts = [
        ("snapshots in range", f"{data.snapshots.times:,}"),
        ("backfilled times", f"{data.backfilled.times:,}"),
        ("last snapshot", latest.ts if latest else "none"),
        ("coins in it", f"{latest.coin_count:,}" if latest else "–"),
        ("global market cap", money(latest.market_cap_usd) if latest else "–"),
    ]
    lines = [
        "<h1>Market-cap history report</h1>",
        f'<p class="meta">{esc(data.out_dir)} · generated {esc(data.generated_at)} · range: {scope}'
        f" · cadence --every {data.every_min} min · all times UTC</p>",
        '<div class="facts">'
        + "".join(f"<div>{esc(k)}<b>{esc(v)}</b></div>" for k, v in facts)
        + "</div>",
    ]
    if data.empty:
        lines.append(
            '<p class="notice" id="nothing-yet"><b>No snapshot and no backfilled point in this '
            "range yet</b>, so there is nothing to chart. Run <code>04_production_collector.py"
            "</code> (or <code>05_backfill_history.py</code> for the past) and report again.</p>"
        )
    elif data.snapshots.times == 1:
        lines.append(
            f'<p class="notice" id="one-snapshot"><b>Only one snapshot so far</b> '
            f"({esc(latest.ts if latest else '')}): a line needs two points in time, so the "
            "time charts below wait for the next run.</p>"
        )
    for warning in data.warnings:
        lines.append(f'<p class="notice">{esc(warning)}</p>')
    return "\n".join(lines)


# Nothing but what the page holds: no request can leave it, whatever a script tried.
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title>
<style>{uplot_css}</style>
<style>{css}</style>
</head><body>
{body}
<footer>Drawn with uPlot {version} (MIT licence, inlined). Everything is in this file: it
opens offline and asks the network for nothing.</footer>
<script type="application/json" id="report-data">{payload}</script>
<script>{uplot_js}</script>
<script>{js}</script>
</body></html>
"""
