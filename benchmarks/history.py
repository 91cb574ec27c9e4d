"""Benchmark the history at scale: bytes per row, archiving, queries, checking, rebuilding.

    uv run python -m benchmarks.history            # a paid month (about 9 minutes)
    uv run python -m benchmarks.history --year     # a paid year, 211 M rows (about 35 minutes,
                                                   # half of it SELECT * over the year)

Every view is timed through the reader of record (`open_picture`), as the collector's own
views run it. Figures, in the order printed (targets where there is one):

1. Archiving at the three paid cadences: a day every 30 min (48 snapshots × 12,000 coins,
   576,000 rows), every 10 min (144, 1.73 M) and every 5 min (288, 3.46 M), each built
   through HistoryStore.commit in a fresh directory (the fake API's coins move by their
   random walk: 7 significant digits, int market caps, zeros and nulls as the API sends
   them). Then the collector's archive step (HistoryStore.archive_closed_days) runs in a
   child process again and again, the clock (COLLECTOR_CLOCK_OFFSET_S) one cadence later
   each time as the cron job would be, until the day is all in Parquet and the plain head
   is cut: runs needed, the longest run's seconds and peak RSS (VmHWM), the highest peak
   RSS of any run, pieces, Parquet bytes per row. Each chain runs `--repeats` − 1 times
   (2 by default) on a copy of the same built files. Targets: no run over 30 s, peak RSS
   ≤ 500 MB.
2. Plain JSONL bytes per row, from a 30-min day built the same way for the month.
3. That day archived by the same child step with the next day still plain (the cut copies
   it): seconds and peak RSS, best and spread over `--repeats` copies; Parquet bytes/row.
4. More days: the archived day's Parquet file re-dated and re-walked in DuckDB (each coin's
   prices, caps and volumes follow a new random walk, so files are as incompressible as
   real ones), listed in the manifest (valid ArchiveEntry lines) and snapshots.jsonl like
   real archives. Bytes per row of all archived days.
5. The three documented queries (docs/queries.md) through `run_query` over the month or year
   plus one plain day, each with its own picture as --query takes it (identity check and
   plain counts included): first run, best and worst of three.
6. `SELECT * FROM history` over everything, streamed as CSV to /dev/null through `run_query`
   in a child process: seconds and peak RSS (`--repeats` − 1 runs over a month, one over a
   year: it takes many minutes there). Target: peak RSS ≤ 500 MB.
7. What --query's checks cost: open_picture, then size + footer hash of every listed file
   and the pieces against snapshots.jsonl (`require_trustworthy`), then the rest of a
   trivial `run_query` (mostly counting the plain rows per snapshot; the check it repeats
   is subtracted) — against a full SHA-256 of every archive file (`problems(full=True)`,
   what --status and --check-history pay). Best of three each.
8. --export-history of one archived day (the real first day: its SHA-256 and the SHA-256
   of the lines it printed back are checked); --check-history over everything; `04 --status`
   as a subprocess (a whole process: start-up, a full hash of every archive); rebuilding a
   lost state in a child process. Best and spread of `--repeats` runs (the export:
   `--repeats` − 1).

The page cache holds every file here (they were just written): the figures are warm-cache
ones. Figures that are extrapolated say so. `--days N` and `--no-cadences` make a quick try;
`--keep DIR` keeps the files. It reports; it does not test (exit 0): a figure that could not
be measured says FAILED and why.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from mcap.clock import CLOCK_OFFSET_ENV, parse_iso, utc_iso
from mcap.formats import history_bytes
from mcap.history import Commit, HistoryStore, TimeRange, check_history, export_lines, open_picture
from mcap.history.columnar import PARQUET_OPTIONS
from mcap.history.files import HistoryFiles
from mcap.history.manifest import ArchiveEntry, file_sha256, piece_name, read_manifest, tail_sha256
from mcap.history.query import run_query
from mcap.history.state import save_state
from mcap.jsonio import dumps
from tests.fake_api import FakeCoinPaprika

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
DAY0 = "2026-01-01"
CADENCE_DAY = "2026-06-01"  # the cadence figures' days (each in its own directory)
CADENCES_MIN = (30, 10, 5)
MAX_RUNS = 30  # a chain that has not finished by then is reported as such
RUN_TARGET_S = 30.0
RSS_TARGET_MB = 500.0
QUERIES = {
    "one coin over all time": (
        "SELECT ts, market_cap_usd FROM history WHERE id = 'btc-bitcoin' ORDER BY ts"
    ),
    "top 10 at one snapshot": (
        "SELECT rank, id, market_cap_usd FROM history WHERE ts = (SELECT max(ts) FROM totals) "
        "ORDER BY market_cap_usd DESC NULLS LAST LIMIT 10"
    ),
    "total market cap series": "SELECT ts, market_cap_usd FROM totals ORDER BY ts",
}


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def day_after(day: str, days: int = 1) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(parse_iso(f"{day}T00:00:00Z") + days * 86400))


def build_day(out: Path, day: str, api: FakeCoinPaprika, every_min: int = 30) -> int:
    """A day of real commits of the fake's 12,000 coins (paid plan: with circulating_supply)."""
    store = HistoryStore(out)
    start = parse_iso(f"{day}T00:00:00Z")
    rows = 0
    for index in range(1440 // every_min):
        api.advance(every_min * 60)
        ts = utc_iso(start + index * every_min * 60)
        data = history_bytes(api.tickers, ts, ("USD",))
        summary = {"ts": ts, "snapshot_id": ts, "coin_count": len(api.tickers),
                   "market_cap_usd": api.global_data["market_cap_usd"]}  # fmt: skip
        store.commit(Commit(ts, ts, data, len(api.tickers), {}, summary))
        rows += len(api.tickers)
    return rows


# --- child processes ----------------------------------------------------------------------

# Peak RSS from VmHWM: getrusage's ru_maxrss survives exec and would count the parent's.
# The clock starts after the imports (DuckDB is imported inside the step, and counted).
CHILD = """
import json, sys, time
from pathlib import Path
{imports}
started = time.monotonic()
out = Path(sys.argv[1])
{step}
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({{"result": result, "seconds": time.monotonic() - started,
                  "rss_mb": int(hwm.split()[1]) / 1024}}))
"""
ARCHIVE_CHILD = CHILD.format(
    imports="from mcap.history import HistoryStore",
    step="store = HistoryStore(out)\nstore.archive_closed_days()\nresult = store.archived_pieces",
)
REBUILD_CHILD = CHILD.format(
    imports="from mcap.history import HistoryStore",
    step="result = HistoryStore(out).read_state().snapshot_count",
)
SELECT_ALL_CHILD = CHILD.format(
    imports="import csv, os\nfrom mcap.history import open_picture\n"
    "from mcap.history.query import run_query",
    step="""rows = 0
with open(os.devnull, "w", newline="") as sink, open_picture(out) as picture:
    writer = csv.writer(sink, lineterminator="\\n")  # as 04 --query writes its answer
    batches = run_query(picture, "SELECT * FROM history")
    writer.writerow(next(batches))
    for batch in batches:
        rows += len(batch)
        writer.writerows(batch)
result = rows""",
)


@dataclass(frozen=True)
class ChildRun:
    """What a child process measured of itself."""

    result: Any
    seconds: float
    rss_mb: float


def child_run(code: str, out: Path, clock_iso: str | None = None) -> ChildRun:
    """Run one history step in a fresh process: its result, time and peak RSS."""
    env = dict(os.environ)
    if clock_iso:
        env[CLOCK_OFFSET_ENV] = str(parse_iso(clock_iso) - time.time())
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"child exited {done.returncode}: {tail}")
    # DuckDB draws its progress bar on stdout (even into a pipe), maybe on the same line.
    data = json.loads(done.stdout[done.stdout.rindex('{"result": ') :])
    return ChildRun(data["result"], data["seconds"], data["rss_mb"])


