"""The backfill engine: a few threads, one shared pace, every call through the ledger, each
answer committed as it lands (docs/design.md, "Backfilled points").

It stops, keeping everything committed, at the first of: every task done, the budget down to
the reserve, --max-calls, the time limit, a quota 402, the API unreachable after retries, a
signal. A plan-window refusal narrows that class's window (remembered), costs at most one call
per class per run, and never blocks the quota.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .backfill_tasks import Task
from .client import ApiClient, RequestCounter
from .clock import now, parse_iso, utc_iso
from .context import RunContext
from .errors import (
    ApiDataError,
    ApiUnavailable,
    AuthOrPlanError,
    BudgetExceeded,
    DeadlineExceeded,
    Interrupted,
    PlanWindowRefused,
    as_collector_error,
)
from .history.points import Answer, PointsStore
from .history.points_ranges import Coverage
from .ledger import RequestLedger
from .plans import MAX_POINTS, WINDOW_MARGIN_S, class_of, step_of
from .ratelimit import TokenBucket
from .retry import TransientError
from .signals import GUARD

log = logging.getLogger(__name__)

WORKERS = 3  # overlaps a few requests' latency; the bucket, not the pool, sets the pace
DONE, RETRY, STOP = "done", "retry", "stop"


class CallLimit(BudgetExceeded):
    """--max-calls reached: progress kept, the next run continues (75)."""


class TimeLimit(BudgetExceeded):
    """The time given to a backfill (gap repair's 60 s) is used up: progress kept."""


@dataclass
class Outcome:
    """What a backfill did, and why it stopped (None: every task done)."""

    calls: int = 0
    points: int = 0
    filled: set[str] = field(default_factory=set)  # coins that got points
    empty: set[str] = field(default_factory=set)  # answered, but no data (it starts later)
    missing: set[str] = field(default_factory=set)  # unknown to the API (404)
    refused: dict[str, str] = field(default_factory=dict)  # class → the plan's refusal
    unusable: int = 0  # answers that were not usable data
    left: int = 0  # tasks not done
    stopped: BaseException | None = None  # a CollectorError, or a bug (exit 70)


def parse_points(payload: Any, task: Task) -> list[tuple[int, Any, Any, Any]]:
    """The answer's points on the task's grid and range: (epoch, price, market cap, volume).

    Raises:
        ApiDataError: not a list of points with numbers (nothing of it is stored).
    """
    if not isinstance(payload, list):
        raise ApiDataError(f"historical {task.coin}: expected a JSON array")
    step, points, off_grid = step_of(task.interval), [], []
    for item in payload:
        if not isinstance(item, dict) or not isinstance(item.get("timestamp"), str):
            raise ApiDataError(f"historical {task.coin}: a point without a timestamp")
        try:
            ts = int(parse_iso(item["timestamp"][:19] + "Z"))
        except ValueError:
            raise ApiDataError(
                f"historical {task.coin}: timestamp {item['timestamp'][:40]!r}"
            ) from None
        values = [item.get(key) for key in ("price", "market_cap", "volume_24h")]
        if any(type(v) not in (int, float, type(None)) and v != "" for v in values):
            raise ApiDataError(f"historical {task.coin}: a value that is not a number")
        if not task.start <= ts <= task.end:
            continue
        if ts % step:
            off_grid.append(item["timestamp"][:40])
            continue
        points.append((ts, *(None if v == "" else v for v in values)))
    if off_grid and not points:  # a grid other than the one asked for: store nothing
        raise ApiDataError(
            f"historical {task.coin}: {len(off_grid)} point(s) off the {task.interval} grid "
            f"(e.g. {off_grid[0]})"
        )
    return points


def _throttled(exc: ApiUnavailable) -> bool:
    """The retries ended on a 429: the API's rate limit, which a slower pace gets past."""
    cause = exc.__cause__
    return isinstance(cause, TransientError) and cause.status == 429


class Backfill:
    """One run's fill of tasks (the caller resolved coins, span and reserve)."""

    def __init__(
        self,
        ctx: RunContext,
        store: PointsStore,
        coverage: Coverage,
        rate: float,
        reserve: int,
        max_calls: int | None,
        seconds: float | None = None,
        progress: Callable[[Task, int, Outcome], None] | None = None,
        between: Callable[[], None] | None = None,
        tier: str = "free",
        budget: int | None = None,
    ) -> None:
        """`progress(task, points added, outcome)` follows each task done (under the lock);
        `between()` runs in the calling thread while the workers fetch (archiving)."""
        self.ctx, self.store, self.coverage = ctx, store, coverage
        self.bucket = TokenBucket(rate)
        self.reserve, self.max_calls = reserve, max_calls
        self.until = time.monotonic() + seconds if seconds is not None else None
        self.progress = progress or (lambda task, added, outcome: None)
        self.between = between or (lambda: None)
        self.tier = tier  # learned windows are the tier's: another plan starts afresh
        self.budget = budget  # the month's calls (a paid tier's, when no --monthly-budget)
        self.outcome = Outcome()
        self.learned: dict[str, int] = {}  # class → seconds back, learned this run
        self.refusals: dict[str, int] = {}  # class → refusals this run
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counters: list[RequestCounter] = []
        self._started = 0  # attempts begun, for --max-calls

    # --- the run ------------------------------------------------------------------------------
    def run(self, tasks: list[Task], workers: int = WORKERS) -> Outcome:
        """Every task, highest rank first. The first task of each interval class runs alone,
        so that a refusal of the plan's window costs one call, not one per connection."""
        ordered = sorted(tasks, key=lambda t: (t.rank == 0, t.rank, t.start))
        probes = list({class_of(t.interval): t for t in reversed(ordered)}.values())
        rest = [t for t in ordered if all(t is not probe for probe in probes)]
        try:
            pending = self._pool(probes, 1)
            if not self._stop.is_set():
                pending = self._pool([*pending.queue, *rest], workers)
            else:
                pending.queue.extend(rest)
        finally:
            self.outcome.calls = self._calls()
            self._fold_counters()
        self.outcome.left = pending.qsize()
        return self.outcome

    def _pool(self, tasks: list[Task], workers: int) -> queue.Queue[Task]:
        """Run `tasks` on `workers` threads until done or stopped; what is left."""
        pending: queue.Queue[Task] = queue.Queue()
        for task in tasks:
            pending.put(task)
        threads = [
            threading.Thread(target=self._work, args=(pending,), daemon=True)
            for _ in range(max(1, min(workers, len(tasks))))
        ]
        for thread in threads:
            thread.start()
        try:
            while any(thread.is_alive() for thread in threads):
                for thread in threads:
                    thread.join(0.1)
                GUARD.checkpoint()  # a signal ends the run here, in the main thread
                self.between()
        except Interrupted:
            self._stop.set()
            for thread in threads:
                thread.join(5)
            raise
        return pending

    def _fold_counters(self) -> None:
        for counter in self._counters:
            self.ctx.counter.attempts += counter.attempts
            self.ctx.counter.retries += counter.retries
            self.ctx.counter.bytes_received += counter.bytes_received
        self._counters = []

    def _work(self, pending: queue.Queue[Task]) -> None:
        config = dataclasses.replace(
            self.ctx.config, min_request_gap_s=0, monthly_budget=self.budget
        )
        counter = RequestCounter()
        with self._lock:
            self._counters.append(counter)
        client = ApiClient(
            config, RequestLedger(config.out_dir), self.ctx.deadline, counter,
            on_retry=self.ctx.progress, pace=self._pace, keep=self.reserve,
            on_throttled=self._throttled,
        )  # fmt: skip
        try:
            while not self._stop.is_set():
                try:
                    task = pending.get_nowait()
                except queue.Empty:
                    return
                narrowed = self._narrowed(task)
                if narrowed is None:
                    self._done(task)
                    continue
                task = narrowed
                try:
                    verdict = self._call(client, task)
                except Exception as exc:  # noqa: BLE001 - ends the run; the caller raises it
                    pending.put(task)
                    self._halt(as_collector_error(exc))
                    return
                if verdict != DONE:
                    pending.put(task)  # again, narrowed (RETRY), or left for the next run
                if verdict == STOP:
                    return
        finally:
            client.close()

    def _pace(self) -> None:
        """Before every attempt (retries too): --max-calls, then the shared rate."""
        with self._lock:
            if self.max_calls is not None and self._started >= self.max_calls:
                raise CallLimit(f"--max-calls {self.max_calls} reached")
            self._started += 1
        if not self.bucket.take(self._seconds_left):
            with self._lock:
                self._started -= 1
            if self.ctx.deadline.remaining() <= self.bucket.interval:
                raise DeadlineExceeded(f"run deadline of {self.ctx.deadline.seconds:g}s reached")
            raise TimeLimit("the run's time for backfilling is used up")

    def _throttled(self) -> None:
        """A 429: the shared pace slows (ratelimit.py), and says so."""
        rate = self.bucket.slow_down()
        log.info("backfill: HTTP 429, pace now %.1f requests a second", rate)

    def _seconds_left(self) -> float:
        left = self.ctx.deadline.remaining()
        if self.until is not None:
            left = min(left, self.until - time.monotonic())
        return left

    # --- one call -----------------------------------------------------------------------------
    def _call(self, client: ApiClient, task: Task) -> str:
        """Fetch and commit one task: DONE, RETRY (narrowed), or STOP (the run ends)."""
        params = {
            "start": utc_iso(task.start),
            "end": utc_iso(task.end + step_of(task.interval) - 1),  # inclusive either way
            "interval": task.interval,
            "limit": str(MAX_POINTS),
        }
        try:
            response = client.get(f"/tickers/{task.coin}/historical", params)
            self.bucket.speed_up()
            points = parse_points(response.data, task)
        except PlanWindowRefused as exc:
            return self._refused(task, exc)
        except ApiUnavailable as exc:
            if _throttled(exc) and not self.bucket.at_slowest:
                return RETRY  # 429s to the last attempt: again later, at the slower pace
            return self._halt(exc)
        except (BudgetExceeded, AuthOrPlanError, Interrupted) as exc:
            return self._halt(exc)
        except ApiDataError as exc:
            self._unusable(task, exc)
            self._done(task)
            return DONE
        with self._lock:
            added = self.store.commit(
                Answer(task.coin, task.interval, task.start, task.end, points), self.coverage
            )
            self.outcome.points += added
            (self.outcome.filled if points else self.outcome.empty).add(task.coin)
        self._done(task, added)
        return DONE

    def _done(self, task: Task, added: int = 0) -> None:
        with self._lock:
            self.outcome.calls = self._calls()
            self.progress(task, added, self.outcome)

    def _calls(self) -> int:
        return sum(counter.attempts for counter in self._counters)

    def _halt(self, exc: BaseException) -> str:
        with self._lock:
            if self.outcome.stopped is None:
                self.outcome.stopped = exc
        self._stop.set()
        return STOP

    def _unusable(self, task: Task, exc: ApiDataError) -> None:
        with self._lock:
            if "HTTP 404" in str(exc):
                self.outcome.missing.add(task.coin)
            else:
                self.outcome.unusable += 1
                log.warning("backfill: %s", exc)

    def _refused(self, task: Task, exc: PlanWindowRefused) -> str:
        """The plan's window, once per class: narrow it, remember it, retry what is left."""
        refusal = exc.refusal
        cls = class_of(task.interval)
        with self._lock:
            self.refusals[cls] = self.refusals.get(cls, 0) + 1
            self.outcome.refused.setdefault(cls, str(exc))
            again = self.refusals[cls] > 1
            if refusal.cutoff is None:  # the plan has no such points at all
                self.learned[cls] = 0
            elif not again:
                self.learned[cls] = int(now() - refusal.cutoff)
        if again or refusal.cutoff is None:
            log.warning("backfill: %s; no more %s points this run", exc, cls)
            return DONE  # its tasks are dropped by _narrowed
        self.store.learn_window(self.tier, cls, self.learned[cls])
        log.warning("backfill: %s; the %s window starts at %s now", exc, cls,
                    utc_iso(refusal.cutoff))  # fmt: skip
        return RETRY

    def _narrowed(self, task: Task) -> Task | None:
        """The task within what this run learned of its class (None: nothing of it left)."""
        cls = class_of(task.interval)
        with self._lock:
            seconds = self.learned.get(cls)
            dropped = self.refusals.get(cls, 0) > 1
        if dropped or seconds == 0:
            return None
        if seconds is None:
            return task
        step = step_of(task.interval)
        first = int(-(-(now() - seconds + WINDOW_MARGIN_S) // step) * step)
        if first > task.end:
            return None
        return dataclasses.replace(task, start=max(task.start, first))
