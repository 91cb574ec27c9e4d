"""Benchmark `04 --report` on a paid year: seconds, peak RSS, page size, Chromium's draw.

    uv run python -m benchmarks.report                 # a paid year (about 8 minutes)
    uv run python -m benchmarks.report --days 30       # a paid month
    uv run python -m benchmarks.report --keep DIR      # build in DIR once, measure again later

The year is built as benchmarks.history builds it: one real paid day (48 snapshots × 12,000
coins through HistoryStore.commit) archived by the collectors' own step, the other days that
day's Parquet file re-dated and re-walked, listed in the manifest and snapshots.jsonl like
real archives, and one open plain day after them (576,000 rows). Then the real
05_backfill_history.py fills a year of daily points for the first `--backfill-coins` coins
from the fake's /tickers/{id}/historical (paid plan, starter tier). The history is built, not
collected, so there is no collection.log of cron runs: the runs chart is the one part not
measured at scale (its cost is one pass over at most six log files of 5 MB).

Each figure is a fresh `04 --report` process with the clock at the open day's end: the
seconds from start to exit (interpreter start-up and imports included), its peak RSS (VmHWM,
read by the process itself just before it exits) and the page's bytes; best and spread of
`--repeats`. Then headless Chromium (tests/browser.py, offline) opens the page: the page's
own clock from navigation to the load event and to the frame at which every chart is drawn.
Targets: ≤ 10 s, ≤ 500 MB, ≤ 5 MB. It reports; it does not test (exit 0).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.history import (
    ARCHIVE_CHILD,
    DAY0,
    Figures,
    build_day,
    child_run,
    copy_history,
    day_after,
    list_snapshots,
    log,
    mark,
    spread,
    synthesize_days,
)
from mcap.clock import CLOCK_OFFSET_ENV, parse_iso
from mcap.history.files import HistoryFiles
from mcap.history.manifest import read_manifest
from tests.browser import Chromium, chromium_path
from tests.fake_api import FakeCoinPaprika

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench-1234567890"
SECONDS_TARGET, RSS_TARGET_MB, PAGE_TARGET_MB = 10.0, 500.0, 5.0
# The 04 process measures itself: the script's main(), then its own peak RSS.
REPORT_CHILD = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("s04", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
code = module.main(sys.argv[2:])
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"code": code, "rss_mb": int(hwm.split()[1]) / 1024}), file=sys.stderr)
"""


def build_history(out: Path, api: FakeCoinPaprika, days: int) -> str:
    """A paid history of `days` archived days and an open plain one; returns the open day."""
    built = out.parent / "built"
    log("building one paid day through HistoryStore.commit (48 × 12,000 rows)")
    build_day(built, DAY0, api)
    open_day = day_after(DAY0, days)
    log(f"building the open day {open_day}")
    build_day(built, open_day, api)
    copy_history(built, out)
    shutil.rmtree(built)
    log("archiving the closed day in a child process")
    try:
        child_run(ARCHIVE_CHILD, out, f"{open_day}T23:59:00Z")
    except ValueError as exc:  # its figures line was not the last one printed: look instead
        log(f"the archive step's figures could not be read ({exc}); checking the manifest")
    if [e.day for e in read_manifest(HistoryFiles(out)).entries] != [DAY0]:
        raise RuntimeError(f"the archive step did not archive {DAY0}")
    log(f"synthesizing {days - 1} more archived days")
    list_snapshots(out, synthesize_days(out, DAY0, days - 1))
    return open_day


def backfill(out: Path, api: FakeCoinPaprika, coins: int, clock: float) -> str:
    """The real 05: a year of daily points for the first `coins` coins."""
    api.time_offset = clock - time.time()
    ids = ",".join(ticker["id"] for ticker in api.tickers[:coins])
    env = {**os.environ, "COINPAPRIKA_API_KEY": KEY, CLOCK_OFFSET_ENV: str(clock - time.time())}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(ROOT / "05_backfill_history.py"), "--out-dir", str(out),
         "--base-url", api.url, "--coins", ids, "--days", "365", "--tier", "starter",
         "--rate", "10", "--quiet"],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"05 exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return f"{coins:,} coins × 365 days in {time.monotonic() - started:.0f} s"


