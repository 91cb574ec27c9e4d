"""What a person reads: the run summary, 03 --plan, 04 --status and 04 --check-history."""

from __future__ import annotations

import csv
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

from .clock import now, parse_iso, utc_iso
from .context import STATS_NAME, RunContext
from .errors import ExitCode, HistoryCheckFailed, LocalStateError
from .formats import safe_text_cell
from .history import HistoryStore, TimeRange, check_history, export_lines, find_gaps
from .history.files import read_manifest
from .history.query import run_query
from .jsonio import loads_object
from .ledger import RequestLedger, empty_ledger, log_budget_plan
from .settings import API_REFRESH_MIN, CALLS_PER_SNAPSHOT
from .snapshot import Snapshot
from .validate import Validated

DAY_S = 86400
STALE_CADENCES = 2  # older than this many cadences: unhealthy, whatever else looks fine
LOW_DISK_BYTES = 200e6


def amount(value: Any) -> str:
    """A whole amount with thousands separators, for any number the API can send."""
    if type(value) is int:
        return f"{value:,}"
    if type(value) is float:
        return f"{value:,.0f}"
    return "n/a"


# --- after a run ---------------------------------------------------------------------------


def print_summary(ctx: RunContext, snapshot: Snapshot) -> None:
    """Count vs expected, global cap, top 10, requests and budget, history changes."""
    stats, config = ctx.stats, ctx.config
    quote = "USD" if "USD" in config.quotes else config.quotes[0]

    def cap(coin: dict[str, Any]) -> Any:
        value = ((coin.get("quotes") or {}).get(quote) or {}).get("market_cap")
        return value if type(value) in (int, float) else None

    def by_cap(coin: dict[str, Any]) -> float | int:
        value = cap(coin)
        return float("-inf") if value is None else value

    expected = f"{stats.expected_count:,}" if stats.expected_count is not None else "unknown"
    ctx.say(
        f"Snapshot {stats.snapshot_id}: {stats.coin_count:,} coins received, "
        f"{expected} expected on the {config.plan} plan"
        + (
            f", {stats.duplicates_dropped} duplicate rows dropped"
            if stats.duplicates_dropped
            else ""
        )
    )
    if (
        stats.coin_count is not None
        and stats.expected_count
        and (stats.coin_count < 0.9 * stats.expected_count)
    ):
        ctx.say(
            f"WARNING: {stats.expected_count - stats.coin_count:,} fewer coins than the "
            f"{config.plan} plan should return ({stats.coin_count:,} of "
            f"{stats.expected_count:,})"
        )
    ctx.say(f"Global market cap: ${amount(snapshot.global_data.get('market_cap_usd'))}")
    ctx.say(f"Top 10 by market cap ({quote}):")
    for place, coin in enumerate(sorted(snapshot.coins, key=by_cap, reverse=True)[:10], 1):
        ctx.say(
            f"  {place:2d}. {safe_text_cell(coin.get('name'))[:30]:30s} "
            f"{safe_text_cell(coin.get('symbol'))[:10]:10s} {amount(cap(coin)):>22}"
        )
    budget = f" of {config.monthly_budget:,}" if config.monthly_budget is not None else ""
    month = RequestLedger(config.out_dir).load()["month_requests"]
    ctx.say(
        f"Requests: {ctx.counter.attempts} this run ({ctx.counter.retries} retries), "
        f"{month:,}{budget} this month"
    )
    ctx.say(
        f"History: appeared {stats.appeared}, disappeared {stats.disappeared}; "
        f"time {ctx.elapsed():.2f}s; files in {config.out_dir}"
    )


def print_catalogue_summary(
    ctx: RunContext, catalogue: Validated, active: int, written: tuple[str, str]
) -> None:
    """01: how many coins, how many active, what was written."""
    dropped = catalogue.duplicates_dropped
    ctx.say(
        f"Coins: {len(catalogue.rows):,} ({active:,} active"
        + (f", {dropped} duplicate rows dropped" if dropped else "")
        + ")"
    )
    ctx.say(
        f"Requests: {ctx.counter.attempts} ({ctx.counter.retries} retries); "
        f"written {written[0]} and {written[1]} in {ctx.config.out_dir}"
    )


# --- 03 --plan -------------------------------------------------------------------------------


