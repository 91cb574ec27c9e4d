"""Benchmark the collector against the local fake CoinPaprika API (127.0.0.1 only).

    uv run python -m benchmarks [--runs 5] [--tickers 12000] [--coins 60000] [--json PATH]

Figures (each with its target):

1. 02 snapshot: the real ``02_fetch_all_market_caps.py`` as a subprocess, paid plan. Before each
   run the fake API advances 300 s (so the data changed) and its response body cache is warmed
   with one request of our own, so the child is timed, not the fake server building JSON.
   Wall time (spawn to reap), requests per snapshot, the child's peak RSS and bytes written.
2. Floor for 02: ``benchmarks/floor.py snapshot`` (GET /tickers + /global, json.loads, one
   JSON file), run the same way; ratio 02 / floor. Real and floor runs alternate in order.
3. 01 coin list: the real ``01_fetch_all_coins_list.py`` vs ``floor.py coins``.
4. History bytes per row, raw and gzip -6, from the 02 runs' market_cap_history.jsonl.
5. HistoryStore.commit (in-process, fsyncs included) with 1 vs 2,000 snapshots stored. The
   2,000-snapshot store is built with the real HistoryStore.commit (about 10 s here); only if
   that takes over 60 s is the rest appended directly with a matching state. Timed commits are
   interleaved pairs: commit #2 of a fresh store, then the next commit of the big store.

Each child runs under a tiny launcher that spawns it and reaps it with os.wait4 (see LAUNCHER
for why), after an os.sync(). One untimed warm-up run precedes each timed series. Progress goes
to stderr, the table to stdout. Exit code is always 0: this reports, it does not test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcap.formats import history_bytes
from mcap.history import Commit, HistoryStore
from mcap.history.state import RECENT_IDS_KEPT, save_state
from tests.fake_api import FakeCoinPaprika

ROOT = Path(__file__).resolve().parent.parent
SCRIPT_02 = ROOT / "02_fetch_all_market_caps.py"
SCRIPT_01 = ROOT / "01_fetch_all_coins_list.py"
FLOOR = Path(__file__).resolve().parent / "floor.py"
API_KEY = "benchmark-key"
SNAPSHOT_FILES = (
    "market_cap_snapshot.json",
    "market_cap_snapshot.jsonl",
    "market_cap_snapshot.csv",
)
HISTORY_ROWS = Path("history") / "market_cap_history.jsonl"
HISTORY_SNAPSHOTS = Path("history") / "snapshots.jsonl"
MB = 1_000_000

# Targets
RATIO_TARGET = 3.0
REQUESTS_TARGET = 2
RSS_TARGET_MB = 250
RAW_ROW_TARGET = 250
GZ_ROW_TARGET = 70
APPEND_RATIO_TARGET = 1.2

# Append benchmark
APPEND_COINS = 2_000
APPEND_STORED = 2_000
APPEND_BUILD_BUDGET_S = 60.0
APPEND_MIN_SAMPLES = 15
TS_START = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
TS_STEP = dt.timedelta(minutes=30)
TS_PLACEHOLDER = "0000-00-00T00:00:00Z"
QUOTES = ("USD",)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- subprocesses -----------------------------------------------------------------------------


@dataclass
class ChildRun:
    wall_s: float
    rss_bytes: int
    returncode: int
    stderr_tail: str


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COINPAPRIKA_")}
    env.pop("COLLECTOR_CRASH_AT", None)
    env["COINPAPRIKA_API_KEY"] = API_KEY  # an API key makes the collector use the paid plan
    return env


# Linux keeps the larger of a child's own peak RSS and the RSS of the process it was forked
# from at exec time, so a child spawned straight from this process (which holds the fake API's
# data, ~120 MB) would report at least that. A small launcher process spawns and reaps
# (os.wait4) the measured child instead, and times it. The launcher itself is ~10 MB, less than
# any measured Python child.
LAUNCHER = """\
import json, os, sys, time
result, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(result, "w") as handle:
    json.dump({"wall_s": wall, "maxrss": usage.ru_maxrss, "status": status}, handle)