def report_run(out: Path, page: Path, clock: float) -> tuple[float, float]:
    """One `04 --report` process: (seconds from start to exit, its peak RSS in MB)."""
    env = {**os.environ, CLOCK_OFFSET_ENV: str(clock - time.time())}
    env.pop("COINPAPRIKA_API_KEY", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", REPORT_CHILD, str(ROOT / "04_production_collector.py"),
         "--out-dir", str(out), "--report", str(page), "--quiet"],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    seconds = time.monotonic() - started
    figures = json.loads(done.stderr.strip().splitlines()[-1])
    if figures["code"] != 0:
        raise RuntimeError(f"04 --report exited {figures['code']}: {done.stderr[-300:]}")
    return seconds, figures["rss_mb"]


def browser_figures(page: Path, loads: int = 5) -> str:
    executable = chromium_path()
    if executable is None:
        return "no Chromium (apt-get install chromium)"
    with Chromium(executable) as chrome:
        ready = "document.documentElement.dataset.ready === 'yes'"
        load_ms, drawn_ms = chrome.timed_loads(page, ready, loads)
        summary = chrome.evaluate("window.reportSummary()")
        requests = chrome.requests_beyond(page)
        errors = chrome.log.errors
    points = sum(s["points"] for chart in summary.values() for s in chart["series"])
    return (
        f"load event {statistics.median(load_ms):.0f} ms, every chart drawn "
        f"{statistics.median(drawn_ms):.0f} ms (median of {loads}); {len(summary)} charts, "
        f"{points:,} points; requests {len(requests)}, console errors {len(errors)}"
    )


def measure(figures: Figures, out: Path, clock: float, repeats: int) -> None:
    page = out.parent / "report.html"
    runs = [report_run(out, page, clock) for _ in range(repeats)]
    seconds, rss = [s for s, _ in runs], max(r for _, r in runs)
    size_mb = page.stat().st_size / 1e6
    figures.add(
        "04 --report, whole process",
        f"{spread(seconds)}, peak RSS {rss:.0f} MB "
        f"[{mark(max(seconds) <= SECONDS_TARGET)} / {mark(rss <= RSS_TARGET_MB)}]",
        f"≤ {SECONDS_TARGET:.0f} s, ≤ {RSS_TARGET_MB:.0f} MB",
    )
    figures.add("the page", f"{size_mb:.2f} MB [{mark(size_mb <= PAGE_TARGET_MB)}]",
                f"≤ {PAGE_TARGET_MB:.0f} MB")  # fmt: skip
    figures.add("headless Chromium", browser_figures(page))
    print(f"page: {page}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365, help="archived days (default 365)")
    parser.add_argument("--backfill-coins", type=int, default=500, help="coins 05 fills")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="build in DIR (reused when it has one)")
    args = parser.parse_args(argv)
    root = Path(args.keep or tempfile.mkdtemp(prefix="mcap-report-bench-"))
    out = root / "data"
    figures = Figures()
    started = time.monotonic()
    with FakeCoinPaprika(n_tickers=12_000, n_coins=10, plan="paid", api_key=KEY) as api:
        marker = root / "open_day"
        if not marker.exists():
            root.mkdir(parents=True, exist_ok=True)
            open_day = build_history(out, api, args.days)
            clock = parse_iso(f"{open_day}T23:59:00Z")
            figures.add("backfilled points (05)", backfill(out, api, args.backfill_coins, clock))
            marker.write_text(open_day)
        open_day = marker.read_text().strip()
        clock = parse_iso(f"{open_day}T23:59:00Z")
        rows = sum(json.loads(x)["coin_count"] for x in (out / "history" / "snapshots.jsonl")
                   .read_bytes().splitlines())  # fmt: skip
        figures.add("history", f"{args.days} archived days + 1 plain day, {rows:,} rows")
        figures.attempt("04 --report", lambda: measure(figures, out, clock, args.repeats))
    figures.print(
        f"mcap-collector report benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} "
        f"cores, CPython {sys.version.split()[0]}; {time.monotonic() - started:.0f} s in all"
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
