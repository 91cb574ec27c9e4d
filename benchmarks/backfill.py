"""Benchmark the backfill (05_backfill_history.py) and the views over both sources.

    uv run python -m benchmarks.backfill            # the full figures (about 45 minutes)
    uv run python -m benchmarks.backfill --quick    # a tenth of the coins, extrapolated

Every script runs as a real subprocess against the local fake API (127.0.0.1 only), under a
tiny launcher that spawns it and reaps it with os.wait4: wall time spawn to reap, and the
child's own peak RSS (a child spawned from this process, which holds the fake's data, would
report at least this process's RSS). Figures, in the order printed (targets where there is one):

1. The free universe: a free fake with 12,000 tickers (the free plan serves 2,000), 50 ms of
   latency and a limit of 10 requests a second (a 429 beyond it). 02 once, then 05 with its
   defaults (the coins of that snapshot, a year of daily points, 5 requests a second): calls
   (backfill_stats.json and the fake's count), points stored, wall time against the rate's
   floor (calls ÷ rate; target ≤ 1.1 × floor), 429s received (target 0), peak RSS of 05
   (target ≤ 200 MB), bytes per point on disk (all of history/backfill/ ÷ points stored).
   Then the same from scratch at `--rate 10` (the API's limit: its 429s are reported).
2. The Starter universe: a paid fake (tier starter, no latency, no rate limit) with 12,000
   tickers; 02 once, then 05 `--rate 10` (5 years of daily points of every coin, one call a
   coin). 05's default deadline (1,200 s) stops a run at its floor, so 05 is run again, as
   docs/backfill.md says, until it exits 0: runs, calls, points, wall (all runs), bytes per
   point (goal ≤ 20 B), peak RSS (≤ 500 MB), Parquet pieces. `--quick` fills the top 1,200
   coins and extrapolates calls, points and wall ×10 (labelled so).
3. Next to it, a year of paid snapshots (12,000 coins every 30 minutes, 211 M rows) built as
   benchmarks/history.py builds one: a day of real HistoryStore commits, archived by the
   collectors' own step in a child process, the other days its Parquet file re-dated and
   re-walked in DuckDB; the Starter run's history/backfill/ is moved in beside it. Then, as
   subprocesses, best of 3: `04 --query` "one coin over all time" (both sources; goal ≤ 1 s),
   `04 --check-history`, `04 --export-history DAY --source historical`.

The page cache holds every file (they were just written): warm-cache figures. It reports; it
does not test (exit 0).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.__main__ import LAUNCHER
from benchmarks.history import (
    ARCHIVE_CHILD,
    Figures,
    build_day,
    child_run,
    day_after,
    list_snapshots,
    log,
    mark,
    spread,
    synthesize_days,
)
from mcap.history import HistoryStore
from mcap.history.files import HistoryFiles
from mcap.history.manifest import read_manifest
from tests.fake_api import FakeCoinPaprika

ROOT = Path(__file__).resolve().parent.parent
S02, S04, S05 = (
    ROOT / "02_fetch_all_market_caps.py",
    ROOT / "04_production_collector.py",
    ROOT / "05_backfill_history.py",
)
API_KEY = "benchmark-key"
TICKERS = 12_000
FREE_LATENCY_S = 0.05
API_RATE_LIMIT = 10  # requests a second, as the API's per-IP limit
DEFAULT_RATE = 5.0  # 05's default --rate (mcap/settings.py BACKFILL_RATE)
WALL_TARGET = 1.1  # × the rate's floor
FREE_RSS_MB, STARTER_RSS_MB = 200.0, 500.0
BYTES_PER_POINT_GOAL = 20.0
QUERY_GOAL_S = 1.0
MAX_RUNS = 5  # 05 runs of the Starter fill before it is reported as not finished
ONE_COIN = "SELECT ts, source, market_cap_usd FROM history WHERE id = 'btc-bitcoin' ORDER BY ts"
DAY = 86400


@dataclass(frozen=True)
class Run:
    """One script run: wall time spawn to reap, its own peak RSS, exit code, output."""

    wall_s: float
    rss_mb: float
    code: int
    stdout: str
    stderr: str

    def last_line(self) -> str:
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1][:160] if lines else "no output"


def script_env(key: bool) -> dict[str, str]:
    """os.environ without COINPAPRIKA_* or COLLECTOR_* (no clock offset, no crash point);
    an API key makes the scripts use the paid plan."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COINPAPRIKA_", "COLLECTOR_"))}
    if key:
        env["COINPAPRIKA_API_KEY"] = API_KEY
    return env


