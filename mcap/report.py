"""What a person reads: the run summary, 03 --plan, 04 --status and 04 --check-history."""

from __future__ import annotations

import csv
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .clock import now, parse_iso, utc_iso
from .context import STATS_NAME, RunContext, write_stderr
from .errors import ExitCode, HistoryCheckFailed, LocalStateError
from .formats import safe_text_cell
from .history import (
    Gap,
    HistoryStore,
    Picture,
    TimeRange,
    check_history,
    export_lines,
    find_gaps,
    open_picture,
)
from .history.files import ts_of
from .history.query import run_query
from .history.reader import SnapshotRecord
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


def age_text(seconds: float) -> str:
    """`12 min`, `5.5 h`, `3 days`: an age a person reads at a glance."""
    minutes = seconds / 60
    if abs(minutes) < 90:
        return f"{minutes:.0f} min"
    if abs(minutes) < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.0f} days"


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


# --- 04 --status, --check-history, --export-history, --query (read-only) --------------------


@dataclass(frozen=True, order=True)
class Problem:
    """Something that makes --status unhealthy; the lowest `rank` is the worst."""

    rank: int
    text: str
    action: str = ""


# What a problem of each kind asks of a person, worst first.
DAMAGED, BLOCKED, FAILED, STALE, COVERAGE, BUDGET, DISK, BEHIND, NOTHING_YET = range(9)
ACTIONS = {
    DAMAGED: "run --check-history; see docs/operations.md, 'Repairing history'",
    BLOCKED: "wait for the reset, or pass --force after an upgrade",
    FAILED: "read its error line in latest_stats.json or collection.log",
    STALE: "check that cron runs the collector (cron.log, collection.log)",
    COVERAGE: "check the gaps above and collection.log",
    BUDGET: "lower the cadence or raise --monthly-budget",
    DISK: "free disk space",
    BEHIND: "let the collector run; each run archives up to 25 s",
    NOTHING_YET: "run the collector once",
}
HEALTH_LINE_MAX = 200


def health_line(problems: list[Problem]) -> str:
    """`Health: OK`, or one line of at most 200 characters: the worst problem, what to do."""
    if not problems:
        return "Health: OK"
    worst = min(problems)
    action = worst.action or ACTIONS.get(worst.rank, "")
    line = f"Health: UNHEALTHY — {worst.text}" + (f"; {action}" if action else "")
    more = f" (+{len(problems) - 1} more above)" if len(problems) > 1 else ""
    if len(line) + len(more) > HEALTH_LINE_MAX:
        line = line[: HEALTH_LINE_MAX - len(more) - 1] + "…"
    return line + more


def show_status(ctx: RunContext) -> int:
    """Print health; exit 0 when healthy, 1 when not (for a monitoring probe)."""
    config = ctx.config
    out = config.out_dir
    at = now()
    problems: list[Problem] = []
    try:
        stats = loads_object((out / STATS_NAME).read_bytes())
    except OSError:
        stats = None
    try:
        ledger = RequestLedger(out).load(at)
    except LocalStateError as exc:
        problems.append(Problem(DAMAGED, exc.one_line(), "restore or delete request_ledger.json"))
        ledger = empty_ledger(at)
    ctx.say(f"Output directory: {out}")
    _status_of_last_run(ctx, stats, problems)
    with open_picture(out) as picture:
        _status_of_snapshots(ctx, picture.snapshots, at, problems)
        _status_of_coverage(ctx, picture.snapshots, at, problems)
        _status_of_archive(ctx, picture, at, problems)
    _status_of_budget(ctx, ledger, problems)
    history_bytes = HistoryStore(out).total_bytes()
    free = shutil.disk_usage(out).free
    ctx.say(f"Disk: history {history_bytes / 1e6:.1f} MB; {free / 1e9:.1f} GB free")
    if free < LOW_DISK_BYTES:
        problems.append(Problem(DISK, f"only {free / 1e6:.0f} MB free"))
    for problem in sorted(problems)[1:]:
        ctx.say(f"Problem: {problem.text}")
    ctx.say(health_line(problems))
    return ExitCode.OK if not problems else ExitCode.UNHEALTHY


