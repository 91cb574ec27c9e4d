"""The request ledger: every HTTP attempt of every script sharing an output directory."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import clock
from .clock import hour_key, month_key, month_start, next_month_start, parse_iso, utc_iso
from .errors import BudgetExceeded, LocalStateError, QuotaBlocked
from .fsio import atomic_write_bytes, locked
from .settings import API_REFRESH_MIN, CALLS_PER_SNAPSHOT, Config

log = logging.getLogger(__name__)

LEDGER_NAME = "request_ledger.json"


def empty_ledger(now: float) -> dict[str, Any]:
    return {
        "month": month_key(now),
        "month_requests": 0,
        "hour": hour_key(now),
        "hour_requests": 0,
        "by_script": {},
        "past_months": {},
        "blocked_until": None,
        "blocked_reason": None,
        "updated_at": utc_iso(now),
    }


_COUNTS = ("month_requests", "hour_requests")
_TEXTS = ("month", "hour", "updated_at")
_TALLIES = ("by_script", "past_months")


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

    def load(self, now: float | None = None) -> dict[str, Any]:
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
    def _roll(data: dict[str, Any], now: float) -> dict[str, Any]:
        merged = empty_ledger(now) | data
        if merged["month"] != month_key(now):
            past = dict(merged.get("past_months") or {})
            past[merged["month"]] = merged["month_requests"]
            merged.update(month=month_key(now), month_requests=0, by_script={}, past_months=past)
        if merged["hour"] != hour_key(now):
            merged.update(hour=hour_key(now), hour_requests=0)
        until = merged.get("blocked_until")
        if until and parse_iso(until) <= now:
            merged.update(blocked_until=None, blocked_reason=None)
        return merged

    def _save(self, data: dict[str, Any], now: float) -> None:
        data["updated_at"] = utc_iso(now)
        body = json.dumps(data, indent=2, allow_nan=False, sort_keys=False) + "\n"
        atomic_write_bytes(self.path, body.encode())

    def record_attempt(self, script: str, budget: int | None) -> int:
        """Count one HTTP attempt before it is sent; refuse it if the budget is spent.

        Raises:
            BudgetExceeded: the month's count already reached the budget.
        """
        with locked(self.lock_path):
            now = clock.now()
            data = self.load(now)
            if budget is not None and data["month_requests"] >= budget:
                raise BudgetExceeded(
                    f"monthly budget of {budget} requests used up "
                    f"({data['month_requests']} made this month); "
                    f"resets {utc_iso(next_month_start(now))}"
                )
            data["month_requests"] += 1
            data["hour_requests"] += 1
            data["by_script"][script] = data["by_script"].get(script, 0) + 1
            self._save(data, now)
            return data["month_requests"]

    def check_can_run(
        self, calls: int, attempts_per_call: int, budget: int | None, force: bool
    ) -> dict[str, Any]:
        """Refuse before any request: quota block (78) or no room for the worst case (75).

        The worst case is every call using all its retries; a run that could not afford it
        makes no request at all, so the budget holds even in a 5xx storm.
        """
        now = clock.now()
        data = self.load(now)
        if data["blocked_until"] and not force:
            raise QuotaBlocked(
                f"API quota blocked until {data['blocked_until']} "
                f"({data.get('blocked_reason') or 'HTTP 402'})"
            )
        worst_case = calls * attempts_per_call
        if budget is not None and data["month_requests"] + worst_case > budget:
            raise BudgetExceeded(
                f"request budget exhausted: {data['month_requests']} of {budget} calls used this "
                f"month, this run may need up to {worst_case} ({calls} requests, each with up to "
                f"{attempts_per_call - 1} retries); the budget resets "
                f"{utc_iso(next_month_start(now))}"
            )
        return data

    def mark_blocked(self, reason: str) -> str:
        """After a quota 402: block every run until the month resets."""
        with locked(self.lock_path):
            now = clock.now()
            data = self.load(now)
            until = utc_iso(next_month_start(now))
            data.update(blocked_until=until, blocked_reason=reason)
            self._save(data, now)
        log.warning("ledger: quota blocked until %s (%s)", until, reason)
        return until

    def clear_block(self) -> None:
        with locked(self.lock_path):
            now = clock.now()
            data = self.load(now)
            if data.get("blocked_until"):
                data.update(blocked_until=None, blocked_reason=None)
                self._save(data, now)


def budget_plan(config: Config, used: int, at: float | None = None) -> dict[str, Any]:
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
    return {
        "every_min": config.every_min,
        "calls_per_snapshot": CALLS_PER_SNAPSHOT,
        "days_in_month": round(month_minutes / 1440),
        "calls_needed_full_month": per_month,
        "calls_used_this_month": used,
        "calls_needed_rest_of_month": rest,
        "monthly_budget": budget,
        "fits": budget is None or per_month <= budget,
        "fits_rest_of_month": budget is None or used + rest <= budget,
        "fastest_cadence_min": fastest,
    }


def log_budget_plan(config: Config, used: int) -> dict[str, Any]:
    """The budget maths for this run's cadence, as one log line; returns the figures."""
    plan = budget_plan(config, used)
    log.info(
        "budget plan: every %d min needs %d calls/month (%d left this month, %d used) "
        "of budget %s; fastest cadence that fits: %s min",
        plan["every_min"],
        plan["calls_needed_full_month"],
        plan["calls_needed_rest_of_month"],
        used,
        plan["monthly_budget"],
        plan["fastest_cadence_min"],
    )
    return plan