def measured(script: Path, args: list[str], key: bool, work: Path) -> Run:
    """Run `script args` from the repository root via the launcher."""
    result = work / "launcher-result.json"
    result.unlink(missing_ok=True)
    argv = [sys.executable, "-c", LAUNCHER, str(result), sys.executable, str(script), *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        rc = subprocess.run(argv, cwd=ROOT, env=script_env(key), stdout=out, stderr=err)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if rc.returncode != 0 or not result.exists():
        raise RuntimeError(f"benchmark launcher failed ({rc.returncode}): {stderr[-300:]}")
    data = json.loads(result.read_text())
    code = os.waitstatus_to_exitcode(data["status"])
    return Run(data["wall_s"], data["maxrss"] / 1024, code, stdout, stderr)


def snapshot(api: FakeCoinPaprika, out: Path, key: bool) -> None:
    """02 once: the universe 05 fills by default."""
    run = measured(S02, ["--base-url", api.url, "--out-dir", str(out), "--quiet"], key, out)
    if run.code != 0:
        raise RuntimeError(f"02 exited {run.code}: {run.last_line()}")


# --- what a backfill stored ----------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """history/backfill/ after a fill: points (committed), bytes by kind, pieces."""

    points: int
    plain_points: int
    pieces: int
    total_bytes: int
    plain_bytes: int
    ranges_bytes: int
    piece_bytes: int

    @property
    def per_point(self) -> float:
        return self.total_bytes / self.points if self.points else float("nan")

    def describe(self) -> str:
        return (
            f"{self.per_point:.1f} B ({self.total_bytes / 1e6:.1f} MB: {self.pieces} Parquet "
            f"piece(s) {self.piece_bytes / 1e6:.1f} MB, points.jsonl {self.plain_bytes / 1e6:.2f}"
            f" MB ({self.plain_points:,} plain points), ranges.jsonl "
            f"{self.ranges_bytes / 1e6:.2f} MB)"
        )


def stored(out: Path) -> Stored:
    folder = out / "history" / "backfill"
    state = json.loads((folder / ".state.json").read_bytes())
    pieces = state.get("pieces") or []

    def size(path: Path) -> int:
        return path.stat().st_size if path.exists() else 0

    return Stored(
        points=state["points"],
        plain_points=state["points"] - sum(piece["rows"] for piece in pieces),
        pieces=len(pieces),
        total_bytes=sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()),
        plain_bytes=size(folder / "points.jsonl"),
        ranges_bytes=size(folder / "ranges.jsonl"),
        piece_bytes=sum(size(folder / "archive" / piece["file"]) for piece in pieces),
    )


def backfill_stats(out: Path) -> dict:
    return json.loads((out / "backfill_stats.json").read_bytes())["backfill"]


# --- 1. the free universe --------------------------------------------------------------------


def free_figures(figures: Figures, root: Path, rate: float | None, coins: int | None) -> None:
    """02, then 05 at `rate` (None: its default) against the free fake, from scratch."""
    pace = rate or DEFAULT_RATE
    label = f"free, --rate {rate:g}" if rate else f"free, default rate ({DEFAULT_RATE:g}/s)"
    if coins:
        label += f", top:{coins} (quick)"
    api = FakeCoinPaprika(
        n_tickers=TICKERS, n_coins=10, plan="free",
        latency_s=FREE_LATENCY_S, rate_limit_per_s=API_RATE_LIMIT,
    )  # fmt: skip
    out = root / f"free-{pace:g}"
    out.mkdir(parents=True)
    with api:
        snapshot(api, out, key=False)
        calls_before, limited_before = api.count_historical(), api.rate_limited
        args = ["--base-url", api.url, "--out-dir", str(out)]
        args += ["--rate", f"{rate:g}"] if rate else []
        args += ["--coins", f"top:{coins}"] if coins else []
        log(f"{label}: 05 (subprocess)")
        run = measured(S05, args, False, out)
        fake_calls = api.count_historical() - calls_before
        limited = api.rate_limited - limited_before
    stats, disk = backfill_stats(out), stored(out)
    floor = stats["calls"] / pace
    figures.add(
        f"{label}: calls",
        f"{stats['calls']:,} (backfill_stats.json) / {fake_calls:,} (the fake's count) for "
        f"{stats['calls_needed']:,} needed, {stats['coins']:,} coins; exit {run.code}",
    )
    figures.add(
        f"{label}: points stored",
        f"{disk.points:,} ({stats['points_added']:,} added; {stats['coins_filled']:,} coins "
        f"filled, {stats['coins_without_data']:,} without data in the range), "
        f"{stats['first'][:10]} → {stats['last'][:10]}",
    )
    ok = run.wall_s <= WALL_TARGET * floor
    figures.add(
        f"{label}: wall time",
        f"{run.wall_s:.1f} s against a floor of {floor:.1f} s ({stats['calls']:,} calls ÷ "
        f"{pace:g}/s): {run.wall_s / floor:.3f}× [{mark(ok)}]",
        f"≤ {WALL_TARGET:g} × floor",
    )
    figures.add(
        f"{label}: 429s received",
        f"{limited:,}" + (f" [{mark(limited == 0)}]" if rate is None else " (reported)"),
        "0" if rate is None else "",
    )
    figures.add(
        f"{label}: peak RSS of 05",
        f"{run.rss_mb:.0f} MB [{mark(run.rss_mb <= FREE_RSS_MB)}]",
        f"≤ {FREE_RSS_MB:.0f} MB",
    )
    figures.add(f"{label}: bytes per point on disk", disk.describe())
    if run.code != 0:
        figures.add(f"{label}: 05's last line", run.last_line())
    shutil.rmtree(out)


