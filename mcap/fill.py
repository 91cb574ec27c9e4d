"""The backfill pipeline of 05, top to bottom: which coins and times, what is already stored,
how many calls the month can spare, the fill itself, archiving, the summary.

Runs under 05's own lock (beside the cron job, never blocking it). Every answer is committed
as it lands, so a stop for any reason keeps what was fetched; a stop by the budget,
--max-calls or the deadline exits 75 and says what is left (docs/backfill.md).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from .backfill import Backfill, CallLimit, Outcome, TimeLimit
from .backfill_tasks import Task, allowance, tasks_for, time_span, universe
from .clock import now, utc_iso
from .context import BackfillFigures, RunContext
from .errors import (
    ApiDataError,
    BackfillPaused,
    BudgetExceeded,
    CollectorError,
    DeadlineExceeded,
    ExitCode,
    LocalStateError,
)
from .history.points import PointsStore
from .history.points_archive import PIECE_ROWS, compact_points
from .history.points_ranges import Coverage
from .ledger import RequestLedger
from .plans import describe
from .settings import BackfillRequest

log = logging.getLogger(__name__)

ARCHIVE_MARGIN_S = 60.0  # the deadline's last minute is left to archiving and the summary
END_OF_RUN_ROWS = 20_000  # a run's leftover plain points worth a piece (~2 MB plain, ~0.3 MB)
PROGRESS_STEPS = 4  # log lines in a run without a terminal: at 25 %, 50 %, 75 %, 100 %


def backfill_history(ctx: RunContext) -> int:
    """05: fill the asked coins and times not stored yet; 0 when all is stored."""
    config = ctx.config
    request = config.backfill or BackfillRequest()
    tier = config.plan_tier
    store = PointsStore(config.out_dir)
    head, coverage = store.open()
    coins = universe(config.out_dir, request.coins)
    span = time_span(tier, request.interval, request.days, now(), store.windows(head, tier))
    tasks = tasks_for(coins, request.interval, span, coverage)
    allowed = allowance(config.monthly_budget, tier, config.every_min, config.max_attempts, now())
    budget, reserve = allowed.budget, allowed.reserve
    ledger = RequestLedger(config.out_dir)
    figures = BackfillFigures(
        tier=tier, interval=request.interval, first=utc_iso(span[0]), last=utc_iso(span[1]),
        coins=len(coins), calls_needed=len(tasks), reserve=reserve,
    )  # fmt: skip
    ctx.stats.backfill = figures
    ctx.say(
        f"Backfill: {len(coins):,} coins, {request.interval} points {figures.first[:10]} → "
        f"{figures.last[:10]} ({describe(tier).removeprefix('the ')})"
    )
    if not tasks:
        ctx.say("Nothing to fetch: every asked point is stored already (or the coins' data "
                "starts later).")  # fmt: skip
        ctx.stats.status = "ok"
        return ExitCode.OK
    state = ledger.check_can_run(1, config.max_attempts, budget, config.force)
    left = allowed.spare(state.month_requests)
    if left is not None and left <= 0:
        raise BudgetExceeded(
            f"the month's calls left ({budget - state.month_requests} of {budget}) are the "
            f"{reserve} the snapshots every {config.every_min} min need until the month ends; "
            f"{len(tasks)} call(s) wait",
            hint="nothing was fetched; run it again next month, or raise --monthly-budget",
        )
    ctx.say(
        f"  {len(tasks):,} call(s) to make at {request.rate:g}/s (≈ "
        f"{_duration(len(tasks) / request.rate)})"
        + (f"; {left:,} of the month's calls may be spent, {reserve:,} stay for the "
           "snapshots" if left is not None else "")
    )  # fmt: skip
    outcome = _fill(ctx, store, coverage, tasks, reserve, budget, left)
    if not isinstance(outcome.stopped, LocalStateError) and isinstance(
        outcome.stopped, CollectorError | None
    ):  # a full disk or a damaged store is not the moment to rewrite files
        _archive(ctx, store)
    return _finish(ctx, outcome, left)


def _fill(
    ctx: RunContext,
    store: PointsStore,
    coverage: Coverage,
    tasks: list[Task],
    reserve: int,
    budget: int | None,
    left: int | None,
) -> Outcome:
    request = ctx.config.backfill or BackfillRequest()
    watcher = Watcher(ctx, tasks, left)
    engine = Backfill(
        ctx, store, coverage, request.rate, reserve, request.max_calls,
        seconds=max(1.0, ctx.deadline.remaining() - ARCHIVE_MARGIN_S),
        progress=watcher.task_done, between=lambda: _archive_when_due(ctx, store),
        tier=ctx.config.plan_tier, budget=budget,
    )  # fmt: skip
    try:
        return engine.run(tasks)
    finally:
        watcher.close()


def _archive_when_due(ctx: RunContext, store: PointsStore) -> None:
    """While the workers fetch: a piece's worth of plain points moves into Parquet."""
    if store.plain_points >= PIECE_ROWS and ctx.deadline.remaining() > ARCHIVE_MARGIN_S:
        compact_points(store.files, PIECE_ROWS, budget_s=30.0)
        store.refresh()


