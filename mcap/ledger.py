"""The request ledger: every HTTP attempt of every script sharing an output directory."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import clock
from .clock import day_key, hour_key, month_key, month_start, next_month_start, parse_iso, utc_iso
from .errors import BudgetExceeded, LocalStateError, QuotaBlocked
from .fsio import atomic_write_bytes, locked
from .settings import API_REFRESH_MIN, CALLS_PER_SNAPSHOT, Config

log = logging.getLogger(__name__)

LEDGER_NAME = "request_ledger.json"


@dataclass(frozen=True)
class LedgerState:
    """request_ledger.json: this month's and this hour's calls (and this month's by UTC day),
    and the quota block."""

    month: str
    month_requests: int
    hour: str
    hour_requests: int
    by_script: Mapping[str, int]
    past_months: Mapping[str, int]
    blocked_until: str | None
    blocked_reason: str | None
    updated_at: str
    # This month's calls by UTC day ("2026-11-25": 96); added later: an older ledger has none,
    # and an older version drops it (its calls still count in month_requests).
    day_requests: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def replace(self, **changes: Any) -> LedgerState:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "month_requests": self.month_requests,
            "hour": self.hour,
            "hour_requests": self.hour_requests,
            "by_script": dict(self.by_script),
            "past_months": dict(self.past_months),
            "blocked_until": self.blocked_until,
            "blocked_reason": self.blocked_reason,
            "updated_at": self.updated_at,
            "day_requests": dict(self.day_requests),
        }


def empty_ledger(now: float) -> LedgerState:
    return LedgerState(
        month=month_key(now),
        month_requests=0,
        hour=hour_key(now),
        hour_requests=0,
        by_script={},
        past_months={},
        blocked_until=None,
        blocked_reason=None,
        updated_at=utc_iso(now),
        day_requests={},
    )


_COUNTS = ("month_requests", "hour_requests")
_TEXTS = ("month", "hour", "updated_at")
_TALLIES = ("by_script", "past_months", "day_requests")


def _shape_problem(data: Any) -> str | None:
    """What is wrong with a ledger read from disk, or None when every field is usable."""
    if not isinstance(data, dict):
        return f"expected a JSON object, found {type(data).__name__}"
    for key in _COUNTS:
        value = data.get(key, 0)
        if type(value) is not int or value < 0:
            return f"{key} is {value!r}, expected a count"
    for key in _TEXTS:
        if key in data and not isinstance(data[key], str):
            return f"{key} is {data[key]!r}, expected text"
    for key in _TALLIES:
        tally = data.get(key, {})
        if not isinstance(tally, dict) or any(type(v) is not int for v in tally.values()):
            return f"{key} is not a table of counts"
    until = data.get("blocked_until")
    if until is not None:
        try:
            parse_iso(until)
        except (TypeError, ValueError):
            return f"blocked_until is {until!r}, expected a UTC time"
    if not isinstance(data.get("blocked_reason"), str | None):
        return "blocked_reason is not text"
    return None


@dataclass
class RequestLedger:
    """request_ledger.json, read-modify-written under its own flock for each attempt."""

    out_dir: Path

    @property
    def path(self) -> Path:
        return self.out_dir / LEDGER_NAME

    @property
    def lock_path(self) -> Path:
        return self.out_dir / f".{LEDGER_NAME.removesuffix('.json')}.lock"

    def load(self, now: float | None = None) -> LedgerState:
        """The ledger as of now: counts roll over at month and hour boundaries."""
        now = clock.now() if now is None else now
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return empty_ledger(now)
        except (OSError, ValueError, RecursionError) as exc:
            raise self._damaged(f"unreadable ({exc})") from exc
        problem = _shape_problem(data)
        if problem:
            raise self._damaged(problem)
        return self._roll(data, now)

    def _damaged(self, problem: str) -> LocalStateError:
        # Fail safe: without a trustworthy count no request may be made.
        return LocalStateError(
            f"request ledger {self.path} is damaged: {problem}; no request was made",
            hint="restore it from a backup, or delete it (this month's count then restarts "
            "at 0, so lower --monthly-budget by what was already spent)",
        )

    @staticmethod
    def _roll(data: dict[str, Any], now: float) -> LedgerState:
        fields = empty_ledger(now).to_json() | {
            k: v for k, v in data.items() if k in LedgerState.__dataclass_fields__
        }
        state = LedgerState(**fields)
        if state.month != month_key(now):
            past = {**state.past_months, state.month: state.month_requests}
            state = state.replace(
                month=month_key(now),
                month_requests=0,
                by_script={},
                past_months=past,
                day_requests={},
            )
        if state.hour != hour_key(now):
            state = state.replace(hour=hour_key(now), hour_requests=0)
        if state.blocked_until and parse_iso(state.blocked_until) <= now:
            state = state.replace(blocked_until=None, blocked_reason=None)
        return state

    def _save(self, state: LedgerState, now: float) -> None:
        body = json.dumps(state.replace(updated_at=utc_iso(now)).to_json(), indent=2,
                          allow_nan=False, sort_keys=False) + "\n"  # fmt: skip
        atomic_write_bytes(self.path, body.encode())

    def record_attempt(self, script: str, budget: int | None, keep: int = 0) -> int:
        """Count one HTTP attempt before it is sent; refuse it if the budget is spent.

        `keep` calls of the budget stay for others (a backfill leaves the regular snapshots
        the calls they need until the month ends).

        Raises:
            BudgetExceeded: the month's count reached the budget (less what is kept).
        """
        with locked(self.lock_path):
            now = clock.now()
            state = self.load(now)
            if budget is not None and state.month_requests >= budget - keep:
                kept = f", {keep} of them kept for the regular snapshots" if keep else ""
                raise BudgetExceeded(
                    f"monthly budget of {budget} requests used up{kept} "
                    f"({state.month_requests} made this month); "
                    f"resets {utc_iso(next_month_start(now))}"
                )
            day = day_key(now)
            state = state.replace(
                month_requests=state.month_requests + 1,
                hour_requests=state.hour_requests + 1,
                by_script={**state.by_script, script: state.by_script.get(script, 0) + 1},
                day_requests={**state.day_requests, day: state.day_requests.get(day, 0) + 1},
            )
            self._save(state, now)
            return state.month_requests

    def check_can_run(
        self, calls: int, attempts_per_call: int, budget: int | None, force: bool
    ) -> LedgerState:
        """Refuse before any request: quota block (78) or no room for the worst case (75).

        The worst case is every call using all its retries; a run that could not afford it
        makes no request at all, so the budget holds even in a 5xx storm.
        """
        now = clock.now()
        state = self.load(now)
        if state.blocked_until and not force:
            raise QuotaBlocked(
                f"API quota blocked until {state.blocked_until} "
                f"({state.blocked_reason or 'HTTP 402'})"
            )
        worst_case = calls * attempts_per_call
        if budget is not None and state.month_requests + worst_case > budget:
            raise BudgetExceeded(
                f"request budget exhausted: {state.month_requests} of {budget} calls used this "
                f"month, this run may need up to {worst_case} ({calls} requests, each with up to "
                f"{attempts_per_call - 1} retries); the budget resets "
                f"{utc_iso(next_month_start(now))}"
            )
        return state

    def mark_blocked(self, reason: str) -> str:
        """After a quota 402: block every run until the month resets."""
        with locked(self.lock_path):
            now = clock.now()
            until = utc_iso(next_month_start(now))
            self._save(self.load(now).replace(blocked_until=until, blocked_reason=reason), now)
        log.warning("ledger: quota blocked until %s (%s)", until, reason)
        return until

    def clear_block(self) -> None:
        with locked(self.lock_path):
            now = clock.now()
            state = self.load(now)
            if state.blocked_until:
                self._save(state.replace(blocked_until=None, blocked_reason=None), now)


@dataclass(frozen=True)
class BudgetPlan:
    """A cadence's cost against the monthly budget (03 --plan, and one log line per run)."""

    every_min: int
    calls_per_snapshot: int
    days_in_month: int
    calls_needed_full_month: int
    calls_used_this_month: int
    calls_needed_rest_of_month: int
    monthly_budget: int | None
    fits: bool
    fits_rest_of_month: bool
    fastest_cadence_min: int | None


def budget_plan(config: Config, used: int, at: float | None = None) -> BudgetPlan:
    """Budget maths for a cadence: calls this month vs the budget, and the fastest cadence."""
    at = clock.now() if at is None else at
    start, end = month_start(at), next_month_start(at)
    month_minutes = (end - start) / 60
    left_minutes = max(0.0, (end - at) / 60)
    per_month = math.ceil(month_minutes / config.every_min) * CALLS_PER_SNAPSHOT
    rest = math.ceil(left_minutes / config.every_min) * CALLS_PER_SNAPSHOT
    budget = config.monthly_budget
    fastest = None
    if budget is not None:
        fastest = next(
            (
                m
                for m in range(API_REFRESH_MIN, 24 * 60 + 1)
                if math.ceil(month_minutes / m) * CALLS_PER_SNAPSHOT <= budget
            ),
            None,
        )
    return BudgetPlan(
        every_min=config.every_min,
        calls_per_snapshot=CALLS_PER_SNAPSHOT,
        days_in_month=round(month_minutes / 1440),
        calls_needed_full_month=per_month,
        calls_used_this_month=used,
        calls_needed_rest_of_month=rest,
        monthly_budget=budget,
        fits=budget is None or per_month <= budget,
        fits_rest_of_month=budget is None or used + rest <= budget,
        fastest_cadence_min=fastest,
    )


def log_budget_plan(config: Config, used: int) -> BudgetPlan:
    """The budget maths for this run's cadence, as one log line; returns the figures."""
    plan = budget_plan(config, used)
    log.info(
        "budget plan: every %d min needs %d calls/month (%d left this month, %d used) "
        "of budget %s; fastest cadence that fits: %s min",
        plan.every_min,
        plan.calls_needed_full_month,
        plan.calls_needed_rest_of_month,
        used,
        plan.monthly_budget,
        plan.fastest_cadence_min,
    )
    return plan