# --- 2. the Starter universe -----------------------------------------------------------------


def starter_fill(figures: Figures, api: FakeCoinPaprika, out: Path, coins: int | None) -> None:
    """02, then 05 --rate 10 until it exits 0 (the deadline stops a run: it continues)."""
    label = "starter" + (f", top:{coins} (quick)" if coins else "")
    out.mkdir(parents=True)
    snapshot(api, out, key=True)
    calls_before = api.count_historical()
    args = ["--base-url", api.url, "--out-dir", str(out), "--rate", "10"]
    args += ["--coins", f"top:{coins}"] if coins else []
    runs: list[Run] = []
    calls = 0
    needed = None
    while len(runs) < MAX_RUNS and (not runs or runs[-1].code == 75):
        log(f"{label}: 05 --rate 10 (subprocess, run {len(runs) + 1})")
        runs.append(measured(S05, args, True, out))
        stats = backfill_stats(out)
        calls += stats["calls"]
        needed = needed if needed is not None else stats["calls_needed"]
        log(f"  exit {runs[-1].code} after {runs[-1].wall_s:.0f} s, {stats['calls']:,} calls")
    fake_calls = api.count_historical() - calls_before
    disk = stored(out)
    wall = sum(run.wall_s for run in runs)
    rss = max(run.rss_mb for run in runs)
    floor = calls / 10.0
    codes = ", ".join(str(run.code) for run in runs)
    figures.add(
        f"{label}: 05 runs",
        f"{len(runs)} (exit {codes}; 05's default deadline is 1,200 s"
        + ("" if runs[-1].code == 0 else f"; NOT finished in {MAX_RUNS} runs")
        + ")",
    )
    figures.add(
        f"{label}: calls",
        f"{calls:,} (backfill_stats.json, all runs) / {fake_calls:,} (the fake's count) for "
        f"{needed:,} needed",
    )
    figures.add(f"{label}: points stored", f"{disk.points:,} ({stats['first'][:10]} → "
                f"{stats['last'][:10]})")  # fmt: skip
    figures.add(
        f"{label}: wall time (all runs)",
        f"{wall:.0f} s ({' + '.join(f'{run.wall_s:.0f}' for run in runs)}) against a floor "
        f"of {floor:.0f} s ({calls:,} calls ÷ 10/s): {wall / floor:.3f}×",
    )
    figures.add(
        f"{label}: bytes per point on disk",
        f"{disk.describe()} [{mark(disk.per_point <= BYTES_PER_POINT_GOAL)}]",
        f"≤ {BYTES_PER_POINT_GOAL:g} B",
    )
    figures.add(
        f"{label}: peak RSS of 05",
        f"{rss:.0f} MB (highest of the runs) [{mark(rss <= STARTER_RSS_MB)}]",
        f"≤ {STARTER_RSS_MB:.0f} MB",
    )
    figures.add(f"{label}: Parquet pieces", f"{disk.pieces}")
    if coins:
        factor = TICKERS / coins
        figures.add(
            f"{label}: EXTRAPOLATED ×{factor:g} to {TICKERS:,} coins",
            f"≈ {calls * factor:,.0f} calls, ≈ {disk.points * factor:,.0f} points, ≈ "
            f"{wall * factor / 60:.0f} min of 05 (not measured: run without --quick)"
            + (
                "; 05's default deadline (1,200 s) would stop the first run: the next continues"
                if wall * factor > 1200
                else ""
            ),
        )
    if runs[-1].code != 0:
        figures.add(f"{label}: 05's last line", runs[-1].last_line())


