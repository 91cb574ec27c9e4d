"""The read-only views, declared once: what each is called, its option, what it runs.

A view creates, locks, logs and writes nothing (03 --plan only logs its maths), answers from
the out-dir's committed history through the reader of record, and writes to the run's
`Environment`, so tests give it buffers instead of the process's streams.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

from .context import RunContext
from .errors import ExitCode, HistoryCheckFailed
from .history import (
    Picture,
    TimeRange,
    check_history,
    export_lines,
    export_points,
    open_picture,
)
from .history.query import run_query
from .ledger import RequestLedger, log_budget_plan
from .settings import API_REFRESH_MIN, CALLS_PER_SNAPSHOT
from .status import show_status


def show_budget_plan(ctx: RunContext) -> int:
    """03 --plan: the schedule's cost against the budget, without any request."""
    config = ctx.config
    plan = log_budget_plan(config, RequestLedger(config.out_dir).load().month_requests)
    budget = plan.monthly_budget
    ctx.say(
        f"Cadence: every {plan.every_min} min × {CALLS_PER_SNAPSHOT} calls per snapshot "
        "(/tickers + /global)"
    )
    ctx.say(
        f"Needs {plan.calls_needed_full_month:,} calls in a {plan.days_in_month}-day "
        f"month; budget {'unlimited' if budget is None else f'{budget:,}'}: "
        f"{'fits' if plan.fits else 'DOES NOT FIT'}"
    )
    ctx.say(
        f"This month: {plan.calls_used_this_month:,} used, "
        f"{plan.calls_needed_rest_of_month:,} more needed until the month ends: "
        f"{'fits' if plan.fits_rest_of_month else 'DOES NOT FIT'}"
    )
    if plan.fastest_cadence_min is not None:
        ctx.say(
            f"Fastest cadence that fits the budget: every {plan.fastest_cadence_min} min "
            f"(the API refreshes about every {API_REFRESH_MIN} min)"
        )
    return ExitCode.OK


def files_text(files: list[str] | tuple[str, ...], most: int = 4) -> str:
    """The files checked, by name while few; a year's archives as a span, not 365 names."""
    if len(files) <= most:
        return ", ".join(files) or "no files"
    archives = [name for name in files if name.startswith("archive/")]
    others = [name for name in files if not name.startswith("archive/")]
    span = f"{len(archives):,} archive files, {archives[0]} … {archives[-1]}"
    return ", ".join([span, *others]) if len(archives) > 1 else ", ".join(files)


def show_history_check(ctx: RunContext) -> int:
    """Verify the history files; 0 when whole and unique.

    Raises:
        HistoryCheckFailed: any problem (65).
    """
    report = check_history(ctx.config.out_dir, ctx.config.every_min)
    ctx.say(
        f"History: {report.rows:,} rows in {report.snapshots:,} snapshots "
        f"({files_text(report.files)})"
    )
    if report.points is not None:
        points = report.points
        ctx.say(
            f"Backfilled: {points.points:,} points of {points.coins:,} coins "
            f"({points.pieces} Parquet piece(s) + {points.plain:,} plain points)"
        )
    for note in report.notes:
        ctx.say(f"Note: {note}")
    ctx.say(f"Gaps (cadence {ctx.config.every_min} min): {len(report.gaps)}")
    for gap in report.gaps[-20:]:
        ctx.say(f"  {gap.start} → {gap.end}: {gap.missing_slots} missed slot(s)")
    if report.ok:
        ctx.say(
            "Check: OK — every snapshot whole and present once"
            + (", every backfilled point once" if report.points is not None else "")
        )
        return ExitCode.OK
    for problem in report.problems:
        ctx.say(f"Problem: {problem}")
    raise HistoryCheckFailed(
        f"history check failed: {len(report.problems)} problem(s), first: {report.problems[0]}"
    )