def show_budget_plan(ctx: RunContext) -> int:
    """03 --plan: the schedule's cost against the budget, without any request."""
    config = ctx.config
    plan = log_budget_plan(config, RequestLedger(config.out_dir).load()["month_requests"])
    budget = plan["monthly_budget"]
    ctx.say(
        f"Cadence: every {plan['every_min']} min × {CALLS_PER_SNAPSHOT} calls per snapshot "
        "(/tickers + /global)"
    )
    ctx.say(
        f"Needs {plan['calls_needed_full_month']:,} calls in a {plan['days_in_month']}-day "
        f"month; budget {'unlimited' if budget is None else f'{budget:,}'}: "
        f"{'fits' if plan['fits'] else 'DOES NOT FIT'}"
    )
    ctx.say(
        f"This month: {plan['calls_used_this_month']:,} used, "
        f"{plan['calls_needed_rest_of_month']:,} more needed until the month ends: "
        f"{'fits' if plan['fits_rest_of_month'] else 'DOES NOT FIT'}"
    )
    if plan["fastest_cadence_min"] is not None:
        ctx.say(
            f"Fastest cadence that fits the budget: every {plan['fastest_cadence_min']} min "
            f"(the API refreshes about every {API_REFRESH_MIN} min)"
        )
    return ExitCode.OK


# --- 04 --status and --check-history (read-only) ---------------------------------------------


def show_status(ctx: RunContext) -> int:
    """Print health; exit 0 when healthy, 1 when not (for a monitoring probe)."""
    config = ctx.config
    out = config.out_dir
    at = now()
    problems: list[str] = []
    try:
        stats = loads_object((out / STATS_NAME).read_bytes())
    except OSError:
        stats = None
    store = HistoryStore(out)
    state = store.read_state() if store.dir.is_dir() else None
    entries = store.snapshot_entries(state) if state else []
    timestamps = [e["ts"] for e in entries]
    try:
        ledger = RequestLedger(out).load(at)
    except LocalStateError as exc:
        problems.append(exc.one_line())
        ledger = empty_ledger(at)
    ctx.say(f"Output directory: {out}")
    if stats:
        ctx.say(
            f"Last run: {stats.get('status')} (exit {stats.get('exit_code')}) by "
            f"{stats.get('script')} at {stats.get('finished_at')}"
            + (f" — {stats['error']}" if stats.get("error") else "")
        )
        if stats.get("status") == "failed":
            problems.append(f"last run failed: {stats.get('error')}")
    else:
        ctx.say("Last run: none recorded")
        problems.append("no run recorded yet")
    _status_of_snapshots(ctx, entries, at, problems)
    _status_of_last_day(ctx, timestamps, at)
    if state:
        _status_of_archive(ctx, store, state, at, problems)
    _status_of_budget(ctx, ledger, problems)
    history_bytes = store.total_bytes() if store.dir.is_dir() else 0
    free = shutil.disk_usage(out).free
    ctx.say(f"Disk: history {history_bytes / 1e6:.1f} MB; {free / 1e9:.1f} GB free")
    if free < LOW_DISK_BYTES:
        problems.append(f"only {free / 1e6:.0f} MB free")
    ctx.say("Health: OK" if not problems else "Health: UNHEALTHY — " + "; ".join(problems))
    return ExitCode.OK if not problems else ExitCode.UNHEALTHY


def _status_of_snapshots(
    ctx: RunContext, entries: list[dict[str, Any]], at: float, problems: list[str]
) -> None:
    every = ctx.config.every_min
    if not entries:
        ctx.say("Last good snapshot: none")
        problems.append("no snapshot committed yet")
        return
    last = entries[-1]
    age_min = (at - parse_iso(last["ts"])) / 60
    ctx.say(
        f"Last good snapshot: {last['ts']} ({age_min:.0f} min ago), "
        f"{last.get('coin_count')} coins of {last.get('expected_count')} expected"
    )
    if age_min > STALE_CADENCES * every:
        problems.append(
            f"last snapshot is {age_min:.0f} min old, more than {STALE_CADENCES} cadences "
            f"of {every} min"
        )
    elif age_min < 0:
        problems.append(f"last snapshot {last['ts']} lies in the future (clock moved?)")