def _archive(ctx: RunContext, store: PointsStore) -> None:
    budget = ctx.deadline.remaining() - 15.0
    if store.plain_points and budget > 5:
        ctx.best_effort(
            "archiving backfilled points",
            lambda: compact_points(store.files, END_OF_RUN_ROWS, budget_s=budget),
        )


def _finish(ctx: RunContext, outcome: Outcome, left: int | None) -> int:
    figures = ctx.stats.backfill
    assert figures is not None
    spent = outcome.calls
    figures = figures.with_outcome(outcome, None if left is None else left - spent)
    ctx.stats.backfill = figures
    ctx.say(figures.summary())
    stop = outcome.stopped
    if stop is None and outcome.unusable:
        raise ApiDataError(
            f"{outcome.unusable:,} answer(s) were not usable data (see collection.log); "
            f"{outcome.points:,} point(s) from the others are stored",
            hint="the next run asks those coins again",
        )
    if stop is None:
        ctx.stats.status = "ok"
        return ExitCode.OK
    if isinstance(stop, CallLimit | TimeLimit | BudgetExceeded | DeadlineExceeded):
        timed = isinstance(stop, DeadlineExceeded | TimeLimit)
        reason = f"the run's deadline of {ctx.config.deadline_s:g} s" if timed else str(stop)
        raise BackfillPaused(
            f"stopped: {reason}; {outcome.left:,} call(s) left for the next run, "
            f"{outcome.points:,} point(s) stored this run are kept"
        )
    if isinstance(stop, CollectorError):
        stop.add_note(f"{outcome.points:,} point(s) stored before it are kept")
    raise stop


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Watcher:
    """Progress: a tqdm bar on a terminal; a few log lines otherwise."""

    def __init__(self, ctx: RunContext, tasks: list[Task], left: int | None) -> None:
        self.ctx, self.left = ctx, left
        self.remaining = Counter(task.coin for task in tasks)
        self.total = len(self.remaining)
        self.done = 0
        self.next_step = 1
        self.bar = _bar(ctx, self.total)

    def task_done(self, task: Task, added: int, outcome: Outcome) -> None:
        self.remaining[task.coin] -= 1
        if self.remaining[task.coin] > 0:
            return
        self.done += 1
        calls = outcome.calls
        if self.bar is not None:
            budget = "∞" if self.left is None else f"{self.left - calls:,}"
            self.bar.set_postfix_str(f"{outcome.points:,} points, {calls:,} calls, {budget} left")
            self.bar.update(1)
        elif self.done * PROGRESS_STEPS >= self.next_step * self.total:
            self.next_step += 1
            log.info("backfill: %d/%d coins, %d points, %d calls", self.done, self.total,
                     outcome.points, calls)  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _bar(ctx: RunContext, total: int) -> Any:
    stream = ctx.env.stderr
    if ctx.config.quiet or not getattr(stream, "isatty", lambda: False)():
        return None
    from tqdm import tqdm  # a terminal only: cron runs never import it

    return tqdm(total=total, unit="coin", file=stream, dynamic_ncols=True, smoothing=0.1)