def export_history(ctx: RunContext) -> int:
    """04 --export-history: the committed lines of a time range on stdout, as committed."""
    span = TimeRange.parse(*ctx.config.export_range)
    env = ctx.env
    with open_picture(ctx.config.out_dir) as picture:
        written = 0

        lines = export_points if ctx.config.export_source == "historical" else export_lines

        def write() -> None:
            nonlocal written
            for chunk in lines(picture, span):
                written += len(chunk)
                env.write(chunk)

        code = _to_stdout(ctx, write)
        if not written:
            ctx.error_line(
                f"{ctx.config.script}: no {ctx.config.export_source} rows between "
                f"{span.start} and {span.end}; " + _history_extent(picture)
            )
    return code


def _history_extent(picture: Picture) -> str:
    points = picture.points
    backfilled = ""
    if points is not None and points.count:
        backfilled = f"; {points.count:,} backfilled point(s)"
    if not picture.snapshots:
        return "no snapshot yet" + backfilled if backfilled else "the history is empty"
    return f"history starts {picture.first_ts}, ends {picture.last_ts}{backfilled}"


def query_history(ctx: RunContext) -> int:
    """04 --query: one SELECT over the `history` and `totals` views, streamed as CSV."""
    with open_picture(ctx.config.out_dir) as picture:
        batches = run_query(picture, str(ctx.config.query), ctx.config.quotes)
        names = next(batches)
        rows = 0

        def write() -> None:
            nonlocal rows
            text = io.TextIOWrapper(ctx.env.stdout, encoding="utf-8", newline="")
            try:
                writer = csv.writer(text, lineterminator="\n")
                writer.writerow(names)
                for batch in batches:
                    rows += len(batch)
                    writer.writerows(batch)
                text.flush()
            finally:
                text.detach()  # the binary stream stays open: it is the environment's

        try:
            code = _to_stdout(ctx, write)
        finally:
            batches.close()
        if not rows:
            ctx.error_line(
                f"{ctx.config.script}: the query returned no rows; " + _history_extent(picture)
            )
    return code


def write_report(ctx: RunContext) -> int:
    """04 --report FILE.html: the page, written atomically; nothing else is written."""
    from .html_report import write_page  # the report's code only when it is asked for

    return write_page(ctx)


def _to_stdout(ctx: RunContext, write: Callable[[], object]) -> int:
    """Run a writer of stdout; a reader that stops early (`… | head`) is not an error."""
    try:
        write()
        ctx.env.flush()
    except BrokenPipeError:
        ctx.env.silence_stdout()
    return ExitCode.OK


@dataclass(frozen=True)
class View:
    """A read-only view: its name (= its option), what it runs, its option's argparse shape."""

    name: str
    run: Callable[[RunContext], int]
    help: str
    metavar: str | tuple[str, ...] | None = None  # None: a flag
    nargs: str | None = None
    logs: bool = False  # 03 --plan: creates the directory and logs its maths


VIEWS = (
    View(
        "status",
        show_status,
        "print health (last run, last snapshot, coverage, archives, budget, disk); "
        "exit 1 if unhealthy",
    ),
    View("check-history", show_history_check, "verify the history files; exit 65 on any problem"),
    View(
        "export-history",
        export_history,
        "print the history lines with FROM <= ts <= TO (YYYY-MM-DD or a full UTC time; TO "
        "defaults to FROM) exactly as they were committed, archives included",
        ("FROM", "TO"),
        "+",
    ),
    View(
        "query",
        query_history,
        "run one DuckDB SELECT over the views `history` (archives + plain tail) and `totals` "
        "(one row per snapshot); prints CSV",
        "SQL",
    ),
    View(
        "report",
        write_report,
        "write one self-contained HTML page (opens offline) of the history: coverage calendar, "
        "market caps, dominance, quota, runs, open gaps; --from/--to limit the range",
        "FILE.html",
    ),
    View(
        "plan",
        show_budget_plan,
        "print the month's budget maths for --every and exit, without any request",
        logs=True,
    ),
)
BY_NAME = {view.name: view for view in VIEWS}
