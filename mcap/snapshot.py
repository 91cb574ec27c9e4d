"""One snapshot and its rules: what changed, whether to skip, what the files and lines hold.

Pure functions of their arguments (no files, no HTTP, no clock of their own), so each rule is
tested on its own (tests/test_snapshot.py). The collection pipeline (collect.py) feeds them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .clock import compact_id, parse_iso
from .formats import (
    csv_bytes,
    encode_coins,
    history_bytes,
    snapshot_json_bytes,
    snapshot_jsonl_bytes,
)
from .settings import FREE_PLAN_TICKER_CAP
from .validate import rank_sort_key

SNAPSHOT_JSON = "market_cap_snapshot.json"
SNAPSHOT_JSONL = "market_cap_snapshot.jsonl"
SNAPSHOT_CSV = "market_cap_snapshot.csv"
SNAPSHOT_FILES = (SNAPSHOT_JSON, SNAPSHOT_JSONL, SNAPSHOT_CSV)
COVERAGE_WARNING = 0.9  # fewer coins than this share of the expected count: a warning


@dataclass(frozen=True)
class Diff:
    """What changed since the last committed snapshot."""

    appeared: list[str]
    disappeared: list[str]
    changed: int
    previous_ts: str | None


def diff_snapshots(
    previous_ts: str | None, previous: Mapping[str, Any], last_updated: Mapping[str, Any]
) -> Diff:
    """Coins that appeared, disappeared or changed since the last committed snapshot.

    A coin counts as unchanged only when both snapshots carry the same `last_updated`
    text; a missing, null or empty one always counts as changed.
    """
    if previous_ts is None:
        return Diff([], [], len(last_updated), None)
    appeared = [i for i in last_updated if i not in previous]
    disappeared = [i for i in previous if i not in last_updated]
    changed = sum(
        1
        for i, stamp in last_updated.items()
        if not (isinstance(stamp, str) and stamp and previous.get(i) == stamp)
    )
    return Diff(appeared, disappeared, changed, previous_ts)


@dataclass(frozen=True)
class Snapshot:
    """What a collector run fetched, checked and is about to write and commit."""

    collected_at: str
    coins: list[dict[str, Any]]  # ticker objects as the API gave them, in rank order
    global_data: dict[str, Any]
    expected_count: int | None
    duplicates_dropped: int
    last_updated: dict[str, Any] = field(repr=False)  # id → last_updated, for change detection
    diff: Diff

    @property
    def snapshot_id(self) -> str:
        return compact_id(self.collected_at)

    @property
    def short(self) -> bool:
        """Fewer coins than the plan should return (a coverage warning, not a failure)."""
        expected = self.expected_count
        return bool(expected) and len(self.coins) < COVERAGE_WARNING * expected


def build_snapshot(
    collected_at: str,
    rows: list[dict[str, Any]],
    global_data: dict[str, Any],
    duplicates_dropped: int,
    plan: str,
    previous_ts: str | None,
    previous_last_updated: Mapping[str, Any],
) -> Snapshot:
    """The validated rows in rank order, with what changed since the last snapshot."""
    coins = sorted(rows, key=rank_sort_key)
    last_updated = {coin["id"]: coin.get("last_updated") for coin in coins}
    return Snapshot(
        collected_at=collected_at,
        coins=coins,
        global_data=global_data,
        expected_count=expected_coin_count(plan, global_data),
        duplicates_dropped=duplicates_dropped,
        last_updated=last_updated,
        diff=diff_snapshots(previous_ts, previous_last_updated, last_updated),
    )


def expected_coin_count(plan: str, global_data: Mapping[str, Any]) -> int | None:
    """What the plan should return: all active coins, capped at 2,000 on the free plan."""
    active = global_data.get("cryptocurrencies_number")
    if not isinstance(active, int | float) or active <= 0:
        return FREE_PLAN_TICKER_CAP if plan == "free" else None
    return min(FREE_PLAN_TICKER_CAP, int(active)) if plan == "free" else int(active)


def missing_last_updated(last_updated: Mapping[str, Any]) -> list[str]:
    """Ids whose `last_updated` is missing, null or empty (they count as changed)."""
    return [i for i, stamp in last_updated.items() if not (isinstance(stamp, str) and stamp)]


def too_soon(min_interval_s: float, last_ts: str | None, now: float) -> str | None:
    """The skip reason when the last snapshot is younger than --min-interval."""
    if not min_interval_s or not last_ts:
        return None
    age = now - parse_iso(last_ts)
    if age >= min_interval_s:
        return None
    return (
        f"last snapshot {last_ts} is {age / 60:.1f} min old, younger than "
        f"--min-interval {min_interval_s / 60:g} min; no request made"
    )


def unchanged(diff: Diff) -> str | None:
    """The skip reason when every coin's last_updated equals the last committed snapshot's."""
    if diff.previous_ts and not (diff.changed or diff.appeared or diff.disappeared):
        return (
            f"data unchanged since snapshot {diff.previous_ts} (every last_updated "
            "is the same); nothing committed"
        )
    return None


def coins_market_cap_usd(coins: list[dict[str, Any]], quotes: tuple[str, ...]) -> Any:
    """The sum of the collected coins' USD market caps (None without a USD quote)."""
    if "USD" not in quotes:
        return None
    caps = (((coin.get("quotes") or {}).get("USD") or {}).get("market_cap") for coin in coins)
    total = sum(cap for cap in caps if type(cap) in (int, float))
    return total if not isinstance(total, float) or math.isfinite(total) else None


