"""What a person reads after a run: the summary of a snapshot or of the catalogue."""

from __future__ import annotations

from typing import Any

from .context import RunContext
from .formats import safe_text_cell
from .ledger import RequestLedger
from .snapshot import Snapshot
from .validate import Validated


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
    if config.quiet:
        return  # nothing would be printed: not even the top 10's sort is needed
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
    month = RequestLedger(config.out_dir).load().month_requests
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
