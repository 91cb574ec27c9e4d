"""The options of the scripts that ask /tickers/{id}/historical: 05's request (what to fill,
how fast) and 03/04's gap repair (--no-repair), with the plan's tier both use."""

from __future__ import annotations

import argparse
from typing import Any

from .option_types import interval_text, positive_float, positive_int, request_rate, tier_text
from .plans import TIERS
from .settings import BACKFILL_RATE, EVERY_MIN, MAX_RATE, BackfillRequest, ScriptProfile


def add_historical_options(parser: argparse.ArgumentParser, profile: ScriptProfile) -> None:
    """05's request, 03/04's gap repair: what /tickers/{id}/historical is asked for."""
    add = parser.add_argument
    add(
        "--tier",
        type=tier_text,
        default=None,
        metavar="TIER",
        help=f"your plan ({', '.join(TIERS)}): how far back the historical endpoint reaches "
        "(default free without an API key, starter with one; a refusal narrows it)",
    )
    if profile.repairs_gaps:
        add(
            "--no-repair",
            action="store_true",
            help="do not refill missed slots from the historical endpoint after a snapshot",
        )
        return
    add(
        "--interval",
        type=interval_text,
        default=BackfillRequest.interval,
        metavar="I",
        help="points every I: 1d (default), 1h, 30m, 5m … as far as the plan allows",
    )
    add(
        "--days",
        type=positive_float,
        default=None,
        metavar="N",
        help="fill the last N days (default: as far back as the plan's window for --interval "
        "goes: 365 days of daily points on the free plan, 5 years on Starter, all on Pro)",
    )
    add(
        "--coins",
        default=None,
        metavar="SPEC",
        help="top:N, a comma list of coin ids, or catalogue (every coin of "
        "coins_metadata.json, dead ones too); default: the coins of the latest snapshot",
    )
    add(
        "--max-calls",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop after N calls (exit 75; the next run continues)",
    )
    add(
        "--rate",
        type=request_rate,
        default=BACKFILL_RATE,
        metavar="R",
        help=f"requests a second, at most {MAX_RATE:g} (default {BACKFILL_RATE:g})",
    )
    _add_cadence(add)


def _add_cadence(add: Any) -> None:
    add(
        "--every",
        type=positive_int,
        default=EVERY_MIN,
        metavar="MINUTES",
        help="the cron cadence of the snapshots, whose calls until the month ends are never "
        f"spent (default {EVERY_MIN})",
    )


def backfill_request(args: argparse.Namespace) -> BackfillRequest:
    return BackfillRequest(
        interval=args.interval,
        days=args.days,
        coins=args.coins,
        max_calls=args.max_calls,
        rate=args.rate,
    )
