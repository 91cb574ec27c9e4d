"""Gap repair: after a committed snapshot, 03 and 04 refill the slots missed since the plan's
window still serves them, from /tickers/{id}/historical (docs/backfill.md, "Gap repair").

For each gap between committed snapshots (the one gap rule, history/gaps.py) the finest
interval the plan serves for that age is chosen: the cadence's own (30m for a 30-minute cron)
where the plan has 5-minute points, else hourly. The plan's universe (this snapshot's coins)
is asked highest rank first, inside the spare budget (never the snapshots' reserve), at most
60 s and a gentle pace per run; what is left continues over later runs. history/gaps.jsonl
gets one `repair` record per gap whose state changed: repaired, partly, or unrepairable.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from .backfill import Backfill, Outcome
from .backfill_tasks import Allowance, Coin, Task, allowance, chunks, uncovered
from .clock import now, parse_iso, utc_iso
from .context import RepairFigures, RunContext, one_line
from .errors import BudgetExceeded
from .history import Gap, HistoryFiles, find_gaps
from .history.gaps import REPAIR_LOOK_BACK_S, latest_repairs, record_gap
from .history.points import PointsStore
from .history.points_ranges import Coverage
from .history.summaries import committed_snapshots, tail_start
from .ledger import RequestLedger
from .plans import WINDOW_MARGIN_S, describe, step_of, window_s
from .settings import REPAIR_RATE, REPAIR_SECONDS

log = logging.getLogger(__name__)

FINE_INTERVALS = ("5m", "10m", "15m", "30m")  # the 5-minute class, by cadence
REPAIRED, PARTLY, UNREPAIRABLE = "repaired", "partly", "unrepairable"


@dataclass(frozen=True)
class GapPlan:
    """How one gap can be refilled: the interval and grid times, or why it cannot."""

    gap: Gap
    interval: str | None
    first: int = 0
    last: int = -1
    reason: str = ""
    aged_out_before: int | None = None  # the gap's times before this are out of the window


def plan_gap(gap: Gap, tier: str, every_min: int, at: float, learned: dict[str, int]) -> GapPlan:
    """The finest interval whose window still reaches the gap, on the gap's missed times
    (at least half a cadence from the snapshots around it)."""
    half = every_min * 30
    start, end = parse_iso(gap.start) + half, parse_iso(gap.end) - half
    fine = next((i for i in reversed(FINE_INTERVALS) if step_of(i) <= every_min * 60), "5m")
    reached = False
    for interval in (fine, "1h"):
        window = _window(tier, interval, learned)
        if window == 0:
            continue
        step = step_of(interval)
        oldest = -(10**12) if window is None else at - window + WINDOW_MARGIN_S
        first = int(-(-max(start, oldest) // step) * step)
        last = int(-(-end // step) * step) - step  # strictly before `end`
        if first <= last:
            aged = int(oldest) if oldest > start else None
            return GapPlan(gap, interval, first, last, aged_out_before=aged)
        reached = reached or end > oldest
    if reached:  # the window reaches the gap, but no grid time falls inside it
        return GapPlan(gap, None, reason="shorter than the plan's finest interval")
    return GapPlan(gap, None, reason=f"aged out of the plan's windows ({describe(tier)})")


def _final(record: dict[str, object]) -> bool:
    """Nothing more can change: repaired, unrepairable, or all the window still reaches."""
    if record.get("status") != PARTLY:
        return True
    return "aged_out_before" in record and record.get("coins") == record.get("of_coins")


def _window(tier: str, interval: str, learned: dict[str, int]) -> int | None:
    window = window_s(tier, interval)
    cls = "5-minute" if interval in FINE_INTERVALS else "hourly"
    if cls in learned:
        return learned[cls] if window is None else min(window, learned[cls])
    return window


def repair_gaps(ctx: RunContext, coins: list[Coin]) -> None:
    """Refill what the plan can still serve of the recent gaps (after a commit only)."""
    config = ctx.config
    at = now()
    files = HistoryFiles(config.out_dir)
    gaps = recent_gaps(files, config.every_min, at)
    if not gaps:
        return
    store = PointsStore(config.out_dir)
    head, coverage = store.open()
    tier = config.plan_tier
    final = {key for key, r in latest_repairs(files).items() if _final(r)}
    learned = store.windows(head, tier)
    plans = [
        plan_gap(gap, tier, config.every_min, at, learned)
        for gap in gaps
        if (gap.start, gap.end) not in final  # repaired, or known to be unrepairable
    ]
    tasks = [task for plan in plans for task in _tasks(plan, coins, coverage)]
    outcome = Outcome()
    allowed = allowance(config.monthly_budget, tier, config.every_min, config.max_attempts, at)
    spare = allowed.spare(RequestLedger(config.out_dir).load(at).month_requests)
    if tasks and (spare is None or spare > 0):
        seconds = min(REPAIR_SECONDS, ctx.deadline.remaining() - 30)
        if seconds > 1:
            outcome = _run(ctx, store, coverage, tasks, allowed, spare, seconds)
    elif tasks:
        log.info("gap repair: no spare calls this month; %d call(s) wait", len(tasks))
    _record(ctx, files, plans, coins, coverage, outcome)


def recent_gaps(files: HistoryFiles, every_min: int, at: float) -> list[Gap]:
    """Gaps between the committed snapshots of the last REPAIR_LOOK_BACK_S."""
    try:
        handle = open(files.snapshots, "rb")
    except FileNotFoundError:
        return []
    since = utc_iso(at - REPAIR_LOOK_BACK_S)
    with handle:
        size = os.fstat(handle.fileno()).st_size
        records, _ = committed_snapshots(handle, size, tail_start(handle, size, since))
    return find_gaps([r.ts for r in records if r.ts >= since], every_min)


def _tasks(plan: GapPlan, coins: list[Coin], coverage: Coverage) -> list[Task]:
    if plan.interval is None:
        return []
    step = step_of(plan.interval)
    found = []
    for coin in coins:
        for first, last in uncovered(coverage, coin.id, step, plan.first, plan.last):
            found += chunks(coin, plan.interval, first, last)
    return found


def _run(
    ctx: RunContext,
    store: PointsStore,
    coverage: Coverage,
    tasks: list[Task],
    allowed: Allowance,
    spare: int | None,
    seconds: float,
) -> Outcome:
    engine = Backfill(
        ctx, store, coverage, REPAIR_RATE, allowed.reserve, spare, seconds=seconds,
        tier=ctx.config.plan_tier, budget=allowed.budget,
    )  # fmt: skip
    outcome = engine.run(tasks)
    stop = outcome.stopped
    # Time or spare calls used up is the plan working; anything else is worth a warning.
    if stop is not None and not isinstance(stop, BudgetExceeded):
        ctx.warn(f"gap repair stopped: {one_line(stop)}")
    return outcome


def _record(
    ctx: RunContext,
    files: HistoryFiles,
    plans: list[GapPlan],
    coins: list[Coin],
    coverage: Coverage,
    outcome: Outcome,
) -> None:
    """A `repair` record per gap whose state changed; the run's figures."""
    latest = latest_repairs(files)
    figures = RepairFigures(calls=outcome.calls, points=outcome.points)
    for plan in plans:
        record = _gap_record(plan, coins, coverage)
        figures = figures.count(record["status"])
        before = latest.get((plan.gap.start, plan.gap.end))
        same = (k for k in record if k != "aged_out_before")  # it moves on with the clock
        if before is not None and all(before.get(k) == record.get(k) for k in same):
            continue
        record_gap(files, {"type": "repair", "at": utc_iso(), **record})
    ctx.stats.repair = figures
    if outcome.calls:
        ctx.say(figures.summary())


def _gap_record(plan: GapPlan, coins: list[Coin], coverage: Coverage) -> dict[str, object]:
    gap = plan.gap
    base: dict[str, object] = {"from": gap.start, "to": gap.end, "missing_slots": gap.missing_slots}
    if plan.interval is None:
        return {**base, "status": UNREPAIRABLE, "reason": plan.reason}
    step = step_of(plan.interval)
    done = [c for c in coins if not uncovered(coverage, c.id, step, plan.first, plan.last)]
    points = sum(
        r.points
        for c in coins
        for r in coverage.by_coin.get(c.id, ())
        if r.interval == plan.interval and plan.first <= r.start and r.end <= plan.last
    )
    complete = len(done) == len(coins)
    status = REPAIRED if complete and plan.aged_out_before is None else PARTLY
    record = {**base, "status": status, "interval": plan.interval, "coins": len(done),
              "of_coins": len(coins), "points": points}  # fmt: skip
    if plan.aged_out_before is not None:
        record["aged_out_before"] = utc_iso(plan.aged_out_before)
        record["reason"] = "the plan's window no longer reaches the gap's start"
    return record