def _status_of_last_day(ctx: RunContext, timestamps: list[str], at: float) -> None:
    """Missed slots of the last 24 h, by the same gap rule as gaps.jsonl and the checker."""
    every = ctx.config.every_min
    # The window starts 24 h ago, or at the first snapshot when collection began later.
    since = max(at - DAY_S, parse_iso(timestamps[0])) if timestamps else at - DAY_S
    recent = [t for t in timestamps if since <= parse_iso(t) <= at]
    gaps = find_gaps([utc_iso(since), *recent, utc_iso(at)], every)
    missing = sum(gap.missing_slots for gap in gaps)
    inner = [g for g in gaps if g.start in recent and g.end in recent]
    ctx.say(
        f"Last 24 h: {missing} of {int(DAY_S // (every * 60))} slots without a "
        f"snapshot (cadence {every} min); {len(inner)} gap(s)"
    )
    for gap in inner[-10:]:
        ctx.say(f"  gap {gap.start} → {gap.end}: {gap.missing_slots} missed slot(s)")


def _status_of_archive(
    ctx: RunContext, store: HistoryStore, state: dict[str, Any], at: float, problems: list[str]
) -> None:
    """Archived days, and whether closed days wait too long in the plain file."""
    days = sorted(read_manifest(store.files))
    waiting = store.plain_first_day(state)
    ctx.say(
        f"Archive: {len(days)} day(s) in Parquet"
        + (f" ({days[0]} … {days[-1]})" if days else "")
        + (f"; plain file from {waiting}" if waiting else "; plain file empty")
        + (
            f"; {len(store.files.legacy_archives())} legacy archive(s) to convert"
            if store.files.legacy_archives()
            else ""
        )
    )
    yesterday = utc_iso(at - DAY_S)[:10]
    if waiting and waiting < yesterday:
        problems.append(f"archiving is behind: the plain file still starts at {waiting}")


def _status_of_budget(ctx: RunContext, ledger: dict[str, Any], problems: list[str]) -> None:
    budget = ctx.config.monthly_budget
    used = ledger["month_requests"]
    ctx.say(
        f"Requests this month ({ledger['month']}): {used:,}"
        + (f" of {budget:,} ({100 * used / budget:.1f} %)" if budget else " (no budget set)")
    )
    if budget and used >= 0.9 * budget:
        problems.append(f"{used} of {budget} monthly requests used")
    if ledger.get("blocked_until"):
        ctx.say(f"BLOCKED until {ledger['blocked_until']}: {ledger.get('blocked_reason')}")
        problems.append(f"quota blocked until {ledger['blocked_until']}")


def show_history_check(ctx: RunContext) -> int:
    """Verify the history files; 0 when whole and unique.

    Raises:
        HistoryCheckFailed: any problem (65).
    """
    report = check_history(ctx.config.out_dir, ctx.config.every_min)
    ctx.say(
        f"History: {report.rows:,} rows in {report.snapshots:,} snapshots "
        f"({', '.join(report.files) or 'no files'})"
    )
    for note in report.notes:
        ctx.say(f"Note: {note}")
    ctx.say(f"Gaps (cadence {ctx.config.every_min} min): {len(report.gaps)}")
    for gap in report.gaps[-20:]:
        ctx.say(f"  {gap.start} → {gap.end}: {gap.missing_slots} missed slot(s)")
    if report.ok:
        ctx.say("Check: OK — every snapshot whole and present once")
        return ExitCode.OK
    for problem in report.problems:
        ctx.say(f"Problem: {problem}")
    raise HistoryCheckFailed(
        f"history check failed: {len(report.problems)} problem(s), first: {report.problems[0]}"
    )


def export_history(ctx: RunContext) -> int:
    """04 --export-history: the committed lines of a time range on stdout, as committed."""
    span = TimeRange.parse(*ctx.config.export_range)
    out = getattr(sys.stdout, "buffer", None)

    def write() -> None:
        for line in export_lines(HistoryStore(ctx.config.out_dir), span):
            if out is not None:
                out.write(line)
            else:  # a text stream (tests): history lines are ASCII JSON
                sys.stdout.write(line.decode("utf-8", "surrogateescape"))

    return _to_stdout(write)


def query_history(ctx: RunContext) -> int:
    """04 --query: DuckDB SQL over the `history` and `totals` views, printed as CSV."""
    names, rows = run_query(ctx.config.out_dir, str(ctx.config.query), ctx.config.quotes)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    return _to_stdout(lambda: (writer.writerow(names), writer.writerows(rows)))


def _to_stdout(write: Callable[[], object]) -> int:
    """Run a writer of stdout; a reader that stops early (`… | head`) is not an error."""
    try:
        write()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return ExitCode.OK