# --- 3. a year of snapshots next to it -------------------------------------------------------


def build_year(data: Path, api: FakeCoinPaprika, days: int) -> tuple[int, str]:
    """`days` archived days of paid snapshots ending the day before yesterday, and yesterday
    plain (benchmarks/history.py's way). Returns (rows, the first day)."""
    today = time.strftime("%Y-%m-%d", time.gmtime())
    first, open_day = day_after(today, -days - 1), day_after(today, -1)
    built = data.parent / "year-built"
    log(f"a paid day through HistoryStore.commit ({first}, 48 × {TICKERS:,} rows)")
    rows = build_day(built, first, api)
    open_rows = build_day(built, open_day, api)
    shutil.move(built, data)
    log("archiving it in a child process (the collectors' step)")
    child_run(ARCHIVE_CHILD, data, f"{open_day}T23:59:00Z")
    (real,) = read_manifest(HistoryFiles(data)).entries
    if real.day != first or HistoryStore(data).read_state().archived_bytes:
        raise RuntimeError(f"the archive step left {real.file} and the plain head uncut")
    log(f"synthesizing {days - 1} more archived days")
    list_snapshots(data, synthesize_days(data, first, days - 1))
    return rows * days + open_rows, first


def linked_year(source: Path, data: Path) -> tuple[int, str]:
    """A year of snapshots built before (benchmarks/report.py --keep DIR: DIR/data), its
    files hard-linked into `data` (instant; the source is not changed), without its own
    history/backfill/. Returns (rows, the first day)."""
    subprocess.run(["cp", "-al", str(source), str(data)], check=True)
    shutil.rmtree(data / "history" / "backfill", ignore_errors=True)
    lines = (data / "history" / "snapshots.jsonl").read_bytes().splitlines()
    rows = sum(json.loads(line)["coin_count"] for line in lines)
    return rows, read_manifest(HistoryFiles(data)).entries[0].day


def move_backfill(source: Path, data: Path) -> None:
    """The fill's history/backfill/ into `data`'s history, in place of the empty one the
    archive step made there (an empty points.jsonl and the recipe's schema.parquet)."""
    target = data / "history" / "backfill"
    if target.exists():
        empty = not (target / ".state.json").exists() and not any(
            p.stat().st_size for p in target.glob("*.jsonl")
        )
        if not empty:
            raise RuntimeError(f"{target} holds backfilled points already")
        shutil.rmtree(target)
    shutil.move(source / "history" / "backfill", target)


def views_figures(figures: Figures, data: Path, rows: int, export_day: str) -> None:
    """04's views over both sources, whole processes, best of 3."""
    size = f"{rows / 1e6:.0f} M snapshot rows + the backfill"

    def best_of(args: list[str], times: int = 3) -> list[Run]:
        return [measured(S04, ["--out-dir", str(data), *args], False, data) for _ in range(times)]

    def query() -> None:
        log("04 --query: one coin over all time")
        runs = best_of(["--query", ONE_COIN])
        lines = runs[-1].stdout.splitlines()[1:]
        by_source = {s: sum(1 for x in lines if f",{s}," in x) for s in ("snapshot", "historical")}
        best = min(run.wall_s for run in runs)
        figures.add(
            f"04 --query one coin over all time ({size})",
            f"{spread([r.wall_s for r in runs])}, exit {runs[-1].code}: {len(lines):,} rows "
            f"({by_source['historical']:,} historical, {by_source['snapshot']:,} snapshot), "
            f"peak RSS {max(r.rss_mb for r in runs):.0f} MB [{mark(best <= QUERY_GOAL_S)}]",
            f"≤ {QUERY_GOAL_S:g} s",
        )

    def trivial() -> None:
        log("04 --query SELECT 1 (start-up, picture and checks)")
        runs = best_of(["--query", "SELECT 1 AS one"])
        figures.add(
            "04 --query 'SELECT 1 AS one' (what any query pays)",
            f"{spread([r.wall_s for r in runs])}, exit {runs[-1].code}: Python and DuckDB "
            "start-up, the picture and its checks",
        )

    def check() -> None:
        log("04 --check-history")
        runs = best_of(["--check-history"])
        said = [x for x in runs[-1].stdout.splitlines() if x.startswith(("History", "Backf"))]
        figures.add(
            "04 --check-history (whole process)",
            f"{spread([r.wall_s for r in runs], 1)}, exit {runs[-1].code}, peak RSS "
            f"{max(r.rss_mb for r in runs):.0f} MB: {' / '.join(said)[:200]}",
        )

    def export() -> None:
        log(f"04 --export-history {export_day} --source historical")
        runs = best_of(["--export-history", export_day, "--source", "historical"])
        lines = runs[-1].stdout.count("\n")
        figures.add(
            f"04 --export-history {export_day} --source historical",
            f"{spread([r.wall_s for r in runs])}, exit {runs[-1].code}: {lines:,} lines, peak "
            f"RSS {max(r.rss_mb for r in runs):.0f} MB",
        )

    figures.attempt(f"04 --query one coin over all time ({size})", query)
    figures.attempt("04 --query 'SELECT 1 AS one' (what any query pays)", trivial)
    figures.attempt("04 --check-history (whole process)", check)
    figures.attempt(f"04 --export-history {export_day} --source historical", export)