# --- helpers -------------------------------------------------------------------------------


def timed(function: Callable[[], T]) -> tuple[float, T]:
    started = time.monotonic()
    result = function()
    return time.monotonic() - started, result


def repeated(function: Callable[[], T], times: int) -> tuple[list[float], T]:
    """Seconds of each of `times` calls, and the last call's result."""
    seconds: list[float] = []
    result: T
    for _ in range(times):
        took, result = timed(function)
        seconds.append(took)
    return seconds, result


def spread(seconds: list[float], digits: int = 2) -> str:
    """`1.23 s best (1.23–1.40 over 3)`: the best, and the spread of the repeats."""
    best, worst = min(seconds), max(seconds)
    if len(seconds) == 1:
        return f"{best:.{digits}f} s (1 run)"
    return f"{best:.{digits}f} s best ({best:.{digits}f}–{worst:.{digits}f} over {len(seconds)})"


def pieces_text(run: ChildRun) -> str:
    """` (2 pieces)` of an archive run; nothing for a run that only cut the plain head."""
    count = len(run.result)
    return f" ({count} piece{'s' * (count > 1)})" if count else ""


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def copy_history(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


class Figures:
    """Figures in the order measured: name → (value, target). A failed one says why."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str]] = {}

    def add(self, name: str, value: str, target: str = "") -> None:
        self.rows[name] = (value, target)

    def attempt(self, name: str, measure: Callable[[], None]) -> None:
        """Run one measurement; a failure is a figure too (a benchmark always finishes)."""
        try:
            measure()
        except Exception as exc:  # noqa: BLE001 - reported, not raised: exit 0
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.add(name, f"FAILED: {type(exc).__name__}: {text[:160]}")
            log(f"{name} failed:\n{traceback.format_exc()}")

    def print(self, title: str) -> None:
        print(f"\n{title}")
        width = max(map(len, self.rows))
        for name, (value, target) in self.rows.items():
            print(f"  {name:<{width}}  {value}" + (f"  [target: {target}]" if target else ""))


# --- 1. archiving at the three cadences ----------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """One day archived by repeated collector runs."""

    runs: list[ChildRun]
    finished: bool
    pieces: int
    parquet_bytes: int

    @property
    def longest(self) -> ChildRun:
        return max(self.runs, key=lambda run: run.seconds)


def archive_chain(out: Path, day: str, every_min: int) -> Chain:
    """Run the archive step as the cron job would after `day`, until it is all archived and
    the plain head is cut (or MAX_RUNS)."""
    clock = parse_iso(f"{day_after(day)}T00:00:00Z")
    runs: list[ChildRun] = []
    finished = False
    while len(runs) < MAX_RUNS and not finished:
        runs.append(child_run(ARCHIVE_CHILD, out, utc_iso(clock)))
        clock += every_min * 60
        head = HistoryStore(out).read_state()
        finished = head.history_size == 0 and head.archived_bytes == 0
    entries = [e for e in read_manifest(HistoryFiles(out)).entries if e.day == day]
    with open_picture(out) as picture:
        problems = picture.problems(full=True)
        archived = all(picture.in_parquet(record.ts) for record in picture.snapshots)
    if problems or not archived:
        raise RuntimeError(f"the archived day is not whole: {(problems or ['rows left'])[0]}")
    return Chain(runs, finished, len(entries), sum(e.bytes for e in entries))


def cadence_figures(figures: Figures, root: Path, api: FakeCoinPaprika, repeats: int) -> None:
    for every_min in CADENCES_MIN:
        snapshots = 1440 // every_min
        name = f"archive a paid day, every {every_min} min ({snapshots} snapshots)"

        def measure(every_min: int = every_min, name: str = name) -> None:
            built = root / f"cadence-{every_min}" / "built"
            log(f"building a day every {every_min} min through HistoryStore.commit")
            seconds, rows = timed(lambda: build_day(built, CADENCE_DAY, api, every_min))
            chains: list[Chain] = []
            for repeat in range(repeats):
                work = root / f"cadence-{every_min}" / "work"
                copy_history(built, work)
                log(f"archiving it run by run in child processes ({repeat + 1} of {repeats})")
                chains.append(archive_chain(work, CADENCE_DAY, every_min))
            shutil.rmtree(root / f"cadence-{every_min}")
            worst = max(chains, key=lambda c: c.longest.seconds)
            longest = [c.longest.seconds for c in chains]
            rss = max(run.rss_mb for c in chains for run in c.runs)
            runs = "/".join(map(str, sorted({len(c.runs) for c in chains})))
            finished = all(c.finished for c in chains)
            each = " + ".join(f"{run.seconds:.1f} s{pieces_text(run)}" for run in worst.runs)
            figures.add(
                name,
                f"{rows / 1e6:.2f} M rows (built in {seconds:.0f} s): {runs} run(s)"
                + ("" if finished else f" (NOT finished in {MAX_RUNS})")
                + f", slowest chain {each}; longest run {spread(longest, 1)}, its peak RSS "
                f"{worst.longest.rss_mb:.0f} MB; highest peak RSS {rss:.0f} MB; "
                f"{worst.pieces} piece(s), {worst.parquet_bytes / rows:.1f} B/row "
                f"[{mark(finished and max(longest) <= RUN_TARGET_S)} / "
                f"{mark(rss <= RSS_TARGET_MB)}]",
                f"no run over {RUN_TARGET_S:.0f} s, peak RSS ≤ {RSS_TARGET_MB:.0f} MB",
            )

        figures.attempt(name, measure)


# --- 3–4. the month or year ----------------------------------------------------------------


def synthesize_days(out: Path, source_day: str, count: int) -> list[str]:
    """`count` more archived days from the real one: re-dated, each coin on a new walk.

    Returns their snapshots.jsonl lines; their manifest entries are appended here.
    """
    import duckdb

    files = HistoryFiles(out)
    (real,) = [e for e in read_manifest(files).entries if e.day == source_day]
    source = files.archive_file(real.file)
    con = duckdb.connect()
    con.execute("SET memory_limit = '300MB'; SET threads = 2")
    # A pseudo-random integer in [-n, n) from a text, and 7 significant digits like the API.
    con.execute("CREATE MACRO jitter(t, n) AS CAST(hash(t) % (2 * n) AS INTEGER) - n")
    con.execute(
        "CREATE MACRO sig7(x) AS CASE WHEN x = 0 OR x IS NULL THEN x "
        "ELSE round(x, CAST(6 - floor(log10(abs(x))) AS INTEGER)) END"
    )
    with open_picture(out) as picture:
        template = [r for r in picture.snapshots if r.ts.startswith(source_day)]
    manifest_lines, snapshot_lines = [], []
    for k in range(1, count + 1):
        day = day_after(source_day, k)
        target = files.archive_file(piece_name(day, 0))
        walk = f"exp(jitter(id || '{day}', 1000) / 1000.0 * 0.08)"
        con.execute(
            f"""COPY (SELECT ts + INTERVAL {k} DAY AS ts, id, rank,
                     sig7(price_usd * {walk}) AS price_usd,
                     round(market_cap_usd * {walk}) AS market_cap_usd,
                     round(volume_24h_usd * {walk} * (1 + jitter(id || ts, 50) / 1000.0), 3)
                       AS volume_24h_usd,
                     round(percent_change_24h_usd + jitter(ts || id, 100) / 100.0, 2)
                       AS percent_change_24h_usd,
                     circulating_supply, layout, raw, ordd
              FROM read_parquet('{source}') ORDER BY id, ts)
            TO '{target}' ({PARQUET_OPTIONS})"""
        )
        size = target.stat().st_size
        with open(target, "rb") as handle:
            digest, tail = file_sha256(handle), tail_sha256(handle, size)
        # A synthesized day was never plain lines, so the SHA-256 of its source lines is not
        # known: this stand-in is a valid value only. The benchmark never exports or cuts a
        # synthesized day (the export figure prints the real first day, whose entry is real),
        # and source "synthetic" keeps it out of the plain head's cut.
        stand_in = hashlib.sha256(f"synthetic {day}".encode()).hexdigest()
        entry = ArchiveEntry(
            day, 0, target.name, day + template[0].ts[10:], day + template[-1].ts[10:],
            real.rows, real.snapshots, real.raw_rows, size, digest, tail, stand_in, None,
            "synthetic", utc_iso(),
        )  # fmt: skip
        manifest_lines.append(dumps(ArchiveEntry.parse(entry.to_json()).to_json()))
        for record in template:
            ts = day + record.ts[10:]
            line = {"ts": ts, "snapshot_id": ts, "coin_count": record.coin_count,
                    "market_cap_usd": record.market_cap_usd}  # fmt: skip
            snapshot_lines.append(dumps(line))
        if k % 30 == 0:
            log(f"synthesized {k} of {count} days")
    con.close()
    with open(files.manifest, "a") as handle:
        handle.write("".join(line + "\n" for line in manifest_lines))
    return snapshot_lines


def list_snapshots(out: Path, lines: list[str]) -> int:
    """Synthetic days go before the real open day in snapshots.jsonl: rewrite it in ts order
    and commit its new size in the head. Returns the snapshot count."""
    files = HistoryFiles(out)
    entries = [json.loads(x) for x in files.snapshots.read_bytes().splitlines()]
    entries += [json.loads(x) for x in lines]
    entries.sort(key=lambda e: e["ts"])
    body = "".join(dumps(e) + "\n" for e in entries).encode()
    files.snapshots.write_bytes(body)
    head = HistoryStore(out).read_state()
    save_state(files, head.replace(snapshots_size=len(body), snapshot_count=len(entries)))
    return len(entries)


def query_rows(out: Path, sql: str) -> int:
    """One --query as the collector runs it: a picture, checked, the answer streamed."""
    with open_picture(out) as picture:
        return sum(len(batch) for batch in islice(run_query(picture, sql), 1, None))


def export_day(out: Path, day: str) -> int:
    with open_picture(out) as picture:
        return sum(chunk.count(b"\n") for chunk in export_lines(picture, TimeRange.parse(day)))


@dataclass(frozen=True)
class CheckCosts:
    open_s: float
    identity_s: float
    rest_s: float
    full_s: float
    files: int


def check_costs(out: Path) -> CheckCosts:
    """--query's checks against a full SHA-256 of every archive, on one picture."""
    started = time.monotonic()
    with open_picture(out) as picture:
        opened = time.monotonic()
        picture.require_trustworthy()  # sizes, footers, pieces against snapshots.jsonl
        identity = time.monotonic()
        for _ in run_query(picture, "SELECT 1 AS one"):  # the identity again, plain counts
            pass
        queried = time.monotonic()
        problems = picture.problems(full=True)
        full = time.monotonic()
        if problems:
            raise RuntimeError(problems[0])
        return CheckCosts(
            opened - started, identity - opened, (queried - identity) - (identity - opened),
            full - queried, len(picture.manifest.entries),
        )  # fmt: skip


def status_run(out: Path, clock_iso: str) -> tuple[int, str]:
    """04 --status as a monitoring probe runs it, at `clock_iso`: exit code, health line."""
    env = dict(os.environ, **{CLOCK_OFFSET_ENV: str(parse_iso(clock_iso) - time.time())})
    done = subprocess.run(
        [sys.executable, str(ROOT / "04_production_collector.py"), "--out-dir", str(out),
         "--status"],
        capture_output=True, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("Health:")]
    return done.returncode, (lines or [done.stderr.strip()[-160:]])[-1]


SKIP_SELECT_ALL = False  # --no-select-all


def scale_figures(
    figures: Figures, root: Path, api: FakeCoinPaprika, days: int, repeats: int
) -> None:
    built, out = root / "month-built", root / "data"
    log("building one paid day through HistoryStore.commit (48 × 12,000 rows)")
    seconds, rows = timed(lambda: build_day(built, DAY0, api))
    plain_bytes = (built / "history" / "market_cap_history.jsonl").stat().st_size
    figures.add(
        "plain JSONL, bytes per row",
        f"{plain_bytes / rows:.1f} B ({rows:,} rows, built in {seconds:.0f} s)",
    )
    # The open day (stays plain) comes after the days synthesized below.
    open_day = day_after(DAY0, days)
    open_rows = build_day(built, open_day, api)
    runs: list[ChildRun] = []
    for repeat in range(repeats):
        log(f"archiving the closed day in a child process ({repeat + 1} of {repeats})")
        copy_history(built, out)
        runs.append(child_run(ARCHIVE_CHILD, out, f"{open_day}T23:59:00Z"))
    shutil.rmtree(built)
    files = HistoryFiles(out)
    (real,) = read_manifest(files).entries
    if real.day != DAY0 or HistoryStore(out).read_state().archived_bytes:
        raise RuntimeError(f"the archive step left {real.file} and the plain head uncut")
    rss = max(run.rss_mb for run in runs)
    slowest = max(run.seconds for run in runs)
    figures.add(
        "archive step, one paid day (next day plain)",
        f"{spread([r.seconds for r in runs], 1)}, peak RSS {rss:.0f} MB (convert in DuckDB, "
        f"print back, compare SHA-256, switch, cut) [{mark(slowest <= RUN_TARGET_S)}"
        f" / {mark(rss <= RSS_TARGET_MB)}]",
        f"≤ {RUN_TARGET_S:.0f} s, ≤ {RSS_TARGET_MB:.0f} MB",
    )
    figures.add("Parquet, bytes per row (one day)", f"{real.bytes / rows:.1f} B")
    # The open day and the archived day are real; the rest is synthesized from the archive.
    log(f"synthesizing {days - 1} more archived days")
    seconds, lines = timed(lambda: synthesize_days(out, DAY0, days - 1))
    snapshot_count = list_snapshots(out, lines)
    total_rows = rows * days + open_rows
    archive_bytes = sum(e.bytes for e in read_manifest(files).entries)
    figures.add(
        f"{days} archived days, bytes per row",
        f"{archive_bytes / (rows * days):.1f} B ({archive_bytes / 1e9:.2f} GB, "
        f"synthesized in {seconds:.0f} s; {snapshot_count:,} snapshots)",
    )
    with open_picture(out) as picture:
        problems = picture.problems(full=True)
    if problems:
        raise RuntimeError(f"the synthesized history is not trustworthy: {problems[0]}")
    size = f"{total_rows / 1e6:.0f} M rows"

    for name, sql in QUERIES.items():

        def query(name: str = name, sql: str = sql) -> None:
            first, _ = timed(lambda: query_rows(out, sql))
            seconds, _ = repeated(lambda: query_rows(out, sql), 3)
            figures.add(f"query: {name} ({size})", f"{first:.2f} s first, {spread(seconds)}")

        figures.attempt(f"query: {name} ({size})", query)

    def select_all() -> None:
        log("SELECT * FROM history streamed to /dev/null (child process)")
        # Over a year this takes many minutes: it runs once there.
        times = 1 if total_rows > 50e6 else max(1, repeats - 1)
        alls = [child_run(SELECT_ALL_CHILD, out) for _ in range(times)]
        rss = max(run.rss_mb for run in alls)
        figures.add(
            f"query: SELECT * FROM history ({size}), CSV to /dev/null",
            f"{spread([r.seconds for r in alls], 1)} for {alls[0].result:,} rows "
            f"({alls[0].result / min(r.seconds for r in alls) / 1e6:.2f} M rows/s), peak RSS "
            f"{rss:.0f} MB [{mark(rss <= RSS_TARGET_MB)}]",
            f"peak RSS ≤ {RSS_TARGET_MB:.0f} MB",
        )

    if not SKIP_SELECT_ALL:
        figures.attempt(f"query: SELECT * FROM history ({size}), CSV to /dev/null", select_all)

    def checks() -> None:
        log("what --query's checks cost, against a full SHA-256")
        costs = [check_costs(out) for _ in range(3)]
        identity = [c.open_s + c.identity_s + c.rest_s for c in costs]
        best = min(costs, key=lambda c: c.open_s + c.identity_s + c.rest_s)
        figures.add(
            "--query's checks: identity (size + footer) + plain counts",
            f"{spread(identity)}: open_picture {best.open_s:.3f} s, size + footer of "
            f"{best.files} files and pieces vs snapshots.jsonl {best.identity_s:.3f} s, "
            f"plain counts and the rest ≈ {best.rest_s:.3f} s",
        )
        figures.add(
            "full SHA-256 of every archive (problems(full=True))",
            f"{spread([c.full_s for c in costs])} ({archive_bytes / 1e9:.2f} GB)",
        )

    figures.attempt("--query's checks: identity (size + footer) + plain counts", checks)

    def export() -> None:
        log("--export-history of the first (real) archived day")
        seconds, lines = repeated(lambda: export_day(out, DAY0), max(1, repeats - 1))
        figures.add(
            "--export-history, one archived day",
            f"{spread(seconds, 1)} for {lines:,} lines (a month ≈ "
            f"{min(seconds) * 30 / 60:.1f} min, extrapolated: for all-time questions use "
            "--query)",
        )

    figures.attempt("--export-history, one archived day", export)

    def check() -> None:
        log("--check-history")
        seconds, report = repeated(lambda: check_history(out, 30), repeats)
        verdict = "OK" if report.ok else f"PROBLEMS: {report.problems[:2]}"
        figures.add("--check-history", f"{spread(seconds, 1)}, {verdict}")

    figures.attempt("--check-history", check)

    def status() -> None:
        log("04 --status (subprocess)")
        at = f"{open_day}T23:59:00Z"  # the clock just after the last snapshot
        seconds, (code, health) = repeated(lambda: status_run(out, at), repeats)
        figures.add(
            "04 --status (whole process, full SHA-256)",
            f"{spread(seconds, 1)}, exit {code}: {health[:90]}",
        )

    figures.attempt("04 --status (whole process, full SHA-256)", status)

    def rebuild() -> None:
        log("rebuilding a lost state (child process)")
        files.state.unlink()
        rebuilt = [child_run(REBUILD_CHILD, out) for _ in range(repeats)]
        if rebuilt[0].result != snapshot_count:
            raise RuntimeError(f"rebuilt {rebuilt[0].result} snapshots of {snapshot_count}")
        figures.add(
            "rebuilding a lost state (1 plain day)",
            f"{spread([r.seconds for r in rebuilt], 1)}, peak RSS "
            f"{max(r.rss_mb for r in rebuilt):.0f} MB (child process)",
        )

    figures.attempt("rebuilding a lost state (1 plain day)", rebuild)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--year", action="store_true", help="365 days instead of 30")
    parser.add_argument("--days", type=int, help="this many days (a quick try: --days 3)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the slow figures")
    parser.add_argument("--no-cadences", action="store_true", help="skip the cadence figures")
    parser.add_argument("--keep", metavar="DIR", help="build in DIR and keep it")
    parser.add_argument(
        "--no-select-all", action="store_true", help="skip SELECT * (17 min over a year)"
    )
    args = parser.parse_args(argv)
    global SKIP_SELECT_ALL
    SKIP_SELECT_ALL = args.no_select_all
    days = args.days or (365 if args.year else 30)
    repeats = max(1, args.repeats)
    root = Path(args.keep or tempfile.mkdtemp(prefix="mcap-history-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    api = FakeCoinPaprika(n_tickers=12_000, n_coins=10, plan="paid")
    figures = Figures()
    started = time.monotonic()
    if not args.no_cadences:
        cadence_figures(figures, root, api, max(1, repeats - 1))
    figures.attempt(
        f"{days} days of history", lambda: scale_figures(figures, root, api, days, repeats)
    )
    import duckdb

    figures.print(
        f"mcap-collector history benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} "
        f"cores, CPython {sys.version.split()[0]}, DuckDB {duckdb.__version__}; {days} days; "
        f"{time.monotonic() - started:.0f} s in all"
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