def _status_of_last_run(
    ctx: RunContext, stats: dict[str, Any] | None, problems: list[Problem]
) -> None:
    if not stats:
        ctx.say("Last run: none recorded")
        problems.append(Problem(NOTHING_YET, "no run recorded yet"))
        return
    ctx.say(
        f"Last run: {stats.get('status')} (exit {stats.get('exit_code')}) by "
        f"{stats.get('script')} at {stats.get('finished_at')}"
        + (f" — {stats['error']}" if stats.get("error") else "")
    )
    if stats.get("status") == "failed":
        problems.append(Problem(FAILED, f"last run failed: {stats.get('error')}"))


def _status_of_snapshots(
    ctx: RunContext, snapshots: tuple[SnapshotRecord, ...], at: float, problems: list[Problem]
) -> None:
    every = ctx.config.every_min
    if not snapshots:
        ctx.say("Last good snapshot: none")
        problems.append(Problem(NOTHING_YET, "no snapshot committed yet"))
        return
    last = snapshots[-1]
    age_min = (at - parse_iso(last.ts)) / 60
    ctx.say(
        f"Last good snapshot: {last.ts} ({age_text(age_min * 60)} ago), {last.coin_count} coins"
        + (f" of {last.expected_count} expected" if last.expected_count is not None else "")
    )
    if age_min > STALE_CADENCES * every:
        problems.append(
            Problem(
                STALE,
                f"last snapshot is {age_text(age_min * 60)} old, more than {STALE_CADENCES} "
                f"cadences of {every} min",
            )
        )
    elif age_min < 0:
        problems.append(
            Problem(STALE, f"last snapshot {last.ts} lies in the future (clock moved?)",
                    "fix the system clock")
        )  # fmt: skip


@dataclass(frozen=True)
class Coverage:
    """The complete cadence slots of a window, how many hold no snapshot, and the gaps."""

    since: float
    slots: int
    missing: int
    gaps: list[Gap]

    @property
    def percent(self) -> float:
        return 100.0 * (self.slots - self.missing) / self.slots if self.slots else 100.0