@dataclass(frozen=True)
class RunFacts:
    """What the run contributes to the files beside the snapshot itself."""

    source: str  # the base URL, never the key
    quotes: tuple[str, ...]
    plan: str
    script: str
    requests: int = 0
    retries: int = 0


def snapshots_line(snapshot: Snapshot, facts: RunFacts) -> dict[str, Any]:
    """The history/snapshots.jsonl line for this snapshot."""
    diff = snapshot.diff
    return {
        "ts": snapshot.collected_at,
        "snapshot_id": snapshot.snapshot_id,
        "coin_count": len(snapshot.coins),
        "expected_count": snapshot.expected_count,
        "market_cap_usd": snapshot.global_data.get("market_cap_usd"),
        "coins_market_cap_usd": coins_market_cap_usd(snapshot.coins, facts.quotes),
        "requests": facts.requests,
        "retries": facts.retries,
        "appeared": len(diff.appeared),
        "disappeared": len(diff.disappeared),
        "appeared_ids": diff.appeared,
        "disappeared_ids": diff.disappeared,
        "changed": diff.changed,
        "data_changed": True,
        "duplicates_dropped": snapshot.duplicates_dropped,
        "previous_ts": diff.previous_ts,
        "quotes": list(facts.quotes),
        "plan": facts.plan,
        "script": facts.script,
    }


def snapshot_file_bodies(snapshot: Snapshot, facts: RunFacts) -> dict[str, bytes]:
    """market_cap_snapshot.json / .jsonl / .csv by name, serialised."""
    header = {
        "snapshot_id": snapshot.snapshot_id,
        "collected_at": snapshot.collected_at,
        "source": facts.source,
        "quotes": list(facts.quotes),
        "plan": facts.plan,
        "expected_count": snapshot.expected_count,
        "duplicates_dropped": snapshot.duplicates_dropped,
        "global": snapshot.global_data,
    }
    encoded = encode_coins(snapshot.coins)
    stamp = snapshot.collected_at
    return {
        SNAPSHOT_JSON: snapshot_json_bytes(header, encoded),
        SNAPSHOT_JSONL: snapshot_jsonl_bytes(encoded, stamp),
        SNAPSHOT_CSV: csv_bytes(snapshot.coins, facts.quotes, stamp),
    }


def history_rows(snapshot: Snapshot, quotes: tuple[str, ...]) -> bytes:
    """The snapshot's lines for history/market_cap_history.jsonl."""
    return history_bytes(snapshot.coins, snapshot.collected_at, quotes)
