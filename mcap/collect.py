"""The snapshot pipeline shared by 02, 03 and 04, and the coin-catalogue pipeline of 01."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import FREE_PLAN_TICKER_CAP, Config
from .errors import CollectorError, ExitCode, Interrupted, LocalStateError, WriteError
from .fsio import check_free_space, commit_temp, crash_point, discard_temp, write_temp
from .history import (
    GAPS_NAME,
    HISTORY_DIR,
    HISTORY_NAME,
    SNAPSHOTS_NAME,
    STATE_NAME,
    Commit,
    Diff,
    HistoryStore,
)
from .ledger import RequestLedger, next_month_start, parse_iso
from .logsetup import utc_iso
from .runner import (
    GUARD,
    STATS_NAME,
    RunContext,
    api_client,
    clean_orphans,
    error_line,
    fetch_and_quarantine,
    is_production,
    prepare_out_dir,
    run_lock,
)
from .snapshot import (
    csv_bytes,
    dumps,
    encode_coins,
    flatten_line_breaks,
    history_bytes,
    safe_text_cell,
    snapshot_json_bytes,
    snapshot_jsonl_bytes,
)
from .validate import (
    Validated,
    check_shrink,
    rank_sort_key,
    validate_coins,
    validate_global,
    validate_tickers,
)

log = logging.getLogger(__name__)

SNAPSHOT_JSON = "market_cap_snapshot.json"
SNAPSHOT_JSONL = "market_cap_snapshot.jsonl"
SNAPSHOT_CSV = "market_cap_snapshot.csv"
COINS_JSON = "coins_metadata.json"
COINS_LIST = "coins_list.txt"
CALLS_PER_SNAPSHOT = 2  # one /tickers + one /global: /tickers has no pagination
API_REFRESH_MIN = 5


def snapshot_id_for(collected_at: str) -> str:
    return collected_at.replace("-", "").replace(":", "")


def expected_coin_count(config: Config, global_data: dict[str, Any]) -> int | None:
    """What the plan should return: all active coins, capped at 2,000 on the free plan."""
    active = global_data.get("cryptocurrencies_number")
    if not isinstance(active, int | float) or active <= 0:
        return FREE_PLAN_TICKER_CAP if config.plan == "free" else None
    return min(FREE_PLAN_TICKER_CAP, int(active)) if config.plan == "free" else int(active)


def _replace_files(
    ctx: RunContext,
    bodies: dict[Path, bytes],
    commit: Callable[[], bool] | None = None,
    extra_bytes: int = 0,
) -> bool:
    """Write every body to a temp file first; then (optionally) commit history, then rename.

    Any failure before the commit leaves every target as it was. After the commit a
    failed rename is only a warning: the history holds the snapshot, and the next run
    rewrites the snapshot files (it sees they are older than the history).

    Raises:
        WriteError: not enough free space (checked first), or the disk refused a write.
    """
    check_free_space(next(iter(bodies)).parent, sum(map(len, bodies.values())) + extra_bytes)
    temps: dict[Path, Path] = {}
    try:
        for path, body in bodies.items():
            temps[path] = write_temp(path, body)
        with GUARD.critical():
            if commit is not None:
                if not commit():
                    return False
                ctx.committed = True
            for path, tmp in temps.items():
                try:
                    commit_temp(tmp, path)
                except WriteError as exc:
                    if not ctx.committed:
                        raise
                    ctx.warn(f"{path.name} not replaced ({exc}); the next run rewrites it")
        return True
    finally:
        for tmp in temps.values():
            if tmp.exists():
                discard_temp(tmp)


SNAPSHOT_FILES = (SNAPSHOT_JSON, SNAPSHOT_JSONL, SNAPSHOT_CSV)
HISTORY_FILES = tuple(
    f"{HISTORY_DIR}/{name}" for name in (HISTORY_NAME, SNAPSHOTS_NAME, GAPS_NAME, STATE_NAME)
)


def collect_snapshot(ctx: RunContext) -> int:
    """One snapshot: /tickers + /global, validated, written, appended to history once."""
    prepare_out_dir(ctx, files=SNAPSHOT_FILES + HISTORY_FILES, dirs=(HISTORY_DIR,))
    with run_lock(ctx):
        try:
            return _collect_locked(ctx)
        except Interrupted:
            raise  # a stopped run leaves every file as before it (CONTRACT 130/143)
        except Exception as exc:
            if is_production(ctx) and not ctx.committed:
                record_failed_run(ctx, exc)
            raise


def _collect_locked(ctx: RunContext) -> int:
    config, stats = ctx.config, ctx.stats
    store = HistoryStore(config.out_dir)
    clean_orphans(config.out_dir, (*SNAPSHOT_FILES, STATS_NAME))
    clean_orphans(store.dir, None)  # only collectors, under this run lock, write history/
    if is_production(ctx):
        stats.archived_months = store.compact_closed_months()
    state = store.prepare()
    stats.last_success_at = state["last_ts"]
    check_clock(state["last_ts"], store)
    log_budget_plan(ctx)
    files_current = snapshot_files_current(config.out_dir, state["last_snapshot_id"])
    if config.min_interval_s and state["last_ts"] and files_current:
        age = time.time() - parse_iso(state["last_ts"])
        if age < config.min_interval_s:
            return ctx.skip(
                f"last snapshot {state['last_ts']} is {age / 60:.1f} min old, younger than "
                f"--min-interval {config.min_interval_s / 60:g} min; no request made"
            )
    ledger = RequestLedger(config.out_dir)
    ledger.check_can_run(
        CALLS_PER_SNAPSHOT, config.max_attempts, config.monthly_budget, config.force
    )
    client = api_client(ctx, ledger)
    try:
        ctx.say(f"Fetching /tickers (quotes {','.join(config.quotes)}) from {config.base_url} …")

        def fetch_tickers() -> Validated:
            payload = client.get_json("/tickers", {"quotes": ",".join(config.quotes)})
            tickers = validate_tickers(payload, config.quotes)
            # Checked before /global: a refused payload costs no second request.
            check_shrink(
                "/tickers", len(tickers.rows), state["last_coin_count"], config.accept_shrink
            )
            return tickers

        tickers = fetch_and_quarantine(ctx, client, fetch_tickers)
        ctx.say(f"  {len(tickers.rows):,} coins received; fetching /global …")
        global_data = fetch_and_quarantine(
            ctx, client, lambda: validate_global(client.get_json("/global"))
        )
    finally:
        client.close()
    crash_point("run.after_fetch")
    coins = sorted(tickers.rows, key=rank_sort_key)
    stats.coin_count = len(coins)
    stats.expected_count = expected_coin_count(config, global_data)
    stats.duplicates_dropped = tickers.duplicates_dropped
    return _commit_snapshot(ctx, store, state, coins, global_data, ledger, files_current)


def check_clock(last_ts: str | None, store: HistoryStore) -> None:
    """A last snapshot later than now means the clock moved back or the history was copied.

    Left alone, every later run would skip (too young) or be refused (not newer): collection
    would stop in silence. It is a failure instead, found before any request.

    Raises:
        LocalStateError: the history's last snapshot lies in the future (74).
    """
    if last_ts is None:
        return
    ahead = parse_iso(last_ts) - time.time()
    if ahead > 0:
        raise LocalStateError(
            f"the last committed snapshot {last_ts} in {store.dir} lies {ahead / 60:.1f} min "
            f"in the future of this machine's clock ({utc_iso()}); no request was made",
            hint="fix the system clock (or use an output directory of this machine); "
            "collection resumes once the clock is past that time",
        )


def snapshot_files_current(out_dir: Path, last_snapshot_id: str | None) -> bool:
    """Whether market_cap_snapshot.json shows the history's last snapshot.

    False after a run whose renames failed past its commit point: the next run then
    fetches again instead of skipping, and so rewrites the files.
    """
    if last_snapshot_id is None:
        return True
    try:
        with open(out_dir / SNAPSHOT_JSON, "rb") as handle:
            head = handle.read(200)
    except OSError:
        return False
    found = re.search(rb'"snapshot_id":"([0-9TZ]+)"', head)
    current = found is not None and found.group(1).decode() == last_snapshot_id
    if not current:
        log.warning("snapshot files are older than the history: this run rewrites them")
    return current


def _commit_snapshot(
    ctx: RunContext,
    store: HistoryStore,
    state: dict[str, Any],
    coins: list[dict[str, Any]],
    global_data: dict[str, Any],
    ledger: RequestLedger,
    files_current: bool = True,
) -> int:
    """Skip unchanged data; otherwise write the three files and the history as one commit."""
    config, stats = ctx.config, ctx.stats
    collected_at = utc_iso()
    snapshot_id = snapshot_id_for(collected_at)
    last_updated = {coin["id"]: coin.get("last_updated") for coin in coins}
    missing = sum(1 for stamp in last_updated.values() if not (isinstance(stamp, str) and stamp))
    if missing:
        log.warning(
            "%d coin(s) have no last_updated; they count as changed (%s…)",
            missing,
            next(i for i, stamp in last_updated.items() if not (isinstance(stamp, str) and stamp)),
        )
    diff = store.diff(state, last_updated)
    stats.appeared, stats.disappeared = len(diff.appeared), len(diff.disappeared)
    if (
        diff.previous_ts
        and files_current
        and not (diff.changed or diff.appeared or diff.disappeared)
    ):
        return ctx.skip(
            f"data unchanged since snapshot {diff.previous_ts} (every last_updated "
            "is the same); nothing committed"
        )
    if snapshot_id == state["last_snapshot_id"]:
        return ctx.skip(f"a snapshot was already committed in second {snapshot_id}")
    rows = history_bytes(coins, collected_at, config.quotes)
    summary = _snapshots_line(ctx, collected_at, snapshot_id, coins, global_data, diff)
    bodies = _snapshot_files(ctx, collected_at, snapshot_id, coins, global_data)
    commit = Commit(collected_at, snapshot_id, rows, len(coins), last_updated, summary)
    if not _replace_files(ctx, bodies, lambda: store.commit(commit), extra_bytes=len(rows)):
        return ctx.skip(f"snapshot {collected_at} was already in the history")
    stats.snapshot_id, stats.collected_at = snapshot_id, collected_at
    stats.history_rows_appended, stats.history_bytes_appended = len(coins), len(rows)
    stats.history_snapshot_count = state["snapshot_count"] + 1
    stats.last_success_at = collected_at
    stats.files = {path.name: len(body) for path, body in bodies.items()}
    after_commit(ctx, "clearing the quota block", config.force and ledger.clear_block)
    if is_production(ctx) and diff.previous_ts:
        after_commit(
            ctx,
            "recording a gap",
            lambda: record_gap_if_any(ctx, store, diff.previous_ts, collected_at),
        )
    if stats.expected_count and len(coins) < 0.9 * stats.expected_count:
        log.warning(
            "coverage: %d coins received, %d expected on the %s plan",
            len(coins),
            stats.expected_count,
            config.plan,
        )
    log.info(
        "committed snapshot %s: %d coins (expected %s), %d history bytes",
        snapshot_id,
        len(coins),
        stats.expected_count,
        len(rows),
    )
    after_commit(ctx, "printing the summary", lambda: print_summary(ctx, coins, global_data))
    return ExitCode.OK


def after_commit(ctx: RunContext, doing: str, step: Callable[[], object] | bool) -> None:
    """Run a step past the commit point: a failure is a warning, never the run's outcome."""
    if not callable(step):
        return
    try:
        step()
    except Exception as exc:  # noqa: BLE001 - past the commit point nothing fails the run
        ctx.warn(f"{doing} failed after the snapshot was committed: {exc}")
        if not isinstance(exc, CollectorError | OSError):
            log.warning("traceback of the above", exc_info=exc)


