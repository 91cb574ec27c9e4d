"""The catalogue pipeline of 01: /coins once, coins_metadata.json and coins_list.txt replaced
together, under the lock the runner holds."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from .client import ApiClient
from .clock import utc_iso
from .context import RunContext
from .errors import ExitCode
from .formats import flatten_line_breaks
from .jsonio import dumps
from .ledger import RequestLedger
from .publish import check_targets, clean_orphans, publish
from .rejected import fetch_validated
from .report import print_catalogue_summary
from .validate import check_shrink, validate_coins

log = logging.getLogger(__name__)

COINS_JSON = "coins_metadata.json"
COINS_LIST = "coins_list.txt"


def fetch_catalogue(ctx: RunContext) -> int:
    """/coins once; coins_metadata.json and coins_list.txt replaced together."""
    config = ctx.config
    check_targets(config.out_dir, (COINS_JSON, COINS_LIST))
    clean_orphans(config.out_dir, (COINS_JSON, COINS_LIST))
    ledger = RequestLedger(config.out_dir)
    ledger.check_can_run(1, config.max_attempts, config.monthly_budget, config.force)
    client = ApiClient(config, ledger, ctx.deadline, ctx.counter, on_retry=ctx.progress)
    try:
        ctx.say(f"Fetching /coins from {config.base_url} …")
        catalogue = fetch_validated(config.out_dir, client, "/coins", validate_coins)
    finally:
        client.close()
    coins = catalogue.rows
    check_shrink("/coins", len(coins), previous_coin_count(config.out_dir), config.accept_shrink)
    active = sum(1 for coin in coins if coin.get("is_active") is True)
    document = {
        "fetched_at": utc_iso(),
        "source": config.base_url,
        "coin_count": len(coins),
        "active_count": active,
        "duplicates_dropped": catalogue.duplicates_dropped,
        "coins": coins,
    }
    listing = "".join(flatten_line_breaks(coin["id"]) + "\n" for coin in coins)
    publish(
        ctx,
        {
            config.out_dir / COINS_JSON: (dumps(document) + "\n").encode(),
            config.out_dir / COINS_LIST: listing.encode(),
        },
    )
    ctx.stats.coin_count = len(coins)
    log.info(
        "coin catalogue: %d coins, %d active, %d duplicates dropped",
        len(coins),
        active,
        catalogue.duplicates_dropped,
    )
    print_catalogue_summary(ctx, catalogue, active, (COINS_JSON, COINS_LIST))
    return ExitCode.OK


def previous_coin_count(out_dir: Path) -> int | None:
    """coin_count of the previous catalogue, read from the head of the file (no full parse)."""
    try:
        with open(out_dir / COINS_JSON, "rb") as handle:
            head = handle.read(4096)
    except FileNotFoundError:
        return None
    found = re.search(rb'"coin_count":\s*(\d+)', head)
    return int(found.group(1)) if found else None