def coverage(timestamps: list[str], at: float, every_min: int, window_s: float = DAY_S) -> Coverage:
    """The last `window_s` as whole slots of the cadence grid (the slot in progress left
    out), or those since the first snapshot's slot if later; a slot without a committed
    snapshot is missing, whether its gap began inside the window or before it. The gaps
    listed are the one gap rule's (find_gaps), as gaps.jsonl records them, plus an open one
    up to now."""
    step = every_min * 60
    times = [parse_iso(t) for t in timestamps]
    current = int(at // step)
    first = current - round(window_s / step)
    if times:
        first = max(first, int(times[0] // step))
    slots = max(0, current - first)
    filled = {int(t // step) for t in times if first <= t // step < current}
    since = first * step
    points = [t for t in times if t < since][-1:] + [t for t in times if since <= t <= at]
    gaps = find_gaps([utc_iso(t) for t in [*points, at]], every_min) if points else []
    return Coverage(since, slots, slots - len(filled), gaps)


def _status_of_coverage(
    ctx: RunContext, snapshots: tuple[SnapshotRecord, ...], at: float, problems: list[Problem]
) -> None:
    """Missed slots of the last 24 h, by the same gap rule as gaps.jsonl and the checker."""
    config = ctx.config
    if not snapshots:
        return
    found = coverage([record.ts for record in snapshots], at, config.every_min)
    hours = found.slots * config.every_min / 60
    window = "24 h" if hours >= 23.99 else f"{hours:.1f} h (since the first snapshot)"
    ctx.say(
        f"Last {window}: {found.missing} of {found.slots} slots without a snapshot "
        f"(cadence {config.every_min} min, coverage {found.percent:.1f} %); "
        f"{len(found.gaps)} gap(s)"
    )
    for gap in found.gaps[-10:]:
        end = "now" if gap.end == utc_iso(at) else gap.end
        ctx.say(f"  gap {gap.start} → {end}: {gap.missing_slots} missed slot(s)")
    if len(found.gaps) > 10:
        ctx.say(f"  … and {len(found.gaps) - 10} earlier gap(s)")
    if found.percent < config.min_coverage:
        problems.append(
            Problem(
                COVERAGE,
                f"coverage {found.percent:.1f} % over the last {window.split(' (')[0]} is "
                f"below --min-coverage {config.min_coverage:g} %",
            )
        )


def _status_of_archive(
    ctx: RunContext, picture: Picture, at: float, problems: list[Problem]
) -> None:
    """Archived days, their integrity, and whether closed days wait too long in the plain file."""
    days = sorted({entry.day for entry in picture.manifest.entries})
    waiting = _plain_first_day(picture)
    ctx.say(
        f"Archive: {len(days)} day(s) in Parquet"
        + (f" ({days[0]} … {days[-1]})" if days else "")
        + (f"; plain file from {waiting}" if waiting else "; plain file empty")
        + (f"; {len(picture.legacy)} legacy archive(s) to convert" if picture.legacy else "")
    )
    for name in picture.strays:
        ctx.say(f"Warning: archive/{name} is not an archive file; it is not read")
    for problem in picture.problems(full=True):  # every file read once: ~2 s a paid year
        problems.append(Problem(DAMAGED, problem))
    for problem in picture.manifest.unfinished():
        problems.append(Problem(DAMAGED, problem, "let the next collector run repair it"))
    for name in picture.unlisted:
        problems.append(
            Problem(DAMAGED, f"archive/{name} is not listed in the manifest",
                    "the next collector run redoes an interrupted archive step; if it stays, "
                    "see docs/operations.md, 'Repairing history'")
        )  # fmt: skip
    yesterday = utc_iso(at - DAY_S)[:10]
    if waiting and waiting < yesterday:
        problems.append(
            Problem(BEHIND, f"archiving is behind: the plain file still starts at {waiting}")
        )


def _plain_first_day(picture: Picture) -> str | None:
    line = next(picture.plain_lines(), None)
    return ts_of(line)[:10] if line else None


def _status_of_budget(ctx: RunContext, ledger: dict[str, Any], problems: list[Problem]) -> None:
    budget = ctx.config.monthly_budget
    used = ledger["month_requests"]
    ctx.say(
        f"Requests this month ({ledger['month']}): {used:,}"
        + (f" of {budget:,} ({100 * used / budget:.1f} %)" if budget else " (no budget set)")
    )
    if budget and used >= 0.9 * budget:
        problems.append(Problem(BUDGET, f"{used} of {budget} monthly requests used"))
    if ledger.get("blocked_until"):
        ctx.say(f"BLOCKED until {ledger['blocked_until']}: {ledger.get('blocked_reason')}")
        problems.append(Problem(BLOCKED, f"quota blocked until {ledger['blocked_until']}"))


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
    with open_picture(ctx.config.out_dir) as picture:
        written = 0

        def write() -> None:
            nonlocal written
            for chunk in export_lines(picture, span):
                written += len(chunk)
                if out is not None:
                    out.write(chunk)
                else:  # a text stream (tests): history lines are ASCII JSON
                    sys.stdout.write(chunk.decode("utf-8", "surrogateescape"))

        code = _to_stdout(write)
        if not written:
            write_stderr(
                f"{ctx.config.script}: no rows between {span.start} and {span.end}; "
                + _history_extent(picture)
            )
    return code


def _history_extent(picture: Picture) -> str:
    if not picture.snapshots:
        return "the history is empty"
    return f"history starts {picture.first_ts}, ends {picture.last_ts}"


def query_history(ctx: RunContext) -> int:
    """04 --query: one SELECT over the `history` and `totals` views, streamed as CSV."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    with open_picture(ctx.config.out_dir) as picture:
        batches = run_query(picture, str(ctx.config.query), ctx.config.quotes)
        names = next(batches)
        rows = 0

        def write() -> None:
            nonlocal rows
            writer.writerow(names)
            for batch in batches:
                rows += len(batch)
                writer.writerows(batch)

        code = _to_stdout(write)
        batches.close()
        if not rows:
            write_stderr(
                f"{ctx.config.script}: the query returned no rows; " + _history_extent(picture)
            )
    return code


def _to_stdout(write: Callable[[], object]) -> int:
    """Run a writer of stdout; a reader that stops early (`… | head`) is not an error."""
    try:
        write()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return ExitCode.OK