"""


def run_child(argv: list[str], env: dict[str, str], tmp: Path) -> ChildRun:
    """Run argv (from ROOT) via the launcher; wall time spawn-to-reap and the child's peak RSS."""
    result = tmp / "child-result.json"
    result.unlink(missing_ok=True)
    os.sync()  # earlier runs' dirty pages must not be flushed by this run's fsyncs
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        launcher = [sys.executable, "-c", LAUNCHER, str(result), *argv]
        launcher_rc = subprocess.run(launcher, cwd=ROOT, env=env, stdout=out, stderr=err).returncode
        err.seek(0)
        tail = err.read()[-2000:].decode("utf-8", "replace")
    if launcher_rc != 0 or not result.exists():
        raise RuntimeError(f"benchmark launcher failed ({launcher_rc}): {tail}")
    data = json.loads(result.read_text())
    returncode = os.waitstatus_to_exitcode(data["status"])
    rss = data["maxrss"] * (1 if sys.platform == "darwin" else 1024)
    if returncode != 0:
        log(f"  ! {Path(argv[1]).name} exited {returncode}: {tail.strip()[-800:]}")
    return ChildRun(data["wall_s"], rss, returncode, tail)


def warm(url: str) -> None:
    """One request of our own so the fake server's body (and its gzip) is built and cached."""
    request = urllib.request.Request(
        url, headers={"Accept-Encoding": "gzip, deflate", "Authorization": API_KEY}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def dir_bytes(path: Path) -> int:
    if not path.is_dir():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def count_new_lines(path: Path, offset: int) -> int:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read().count(b"\n")


# --- report -----------------------------------------------------------------------------------


@dataclass
class Report:
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def row(self, label: str, text: str, ok: bool | None) -> None:
        status = "info" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append((label, text, status))

    def render(self) -> str:
        width = max(len(text) for _, text, _ in self.rows)
        return "\n".join(
            f"{label:<30} {text:<{width}}  {status}" for label, text, status in self.rows
        )


def fmt_s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# --- 1 + 2: 02 snapshot vs floor ---------------------------------------------------------------


def bench_snapshot(server: FakeCoinPaprika, tmp: Path, runs: int, report: Report) -> Path:
    env = child_env()
    out = tmp / "out-02"
    floor_out = tmp / "floor-snapshot.json"
    argv_02 = [sys.executable, str(SCRIPT_02), "--base-url", server.url, "--out-dir", str(out)]
    argv_02.append("--quiet")
    argv_floor = [sys.executable, str(FLOOR), "snapshot", server.url, str(floor_out)]
    tickers_url = f"{server.url}/tickers"

    log(f"02 snapshot: warm-up + {runs} runs, floor alternating …")
    server.advance(300)
    warm(tickers_url)
    run_child(argv_02, env, tmp)
    run_child(argv_floor, env, tmp)

    real: list[ChildRun] = []
    floor: list[ChildRun] = []
    requests: list[int] = []
    floor_requests: list[int] = []
    written: list[int] = []
    snapshot_bytes: list[int] = []
    history_appended: list[int] = []
    rows_appended: list[int] = []

    def one_real() -> None:
        rows_before = size(out / HISTORY_ROWS)
        snaps_before = size(out / HISTORY_SNAPSHOTS)
        count_before = server.count()
        result = run_child(argv_02, env, tmp)
        real.append(result)
        requests.append(server.count() - count_before)
        files = sum(size(out / name) for name in SNAPSHOT_FILES)
        appended = size(out / HISTORY_ROWS) - rows_before
        appended += size(out / HISTORY_SNAPSHOTS) - snaps_before
        snapshot_bytes.append(files)
        history_appended.append(appended)
        written.append(files + appended)
        rows_appended.append(count_new_lines(out / HISTORY_ROWS, rows_before))

    def one_floor() -> None:
        count_before = server.count()
        floor.append(run_child(argv_floor, env, tmp))
        floor_requests.append(server.count() - count_before)

    for i in range(runs):
        server.advance(300)  # new last_updated everywhere: the collector must not skip
        warm(tickers_url)
        for step in (one_real, one_floor) if i % 2 == 0 else (one_floor, one_real):
            step()
        log(f"  run {i + 1}/{runs}: 02 {real[-1].wall_s:.2f} s, floor {floor[-1].wall_s:.2f} s")

    real_med = statistics.median(r.wall_s for r in real)
    real_min = min(r.wall_s for r in real)
    floor_med = statistics.median(r.wall_s for r in floor)
    ratio = real_med / floor_med
    rss = [r.rss_bytes for r in real]
    floor_rss = statistics.median(r.rss_bytes for r in floor)
    n = len(server.tickers)
    ok_codes = all(r.returncode == 0 for r in real) and all(r.returncode == 0 for r in floor)

    report.row(
        f"02 snapshot ({n:,} coins)",
        f"median {fmt_s(real_med)}  min {fmt_s(real_min)}  floor {fmt_s(floor_med)}  "
        f"ratio {ratio:.2f}x (target <= {RATIO_TARGET:g}x)",
        ratio <= RATIO_TARGET,
    )
    report.row(
        "02 exit codes",
        f"{sorted({r.returncode for r in real})} (floor {sorted({r.returncode for r in floor})})"
        " (target 0)",
        ok_codes,
    )
    report.row(
        "requests per snapshot",
        f"{'/'.join(str(c) for c in sorted(set(requests)))} (target {REQUESTS_TARGET})",
        all(c == REQUESTS_TARGET for c in requests),
    )
    report.row(
        "rows appended per snapshot",
        f"{'/'.join(f'{c:,}' for c in sorted(set(rows_appended)))} (target {n:,})",
        all(c == n for c in rows_appended),
    )
    report.row(
        "peak RSS (02)",
        f"median {statistics.median(rss) / MB:.0f} MB  max {max(rss) / MB:.0f} MB  "
        f"(floor {floor_rss / MB:.0f} MB) (target <= {RSS_TARGET_MB} MB)",
        max(rss) <= RSS_TARGET_MB * MB,
    )
    report.row(
        "bytes written per snapshot",
        f"{statistics.median(written) / MB:.1f} MB = snapshot files "
        f"{statistics.median(snapshot_bytes) / MB:.1f} MB + history "
        f"{statistics.median(history_appended) / MB:.2f} MB",
        None,
    )
    report.figures["snapshot_02"] = {
        "coins": n,
        "runs": runs,
        "wall_s": [r.wall_s for r in real],
        "median_s": real_med,
        "min_s": real_min,
        "floor_wall_s": [r.wall_s for r in floor],
        "floor_median_s": floor_med,
        "ratio": ratio,
        "ratio_of_mins": min(r.wall_s for r in real) / min(r.wall_s for r in floor),
        "returncodes": [r.returncode for r in real],
        "floor_returncodes": [r.returncode for r in floor],
        "requests_per_run": requests,
        "floor_requests_per_run": floor_requests,
        "rows_appended_per_run": rows_appended,
        "peak_rss_bytes": rss,
        "floor_peak_rss_bytes": [r.rss_bytes for r in floor],
        "bytes_written_per_run": written,
        "snapshot_file_bytes_per_run": snapshot_bytes,
        "history_appended_bytes_per_run": history_appended,
        "floor_file_bytes": size(floor_out),
    }
    return out


# --- 3: 01 coin list vs floor -----------------------------------------------------------------


def bench_coins(server: FakeCoinPaprika, tmp: Path, runs: int, report: Report) -> None:
    env = child_env()
    out = tmp / "out-01"
    floor_out = tmp / "floor-coins.json"
    argv_01 = [sys.executable, str(SCRIPT_01), "--base-url", server.url, "--out-dir", str(out)]
    argv_01.append("--quiet")
    argv_floor = [sys.executable, str(FLOOR), "coins", server.url, str(floor_out)]

    log(f"01 coin list: warm-up + {runs} runs, floor alternating …")
    warm(f"{server.url}/coins")
    run_child(argv_01, env, tmp)
    run_child(argv_floor, env, tmp)
    real: list[ChildRun] = []
    floor: list[ChildRun] = []
    requests: list[int] = []
    for i in range(runs):
        for kind in ("real", "floor") if i % 2 == 0 else ("floor", "real"):
            if kind == "real":
                before = server.count()
                real.append(run_child(argv_01, env, tmp))
                requests.append(server.count() - before)
            else:
                floor.append(run_child(argv_floor, env, tmp))
        log(f"  run {i + 1}/{runs}: 01 {real[-1].wall_s:.2f} s, floor {floor[-1].wall_s:.2f} s")

    real_med = statistics.median(r.wall_s for r in real)
    floor_med = statistics.median(r.wall_s for r in floor)
    ratio = real_med / floor_med
    n = len(server.coins)
    report.row(
        f"01 coin list ({n:,} coins)",
        f"median {fmt_s(real_med)}  min {fmt_s(min(r.wall_s for r in real))}  "
        f"floor {fmt_s(floor_med)}  ratio {ratio:.2f}x (target <= {RATIO_TARGET:g}x)",
        ratio <= RATIO_TARGET,
    )
    codes = sorted({r.returncode for r in real + floor})
    report.row(
        "01 exit codes / requests",
        f"exit {codes}, requests per run {'/'.join(str(c) for c in sorted(set(requests)))}"
        " (target 0 / 1)",
        codes == [0] and all(c == 1 for c in requests),
    )
    rss = [r.rss_bytes for r in real]
    report.row("peak RSS (01)", f"median {statistics.median(rss) / MB:.0f} MB", None)
    report.figures["coins_01"] = {
        "coins": n,
        "runs": runs,
        "wall_s": [r.wall_s for r in real],
        "median_s": real_med,
        "floor_wall_s": [r.wall_s for r in floor],
        "floor_median_s": floor_med,
        "ratio": ratio,
        "ratio_of_mins": min(r.wall_s for r in real) / min(r.wall_s for r in floor),
        "returncodes": [r.returncode for r in real],
        "floor_returncodes": [r.returncode for r in floor],
        "requests_per_run": requests,
        "peak_rss_bytes": rss,
    }


# --- 4: history bytes per row -----------------------------------------------------------------


def bench_history_bytes(out_02: Path, report: Report) -> None:
    data = (out_02 / HISTORY_ROWS).read_bytes()
    rows = data.count(b"\n")
    if not rows:
        report.row("history bytes per row", "no history rows written by 02", False)
        return
    packed = len(gzip.compress(data, compresslevel=6))
    raw_per_row, gz_per_row = len(data) / rows, packed / rows
    report.row(
        "history bytes per row",
        f"raw {raw_per_row:.0f} B (target <= {RAW_ROW_TARGET})  over {rows:,} rows",
        raw_per_row <= RAW_ROW_TARGET,
    )
    report.row(
        "history bytes per row, gzip -6",
        f"{gz_per_row:.1f} B (target <= {GZ_ROW_TARGET})  ratio {len(data) / packed:.1f}:1",
        gz_per_row <= GZ_ROW_TARGET,
    )
    report.figures["history_bytes"] = {
        "rows": rows,
        "raw_bytes": len(data),
        "gzip6_bytes": packed,
        "raw_per_row": raw_per_row,
        "gzip6_per_row": gz_per_row,
    }


# --- 5: append time with 1 vs 2,000 snapshots stored ------------------------------------------


def ts_at(index: int) -> str:
    return (TS_START + index * TS_STEP).strftime("%Y-%m-%dT%H:%M:%SZ")


class CommitFactory:
    """Commits like the collector's: rows from history_bytes, a summary line, last_updated."""

    def __init__(self, coins: list[dict[str, Any]]) -> None:
        self.coins = coins
        self.template = history_bytes(coins, TS_PLACEHOLDER, QUOTES)
        self.last_updated = {coin["id"]: coin.get("last_updated") for coin in coins}
        probe = ts_at(1)
        assert self.rows(probe) == history_bytes(coins, probe, QUOTES)

    def rows(self, ts: str) -> bytes:
        return self.template.replace(TS_PLACEHOLDER.encode(), ts.encode())

    def __call__(self, index: int) -> Commit:
        ts = ts_at(index)
        snapshot_id = ts.replace("-", "").replace(":", "")
        summary = {
            "ts": ts,
            "snapshot_id": snapshot_id,
            "coin_count": len(self.coins),
            "expected_count": len(self.coins),
            "market_cap_usd": 2_500_000_000_000,
            "requests": 2,
            "retries": 0,
            "appeared": 0,
            "disappeared": 0,
            "appeared_ids": [],
            "disappeared_ids": [],
            "changed": len(self.coins),
            "data_changed": True,
            "duplicates_dropped": 0,
            "previous_ts": ts_at(index - 1) if index else None,
            "quotes": list(QUOTES),
            "plan": "paid",
            "script": "benchmark",
        }
        return Commit(ts, snapshot_id, self.rows(ts), len(self.coins), self.last_updated, summary)


def fill_directly(store: HistoryStore, make: CommitFactory, start: int, stop: int) -> None:
    """Append commits [start, stop) straight to the files, then write the matching state."""
    head = store.repair(store.read_state())
    recent = list(head.recent_snapshot_ids)
    with open(store.files.rows, "ab") as rows, open(store.files.snapshots, "ab") as snaps:
        for index in range(start, stop):
            commit = make(index)
            line = (json.dumps(commit.summary, separators=(",", ":")) + "\n").encode()
            rows.write(commit.rows)
            snaps.write(line)
            recent.append(commit.snapshot_id)
            head = head.replace(
                history_size=head.history_size + len(commit.rows),
                snapshots_size=head.snapshots_size + len(line),
                snapshot_count=head.snapshot_count + 1,
                last_ts=commit.ts,
                last_snapshot_id=commit.snapshot_id,
                last_coin_count=commit.row_count,
                last_updated=commit.last_updated,
            )
        for handle in (rows, snaps):
            handle.flush()
            os.fsync(handle.fileno())
    head = head.replace(recent_snapshot_ids=tuple(recent[-RECENT_IDS_KEPT:]))
    save_state(store.files, head)  # the store's own state writer (atomic replace + fsync)


def time_commits(store: HistoryStore, make: CommitFactory, first: int, samples: int) -> list[float]:
    times = []
    for index in range(first, first + samples):
        commit = make(index)
        start = time.perf_counter()
        committed = store.commit(commit)
        times.append(time.perf_counter() - start)
        if not committed:
            raise RuntimeError(f"commit {index} was refused as already committed")
    return times


def bench_append(coins: list[dict[str, Any]], tmp: Path, samples: int, report: Report) -> None:
    make = CommitFactory(coins)
    log(f"append: building a store of {APPEND_STORED:,} snapshots × {len(coins):,} rows …")
    store = HistoryStore(tmp / "append-2000")
    build_start = time.perf_counter()
    via_commit = 0
    while via_commit < APPEND_STORED:
        if time.perf_counter() - build_start > APPEND_BUILD_BUDGET_S:
            break
        store.commit(make(via_commit))
        via_commit += 1
    if via_commit < APPEND_STORED:
        log(f"  {via_commit} real commits in {APPEND_BUILD_BUDGET_S:g} s; appending the rest")
        fill_directly(store, make, via_commit, APPEND_STORED)
    build_s = time.perf_counter() - build_start
    state = store.read_state()
    history_size = size(store.files.rows)
    assert state.snapshot_count == APPEND_STORED, state.snapshot_count
    assert state.history_size == history_size
    os.sync()  # the build's dirty pages must not be flushed during the timed fsyncs
    log(f"  built in {build_s:.1f} s ({history_size / MB:.0f} MB); {samples} timed pairs …")
    # Interleaved so drift (writeback, cache state) hits both sides alike: each pair times
    # commit #2 of a fresh store (1 snapshot stored) and the next commit of the big store.
    one: list[float] = []
    many: list[float] = []
    for sample in range(samples):
        small = HistoryStore(tmp / f"append-1-{sample}")
        small.commit(make(0))
        one.extend(time_commits(small, make, 1, 1))
        many.extend(time_commits(store, make, APPEND_STORED + sample, 1))

    one_med, many_med = statistics.median(one), statistics.median(many)
    ratio = many_med / one_med
    how = (
        f"all {APPEND_STORED:,} via HistoryStore.commit"
        if via_commit == APPEND_STORED
        else f"{via_commit:,} via HistoryStore.commit, {APPEND_STORED - via_commit:,} appended "
        "directly + state via the store's writer"
    )
    report.row(
        "append, 1 snapshot stored",
        f"median {fmt_ms(one_med)}  min {fmt_ms(min(one))}  ({samples} commits of "
        f"{len(coins):,} rows, {len(make.template) / MB:.2f} MB each)",
        None,
    )
    report.row(
        f"append, {APPEND_STORED:,}+ stored",
        f"median {fmt_ms(many_med)}  min {fmt_ms(min(many))}  ratio {ratio:.2f}x "
        f"(target <= {APPEND_RATIO_TARGET:g}x)",
        ratio <= APPEND_RATIO_TARGET,
    )
    report.row(
        "  store built",
        f"{history_size / MB:.0f} MB history in {build_s:.1f} s: {how}",
        None,
    )
    report.figures["append"] = {
        "coins_per_snapshot": len(coins),
        "rows_bytes_per_commit": len(make.template),
        "samples": samples,
        "one_stored_s": one,
        "one_stored_median_s": one_med,
        "stored": APPEND_STORED,
        "many_stored_s": many,
        "many_stored_median_s": many_med,
        "ratio": ratio,
        "build_s": build_s,
        "build_via_commit": via_commit,
        "build_direct_append": APPEND_STORED - via_commit,
        "history_bytes": history_size,
    }


# --- main -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per script (default 5)")
    parser.add_argument("--tickers", type=int, default=12_000, help="coins in /tickers")
    parser.add_argument("--coins", type=int, default=60_000, help="coins in /coins")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.tickers < APPEND_COINS:
        parser.error(f"--tickers must be at least {APPEND_COINS} (the append benchmark uses them)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    report = Report()
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="mcap-bench-", dir="/tmp"))
    server = FakeCoinPaprika(
        n_tickers=args.tickers, n_coins=args.coins, plan="paid", api_key=API_KEY
    )
    try:
        server.start()
        log(f"fake API at {server.url}; work dir {tmp}")
        out_02 = bench_snapshot(server, tmp, args.runs, report)
        bench_coins(server, tmp, args.runs, report)
        bench_history_bytes(out_02, report)
        coins = list(server.tickers[:APPEND_COINS])
        server.stop()
        shutil.rmtree(tmp / "out-01", ignore_errors=True)
        bench_append(coins, tmp, max(args.runs, APPEND_MIN_SAMPLES), report)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - started

    print(f"mcap-collector benchmarks  {info['date']}")
    print(
        f"machine: {info['cpus']} CPUs ({info['usable_cpus']} usable), {info['machine']}, "
        f"{info['implementation']} {info['python']}, {info['platform']}"
    )
    print(
        f"settings: runs={args.runs}, tickers={args.tickers:,}, coins={args.coins:,}, "
        f"fake API on 127.0.0.1 (paid plan); total {total:.0f} s"
    )
    print()
    print(report.render())
    failed = sum(1 for _, _, status in report.rows if status == "FAIL")
    passed = sum(1 for _, _, status in report.rows if status == "PASS")
    print()
    print(f"{passed} PASS, {failed} FAIL")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "machine": info,
            "settings": {"runs": args.runs, "tickers": args.tickers, "coins": args.coins},
            "total_s": total,
            "rows": [{"label": a, "figure": b, "status": c} for a, b, c in report.rows],
            "figures": report.figures,
        }
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