def _snapshots_line(
    ctx: RunContext,
    collected_at: str,
    snapshot_id: str,
    coins: list[dict[str, Any]],
    global_data: dict[str, Any],
    diff: Diff,
) -> dict[str, Any]:
    """The history/snapshots.jsonl line for this snapshot."""
    config, stats = ctx.config, ctx.stats
    return {
        "ts": collected_at,
        "snapshot_id": snapshot_id,
        "coin_count": len(coins),
        "expected_count": stats.expected_count,
        "market_cap_usd": global_data.get("market_cap_usd"),
        "requests": ctx.counter.attempts,
        "retries": ctx.counter.retries,
        "appeared": len(diff.appeared),
        "disappeared": len(diff.disappeared),
        "appeared_ids": diff.appeared,
        "disappeared_ids": diff.disappeared,
        "changed": diff.changed,
        "data_changed": True,
        "duplicates_dropped": stats.duplicates_dropped,
        "previous_ts": diff.previous_ts,
        "quotes": list(config.quotes),
        "plan": config.plan,
        "script": config.script,
    }


def _snapshot_files(
    ctx: RunContext,
    collected_at: str,
    snapshot_id: str,
    coins: list[dict[str, Any]],
    global_data: dict[str, Any],
) -> dict[Path, bytes]:
    """market_cap_snapshot.json / .jsonl / .csv, serialised (CONTRACT "Files")."""
    config, stats = ctx.config, ctx.stats
    header = {
        "snapshot_id": snapshot_id,
        "collected_at": collected_at,
        "source": config.base_url,
        "quotes": list(config.quotes),
        "plan": config.plan,
        "expected_count": stats.expected_count,
        "duplicates_dropped": stats.duplicates_dropped,
        "global": global_data,
    }
    encoded = encode_coins(coins)
    return {
        config.out_dir / SNAPSHOT_JSON: snapshot_json_bytes(header, encoded),
        config.out_dir / SNAPSHOT_JSONL: snapshot_jsonl_bytes(encoded, collected_at),
        config.out_dir / SNAPSHOT_CSV: csv_bytes(coins, config.quotes, collected_at),
    }


