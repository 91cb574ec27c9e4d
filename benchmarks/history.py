"""Benchmark the history at scale: bytes per row, archiving, queries, checking, rebuilding.

    uv run python -m benchmarks.history            # a paid month (about 3 minutes)
    uv run python -m benchmarks.history --year     # a paid year, 210 M rows (about 15 minutes)

1. One paid day built through the project's own code: the fake API's 12,000 coins move by
   their random walk (7 significant digits, int market caps, zeros and nulls as the API
   sends them) 48 times, each snapshot committed with HistoryStore.commit. Plain JSONL
   bytes per row.
2. That day archived by the collector's own step (HistoryStore.archive_closed_days) in a
   child process: wall time and peak RSS; Parquet bytes per row.
3. More days: the archived day's Parquet file re-dated and re-walked in DuckDB (each coin's
   prices, caps and volumes follow a new random walk, so files are as incompressible as
   real ones), listed in the manifest and snapshots.jsonl like real archives.
4. The three documented queries (docs/queries.md) over the month or year plus one plain day,
   each in a fresh process-less DuckDB connection: first run and best of three.
5. --check-history over all of it; rebuilding a lost state; a normal 04 run's archive step.

Figures that are extrapolated say so. It reports; it does not test (exit 0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcap.clock import parse_iso, utc_iso
from mcap.formats import history_bytes
from mcap.history import Commit, HistoryStore, TimeRange, check_history, export_lines
from mcap.history.files import HistoryFiles
from mcap.history.query import run_query
from mcap.jsonio import dumps
from tests.fake_api import FakeCoinPaprika

DAY0 = "2026-01-01"
SNAPSHOTS_PER_DAY = 48
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


def build_day(out: Path, day: str, api: FakeCoinPaprika) -> int:
    """48 real commits of the fake's 12,000 coins (paid plan: with circulating_supply)."""
    store = HistoryStore(out)
    start = parse_iso(f"{day}T00:00:00Z")
    rows = 0
    for index in range(SNAPSHOTS_PER_DAY):
        api.advance(1800)
        ts = utc_iso(start + index * 1800)
        data = history_bytes(api.tickers, ts, ("USD",))
        summary = {"ts": ts, "snapshot_id": ts, "coin_count": len(api.tickers),
                   "market_cap_usd": api.global_data["market_cap_usd"]}  # fmt: skip
        store.commit(Commit(ts, ts, data, len(api.tickers), {}, summary))
        rows += len(api.tickers)
    return rows


# Peak RSS from VmHWM: getrusage's ru_maxrss survives exec and would count the parent's.
CHILD = """
import json, sys, time
from pathlib import Path
from mcap.history import HistoryStore
started = time.monotonic()
store = HistoryStore(Path(sys.argv[1]))
result = {step}
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({{"result": result, "seconds": time.monotonic() - started,
                  "rss_mb": int(hwm.split()[1]) / 1024}}))
"""
ARCHIVE_CHILD = CHILD.format(step="store.archive_closed_days()")
REBUILD_CHILD = CHILD.format(step="store.read_state()['snapshot_count']")


def child_figures(code: str, out: Path, clock_iso: str | None = None) -> dict:
    """Run one history step in a fresh process: its result, time and peak RSS."""
    env = dict(os.environ)
    if clock_iso:
        env["COLLECTOR_CLOCK_OFFSET_S"] = str(parse_iso(clock_iso) - time.time())
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        capture_output=True, text=True, env=env, check=True, cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def synthesize_days(out: Path, source_day: str, count: int) -> list[str]:
    """`count` more archived days from the real one: re-dated, each coin on a new walk."""
    import duckdb

    files = HistoryFiles(out)
    source = files.day_archive(source_day)
    con = duckdb.connect()
    con.execute("SET memory_limit = '300MB'; SET threads = 2")
    # A pseudo-random integer in [-n, n) from a text, and 7 significant digits like the API.
    con.execute("CREATE MACRO jitter(t, n) AS CAST(hash(t) % (2 * n) AS INTEGER) - n")
    con.execute(
        "CREATE MACRO sig7(x) AS CASE WHEN x = 0 OR x IS NULL THEN x "
        "ELSE round(x, CAST(6 - floor(log10(abs(x))) AS INTEGER)) END"
    )
    snapshots = HistoryStore(out).snapshot_entries()
    template = [e for e in snapshots if e["ts"].startswith(source_day)]
    manifest_lines, snapshot_lines = [], []
    for k in range(1, count + 1):
        day = time.strftime(
            "%Y-%m-%d", time.gmtime(parse_iso(f"{source_day}T00:00:00Z") + k * 86400)
        )
        target = files.day_archive(day)
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
            TO '{target}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 9)"""
        )
        rows = sum(e["coin_count"] for e in template)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        manifest_lines.append(dumps({"day": day, "file": target.name, "rows": rows,
                                     "snapshots": len(template), "raw_rows": 0,
                                     "bytes": target.stat().st_size, "file_sha256": digest,
                                     "source_sha256": None, "source": "synthetic"}))  # fmt: skip
        for entry in template:
            ts = day + entry["ts"][10:]
            line = {"ts": ts, "snapshot_id": ts, "coin_count": entry["coin_count"],
                    "market_cap_usd": entry.get("market_cap_usd")}  # fmt: skip
            snapshot_lines.append(dumps(line))
        if k % 30 == 0:
            log(f"synthesized {k} of {count} days")
    con.close()
    with open(files.manifest, "a") as handle:
        handle.write("".join(line + "\n" for line in manifest_lines))
    return snapshot_lines