def starter_figures(
    figures: Figures, root: Path, coins: int | None, days: int, snapshots: Path | None
) -> None:
    api = FakeCoinPaprika(n_tickers=TICKERS, n_coins=10, plan="paid", api_key=API_KEY)
    out = root / "starter"
    with api:
        starter_fill(figures, api, out, coins)
    data = root / "data"
    seconds = time.monotonic()
    if snapshots is None:
        rows, first = build_year(data, api, days)
        how = "built in {:.0f} s as benchmarks/history.py builds a year"
    else:
        rows, first = linked_year(snapshots, data)
        how = f"hard-linked from {snapshots} in {{:.0f}} s"
    how = how.format(time.monotonic() - seconds)
    move_backfill(out, data)
    shutil.rmtree(out)
    archive_bytes = sum(e.bytes for e in read_manifest(HistoryFiles(data)).entries)
    figures.add(
        f"snapshots beside it: {days} archived paid days + 1 plain",
        f"{rows:,} rows, {archive_bytes / 1e9:.2f} GB of Parquet from {first} ({how}); the "
        "Starter run's history/backfill/ moved in beside them",
    )
    export_day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 30 * DAY))
    views_figures(figures, data, rows, export_day)


# --- main -------------------------------------------------------------------------------------


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def others() -> str:
    """Other benchmark processes on this machine (their command lines), if any."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(part.decode("utf-8", "replace") for part in argv if part)
        if "-m benchmarks" in text and "benchmarks.backfill" not in text and "uv run" not in text:
            found.append(text[-60:])
    return "; ".join(sorted(set(found))) or "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tenth of the work: free top:200, Starter top:1,200 (extrapolated), 30 days",
    )
    parser.add_argument("--free-coins", type=int, help="free: fill only the top N coins")
    parser.add_argument("--starter-coins", type=int, help="Starter: fill only the top N coins")
    parser.add_argument("--days", type=int, help="archived days of snapshots (default 365)")
    parser.add_argument("--keep", metavar="DIR", help="build in DIR and keep it")
    parser.add_argument(
        "--snapshots",
        metavar="DIR",
        type=Path,
        help="a data directory holding a year of snapshots already (benchmarks.report --keep "
        "K builds one in K/data): hard-linked instead of built",
    )
    parser.add_argument(
        "--only", choices=("free", "starter"), help="only the free or the Starter figures"
    )
    args = parser.parse_args(argv)
    free_coins = args.free_coins or (200 if args.quick else None)
    starter_coins = args.starter_coins or (1_200 if args.quick else None)
    days = args.days or (30 if args.quick else 365)
    root = Path(args.keep or tempfile.mkdtemp(prefix="mcap-backfill-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    before, running = load(), others()
    log(f"work dir {root}; {before}; other benchmarks running: {running}")
    figures = Figures()
    started = time.monotonic()
    for rate in (None, 10.0) if args.only != "starter" else ():
        name = f"free universe at {'the default rate' if rate is None else '--rate 10'}"
        figures.attempt(name, lambda rate=rate: free_figures(figures, root, rate, free_coins))
    if args.only != "free":
        figures.attempt(
            "Starter universe",
            lambda: starter_figures(figures, root, starter_coins, days, args.snapshots),
        )
    import duckdb

    figures.print(
        f"mcap-collector backfill benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} "
        f"cores, CPython {sys.version.split()[0]}, DuckDB {duckdb.__version__}"
        + ("; --quick" if args.quick else "")
        + f"; {time.monotonic() - started:.0f} s in all\n  before: {before}; other "
        f"benchmarks running: {running}\n  after: {load()}; other benchmarks running: {others()}"
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