def record_gap_if_any(ctx: RunContext, store: HistoryStore, previous: str, current: str) -> None:
    """A missed-slot record when more than one cadence passed without a snapshot."""
    step = ctx.config.every_min * 60
    delta = parse_iso(current) - parse_iso(previous)
    if delta <= 1.5 * step:
        return
    failed = sum(
        1
        for record in store.recent_gap_records()
        if record.get("type") == "failed_run" and str(record.get("at", "")) > previous
    )
    store.record_gap(
        {
            "type": "gap",
            "from": previous,
            "to": current,
            "missing_slots": max(1, round(delta / step) - 1),
            "failed_runs": failed,
            "reason": f"{failed} failed run(s)"
            if failed
            else "no run recorded (machine off, cron stopped, lock busy or data unchanged)",
        }
    )


def record_failed_run(ctx: RunContext, exc: Exception) -> None:
    """04 only: a failed run is listed in history/gaps.jsonl so a missing slot has a reason."""
    code, error = error_line(ctx, exc)
    record = {"type": "failed_run", "at": ctx.stats.started_at, "exit_code": code, "error": error}
    try:
        HistoryStore(ctx.config.out_dir).record_gap(record)
    except (WriteError, LocalStateError, OSError) as write_exc:
        log.warning("could not record the failed run in gaps.jsonl: %s", write_exc)