def timed(function, *args):  # noqa: ANN001, ANN202 - a small local helper
    started = time.monotonic()
    result = function(*args)
    return time.monotonic() - started, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--year", action="store_true", help="365 days instead of 30")
    parser.add_argument("--keep", metavar="DIR", help="build in DIR and keep it")
    args = parser.parse_args(argv)
    days = 365 if args.year else 30
    root = Path(args.keep or tempfile.mkdtemp(prefix="mcap-history-bench-"))
    out = root / "data"
    out.mkdir(parents=True, exist_ok=True)
    api = FakeCoinPaprika(n_tickers=12_000, n_coins=10, plan="paid")
    figures: dict[str, str] = {}

    log("building one paid day through HistoryStore.commit (48 × 12,000 rows)")
    seconds, rows = timed(build_day, out, DAY0, api)
    plain_bytes = (out / "history" / "market_cap_history.jsonl").stat().st_size
    figures["plain JSONL, bytes per row"] = (
        f"{plain_bytes / rows:.1f} B ({rows:,} rows, built in {seconds:.0f} s)"
    )
    # The open day (stays plain) comes after the days synthesized below.
    open_day = time.strftime("%Y-%m-%d", time.gmtime(parse_iso(f"{DAY0}T00:00:00Z") + days * 86400))
    build_day_tail = build_day(out, open_day, api)
    log("archiving the closed day with the collector's own step (child process)")
    child = child_figures(ARCHIVE_CHILD, out, f"{open_day}T23:59:00Z")
    parquet = HistoryFiles(out).day_archive(DAY0).stat().st_size
    figures["archive step for a paid day"] = (
        f"{child['seconds']:.1f} s, peak RSS {child['rss_mb']:.0f} MB (convert, read back, "
        "compare SHA-256, cut the plain file)"
    )
    figures["Parquet, bytes per row"] = f"{parquet / rows:.1f} B"
    # The open day and the archived day are real; the rest is synthesized from the archive.
    log(f"synthesizing {days - 1} more archived days")
    seconds, lines = timed(synthesize_days, out, DAY0, days - 1)
    snapshots = out / "history" / "snapshots.jsonl"
    # Synthetic days go before the real open day in snapshots.jsonl: rewrite it in ts order.
    entries = [json.loads(x) for x in snapshots.read_bytes().splitlines()] + [
        json.loads(x) for x in lines
    ]
    entries.sort(key=lambda e: e["ts"])
    body = "".join(dumps(e) + "\n" for e in entries).encode()
    snapshots.write_bytes(body)
    state = json.loads((out / "history" / ".state.json").read_bytes())
    state.update(snapshots_size=len(body), snapshot_count=len(entries))
    (out / "history" / ".state.json").write_text(dumps(state))
    total_rows = rows * days + build_day_tail
    archive_bytes = sum(p.stat().st_size for p in (out / "history" / "archive").glob("2*.parquet"))
    figures[f"{days} archived days, bytes per row"] = (
        f"{archive_bytes / (rows * days):.1f} B ({archive_bytes / 1e9:.2f} GB, "
        f"synthesized in {seconds:.0f} s)"
    )
    for name, sql in QUERIES.items():
        first, _ = timed(run_query, out, sql)
        best = min(timed(run_query, out, sql)[0] for _ in range(3))
        figures[f"query: {name} ({total_rows / 1e6:.0f} M rows)"] = (
            f"{first:.2f} s first, {best:.2f} s best of 3"
        )
    span = TimeRange.parse(DAY0)
    seconds, lines = timed(lambda: sum(1 for _ in export_lines(HistoryStore(out), span)))
    figures["--export-history, one archived day"] = (
        f"{seconds:.1f} s for {lines:,} lines (a month ≈ {seconds * 30 / 60:.0f} min, "
        "extrapolated: for all-time questions use --query)"
    )
    seconds, report = timed(check_history, out, 30)
    figures["--check-history"] = f"{seconds:.1f} s, {'OK' if report.ok else report.problems[:2]}"
    (out / "history" / ".state.json").unlink()
    rebuilt = child_figures(REBUILD_CHILD, out)
    figures["rebuilding a lost state (1 plain day)"] = (
        f"{rebuilt['seconds']:.1f} s, peak RSS {rebuilt['rss_mb']:.0f} MB (child process)"
    )
    print(
        f"\nmcap-collector history benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores"
    )
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value}")
    if not args.keep:
        import shutil

        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