def amount(value: Any) -> str:
    """A whole amount with thousands separators, for any number the API can send."""
    if type(value) is int:
        return f"{value:,}"
    if type(value) is float:
        return f"{value:,.0f}"
    return "n/a"


def print_summary(
    ctx: RunContext, coins: list[dict[str, Any]], global_data: dict[str, Any]
) -> None:
    stats, config = ctx.stats, ctx.config
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
    ctx.say(f"Global market cap: ${amount(global_data.get('market_cap_usd'))}")
    ctx.say(f"Top 10 by market cap ({quote}):")
    for place, coin in enumerate(sorted(coins, key=by_cap, reverse=True)[:10], 1):
        ctx.say(
            f"  {place:2d}. {safe_text_cell(coin.get('name'))[:30]:30s} "
            f"{safe_text_cell(coin.get('symbol'))[:10]:10s} {amount(cap(coin)):>22}"
        )
    budget = f" of {config.monthly_budget:,}" if config.monthly_budget is not None else ""
    month = RequestLedger(config.out_dir).load()["month_requests"]
    ctx.say(
        f"Requests: {ctx.counter.attempts} this run ({ctx.counter.retries} retries), "
        f"{month:,}{budget} this month"
    )
    ctx.say(
        f"History: appeared {stats.appeared}, disappeared {stats.disappeared}; "
        f"time {time.monotonic() - ctx.started_mono:.2f}s; files in {config.out_dir}"
    )


def budget_plan(config: Config, used: int, now: float | None = None) -> dict[str, Any]:
    """Budget maths for a cadence: calls this month vs the budget, and the fastest cadence."""
    now = time.time() if now is None else now
    start = parse_iso(time.strftime("%Y-%m-01T00:00:00Z", time.gmtime(now)))
    end = parse_iso(next_month_start(now))
    month_minutes = (end - start) / 60
    left_minutes = max(0.0, (end - now) / 60)
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


def log_budget_plan(ctx: RunContext) -> dict[str, Any]:
    used = RequestLedger(ctx.config.out_dir).load()["month_requests"]
    plan = budget_plan(ctx.config, used)
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


def show_budget_plan(ctx: RunContext) -> int:
    """03 --plan: the schedule's cost against the budget, without any request."""
    prepare_out_dir(ctx)
    plan = log_budget_plan(ctx)
    budget = plan["monthly_budget"]
    ctx.say(
        f"Cadence: every {plan['every_min']} min × {CALLS_PER_SNAPSHOT} calls per snapshot "
        "(/tickers + /global)"
    )
    ctx.say(
        f"Needs {plan['calls_needed_full_month']:,} calls in a {plan['days_in_month']}-day "
        f"month; budget {'unlimited' if budget is None else f'{budget:,}'}: "
        f"{'fits' if plan['fits'] else 'DOES NOT FIT'}"
    )
    ctx.say(
        f"This month: {plan['calls_used_this_month']:,} used, "
        f"{plan['calls_needed_rest_of_month']:,} more needed until the month ends: "
        f"{'fits' if plan['fits_rest_of_month'] else 'DOES NOT FIT'}"
    )
    if plan["fastest_cadence_min"] is not None:
        ctx.say(
            f"Fastest cadence that fits the budget: every {plan['fastest_cadence_min']} min "
            f"(the API refreshes about every {API_REFRESH_MIN} min)"
        )
    return ExitCode.OK


# --- 01: the coin catalogue --------------------------------------------------------------------


def fetch_coin_catalogue(ctx: RunContext) -> int:
    """/coins once; coins_metadata.json and coins_list.txt replaced together."""
    prepare_out_dir(ctx, files=(COINS_JSON, COINS_LIST))
    config = ctx.config
    with run_lock(ctx, ".coins.lock"):
        clean_orphans(config.out_dir, (COINS_JSON, COINS_LIST))
        ledger = RequestLedger(config.out_dir)
        ledger.check_can_run(1, config.max_attempts, config.monthly_budget, config.force)
        client = api_client(ctx, ledger)
        try:
            ctx.say(f"Fetching /coins from {config.base_url} …")
            catalogue = fetch_and_quarantine(
                ctx, client, lambda: validate_coins(client.get_json("/coins"))
            )
        finally:
            client.close()
        coins = catalogue.rows
        check_shrink(
            "/coins", len(coins), _previous_coin_count(config.out_dir), config.accept_shrink
        )
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
        _replace_files(
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
        ctx.say(
            f"Coins: {len(coins):,} ({active:,} active"
            + (
                f", {catalogue.duplicates_dropped} duplicate rows dropped"
                if catalogue.duplicates_dropped
                else ""
            )
            + ")"
        )
        ctx.say(
            f"Requests: {ctx.counter.attempts} ({ctx.counter.retries} retries); "
            f"written {COINS_JSON} and {COINS_LIST} in {config.out_dir}"
        )
        return ExitCode.OK


def _previous_coin_count(out_dir: Path) -> int | None:
    """coin_count of the previous catalogue, read from the head of the file (no full parse)."""
    try:
        with open(out_dir / COINS_JSON, "rb") as handle:
            head = handle.read(4096)
    except FileNotFoundError:
        return None
    found = re.search(rb'"coin_count":\s*(\d+)', head)
    return int(found.group(1)) if found else None
