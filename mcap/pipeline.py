"""The two pipelines, top to bottom: fetch → validate → write snapshot → commit history → report.

`collect_snapshot` is 02, 03 and 04 (their profiles say what else they do); `fetch_catalogue`
is 01. Both run under the lock the runner holds. Everything that can fail is checked before
the commit point; after it, problems are warnings (`after_commit`).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .client import ApiClient
from .clock import now, parse_iso, utc_iso
from .context import STATS_NAME, RunContext
from .errors import CollectorError, ExitCode, Interrupted, LocalStateError, exit_code_for
from .formats import (
    csv_bytes,
    encode_coins,
    flatten_line_breaks,
    history_bytes,
    snapshot_json_bytes,
    snapshot_jsonl_bytes,
)
from .fsio import (
    check_dir_target,
    check_file_target,
    check_free_space,
    commit_temp,
    crash_point,
    discard_temp,
    remove_orphan_temps,
    write_temp,
)
from .history import (
    HISTORY_DIR,
    TARGET_NAMES,
    Commit,
    HistoryFiles,
    HistoryHead,
    HistoryStore,
    record_failed_run,
    record_missed_slots,
)
from .jsonio import dumps
from .ledger import LEDGER_NAME, RequestLedger, log_budget_plan
from .logsetup import LOG_NAME
from .rejected import REJECTED_DIR, fetch_or_keep_rejected
from .report import print_catalogue_summary, print_summary
from .settings import CALLS_PER_SNAPSHOT, FREE_PLAN_TICKER_CAP, Config
from .signals import GUARD
from .snapshot import Snapshot, diff_snapshots
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
SNAPSHOT_FILES = (SNAPSHOT_JSON, SNAPSHOT_JSONL, SNAPSHOT_CSV)
COINS_JSON = "coins_metadata.json"
COINS_LIST = "coins_list.txt"


# --- 02, 03, 04: one snapshot --------------------------------------------------------------


def collect_snapshot(ctx: RunContext) -> int:
    """One snapshot: /tickers + /global, validated, written, appended to history once."""
    config = ctx.config
    check_targets(config.out_dir, (*SNAPSHOT_FILES, *_history_targets()), (HISTORY_DIR,))
    store = HistoryStore(config.out_dir)
    try:
        code = _collect(ctx, store)
    except Exception as exc:
        if config.profile.records_gaps and not ctx.committed and not isinstance(exc, Interrupted):
            _record_failed_run(ctx, store.files, exc)
        raise
    if config.profile.archives_history:
        best_effort(ctx, "archiving closed days", lambda: archive_closed_days(ctx, store))
    return code


def _collect(ctx: RunContext, store: HistoryStore) -> int:
    config = ctx.config
    head = open_history(ctx, store)
    files_current = snapshot_files_current(config.out_dir, head.last_snapshot_id)
    if files_current and (reason := too_soon(config, head)):
        return ctx.skip(reason)
    ledger = RequestLedger(config.out_dir)
    ledger.check_can_run(
        CALLS_PER_SNAPSHOT, config.max_attempts, config.monthly_budget, config.force
    )
    snapshot = fetch_snapshot(ctx, ledger, head)
    if files_current and (reason := unchanged(snapshot)):
        return ctx.skip(reason)
    if snapshot.snapshot_id == head.last_snapshot_id:
        return ctx.skip(f"a snapshot was already committed in second {snapshot.snapshot_id}")
    if not write_and_commit(ctx, store, snapshot, head.snapshot_count):
        return ctx.skip(f"snapshot {snapshot.collected_at} was already in the history")
    after_commit(ctx, "clearing the quota block", config.force and ledger.clear_block)
    if config.profile.records_gaps and snapshot.diff.previous_ts:
        after_commit(
            ctx,
            "recording a gap",
            lambda: record_missed_slots(
                store.files, snapshot.diff.previous_ts, snapshot.collected_at, config.every_min
            ),
        )
    after_commit(ctx, "printing the summary", lambda: print_summary(ctx, snapshot))
    return ExitCode.OK


def archive_closed_days(ctx: RunContext, store: HistoryStore) -> None:
    """Days that have ended move into Parquet archives (bounded time; see history/archive)."""
    days = store.archive_closed_days()
    ctx.stats.archived_days.extend(days)
    for name in store.archived_pieces:
        ctx.say(f"Archived {name[:10]} into history/archive/{name}")


def _history_targets() -> tuple[str, ...]:
    return tuple(f"{HISTORY_DIR}/{name}" for name in TARGET_NAMES)


def check_targets(out_dir: Path, files: tuple[str, ...], dirs: tuple[str, ...] = ()) -> None:
    """Before any request: nothing is in the way of a file or directory the run writes.

    Raises:
        LocalStateError: a target is a directory (or not a regular file), or a directory
            target is a file or cannot be written (74).
    """
    for name in (*files, STATS_NAME, LEDGER_NAME, LOG_NAME):
        check_file_target(out_dir / name)
    for name in (*dirs, REJECTED_DIR):
        check_dir_target(out_dir / name)


def open_history(ctx: RunContext, store: HistoryStore) -> HistoryHead:
    """Clean a killed run's temp files, repair the history, check the clock."""
    config = ctx.config
    _clean_orphans(config.out_dir, (*SNAPSHOT_FILES, STATS_NAME))
    _clean_orphans(store.dir, None)  # only collectors, under the run lock, write history/
    _clean_orphans(store.files.archive_dir, None)
    head = store.prepare()
    ctx.stats.last_success_at = head.last_ts
    check_clock(head.last_ts, store.archived_last_day(), store)
    log_budget_plan(config, RequestLedger(config.out_dir).load()["month_requests"])
    return head


def check_clock(last_ts: str | None, archived_day: str | None, store: HistoryStore) -> None:
    """A snapshot now would be older than the history: the clock moved back, or the history
    was copied from a machine ahead of this one.

    Left alone, every later run would skip (too young) or be refused (not newer), or commit
    into a day already archived, whose rows the next archive step could not keep: collection
    would stop, or lose data, in silence. It is a failure instead, found before any request.

    Raises:
        LocalStateError: the last snapshot lies in the future, or today is already archived.
    """
    hint = (
        "fix the system clock (or use an output directory of this machine); "
        "collection resumes once the clock is past that time"
    )
    if last_ts is not None and (ahead := parse_iso(last_ts) - now()) > 0:
        raise LocalStateError(
            f"the last committed snapshot {last_ts} in {store.dir} lies {ahead / 60:.1f} min "
            f"in the future of this machine's clock ({utc_iso()}); no request was made",
            hint=hint,
        )
    today = utc_iso()[:10]
    if archived_day is not None and today <= archived_day:
        raise LocalStateError(
            f"this machine's clock ({utc_iso()}) is in {today}, a day {store.dir} has already "
            f"archived (through {archived_day}): a snapshot now would be lost; no request "
            "was made",
            hint=hint,
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
        head = b""
    found = re.search(rb'"snapshot_id":"([0-9TZ]+)"', head)
    current = found is not None and found.group(1).decode() == last_snapshot_id
    if not current:
        log.warning("snapshot files are older than the history: this run rewrites them")
    return current


def too_soon(config: Config, head: HistoryHead) -> str | None:
    """The skip reason when the last snapshot is younger than --min-interval."""
    if not config.min_interval_s or not head.last_ts:
        return None
    age = now() - parse_iso(head.last_ts)
    if age >= config.min_interval_s:
        return None
    return (
        f"last snapshot {head.last_ts} is {age / 60:.1f} min old, younger than "
        f"--min-interval {config.min_interval_s / 60:g} min; no request made"
    )


def fetch_snapshot(ctx: RunContext, ledger: RequestLedger, head: HistoryHead) -> Snapshot:
    """/tickers then /global, each validated (a refused payload is kept in rejected/)."""
    config = ctx.config
    client = ApiClient(config, ledger, ctx.deadline, ctx.counter, on_retry=ctx.progress)
    try:
        ctx.say(f"Fetching /tickers (quotes {','.join(config.quotes)}) from {config.base_url} …")

        def fetch_tickers() -> Validated:
            payload = client.get_json("/tickers", {"quotes": ",".join(config.quotes)})
            tickers = validate_tickers(payload, config.quotes)
            # Checked before /global: a refused payload costs no second request.
            check_shrink("/tickers", len(tickers.rows), head.last_coin_count, config.accept_shrink)
            return tickers

        tickers = fetch_or_keep_rejected(config.out_dir, client, fetch_tickers)
        ctx.say(f"  {len(tickers.rows):,} coins received; fetching /global …")
        global_data = fetch_or_keep_rejected(
            config.out_dir, client, lambda: validate_global(client.get_json("/global"))
        )
    finally:
        client.close()
    crash_point("run.after_fetch")
    coins = sorted(tickers.rows, key=rank_sort_key)
    last_updated = {coin["id"]: coin.get("last_updated") for coin in coins}
    _warn_missing_last_updated(last_updated)
    snapshot = Snapshot(
        collected_at=utc_iso(),
        coins=coins,
        global_data=global_data,
        expected_count=expected_coin_count(config, global_data),
        duplicates_dropped=tickers.duplicates_dropped,
        last_updated=last_updated,
        diff=diff_snapshots(head.last_ts, head.last_updated, last_updated),
    )
    stats = ctx.stats
    stats.coin_count = len(coins)
    stats.expected_count = snapshot.expected_count
    stats.duplicates_dropped = snapshot.duplicates_dropped
    stats.appeared = len(snapshot.diff.appeared)
    stats.disappeared = len(snapshot.diff.disappeared)
    return snapshot


def expected_coin_count(config: Config, global_data: dict[str, Any]) -> int | None:
    """What the plan should return: all active coins, capped at 2,000 on the free plan."""
    active = global_data.get("cryptocurrencies_number")
    if not isinstance(active, int | float) or active <= 0:
        return FREE_PLAN_TICKER_CAP if config.plan == "free" else None
    return min(FREE_PLAN_TICKER_CAP, int(active)) if config.plan == "free" else int(active)


def _has_stamp(stamp: Any) -> bool:
    return isinstance(stamp, str) and bool(stamp)


def _warn_missing_last_updated(last_updated: dict[str, Any]) -> None:
    missing = [ident for ident, stamp in last_updated.items() if not _has_stamp(stamp)]
    if missing:
        log.warning(
            "%d coin(s) have no last_updated; they count as changed (%s…)",
            len(missing),
            missing[0],
        )


def unchanged(snapshot: Snapshot) -> str | None:
    """The skip reason when every coin's last_updated equals the last committed snapshot's."""
    diff = snapshot.diff
    if diff.previous_ts and not (diff.changed or diff.appeared or diff.disappeared):
        return (
            f"data unchanged since snapshot {diff.previous_ts} (every last_updated "
            "is the same); nothing committed"
        )
    return None


def write_and_commit(
    ctx: RunContext, store: HistoryStore, snapshot: Snapshot, committed_before: int
) -> bool:
    """Write the three snapshot files and the history as one commit; False if already there."""
    config, stats = ctx.config, ctx.stats
    rows = history_bytes(snapshot.coins, snapshot.collected_at, config.quotes)
    bodies = snapshot_file_bodies(ctx, snapshot)
    commit = Commit(
        snapshot.collected_at,
        snapshot.snapshot_id,
        rows,
        len(snapshot.coins),
        snapshot.last_updated,
        snapshots_line(ctx, snapshot),
    )
    if not publish(ctx, bodies, lambda: store.commit(commit), extra_bytes=len(rows)):
        return False
    stats.snapshot_id, stats.collected_at = snapshot.snapshot_id, snapshot.collected_at
    stats.history_rows_appended, stats.history_bytes_appended = len(snapshot.coins), len(rows)
    stats.history_snapshot_count = committed_before + 1
    stats.last_success_at = snapshot.collected_at
    stats.files = {path.name: len(body) for path, body in bodies.items()}
    if snapshot.expected_count and len(snapshot.coins) < 0.9 * snapshot.expected_count:
        log.warning(
            "coverage: %d coins received, %d expected on the %s plan",
            len(snapshot.coins),
            snapshot.expected_count,
            config.plan,
        )
    log.info(
        "committed snapshot %s: %d coins (expected %s), %d history bytes",
        snapshot.snapshot_id,
        len(snapshot.coins),
        snapshot.expected_count,
        len(rows),
    )
    return True


def snapshots_line(ctx: RunContext, snapshot: Snapshot) -> dict[str, Any]:
    """The history/snapshots.jsonl line for this snapshot."""
    config, diff = ctx.config, snapshot.diff
    return {
        "ts": snapshot.collected_at,
        "snapshot_id": snapshot.snapshot_id,
        "coin_count": len(snapshot.coins),
        "expected_count": snapshot.expected_count,
        "market_cap_usd": snapshot.global_data.get("market_cap_usd"),
        "coins_market_cap_usd": coins_market_cap_usd(snapshot.coins, config.quotes),
        "requests": ctx.counter.attempts,
        "retries": ctx.counter.retries,
        "appeared": len(diff.appeared),
        "disappeared": len(diff.disappeared),
        "appeared_ids": diff.appeared,
        "disappeared_ids": diff.disappeared,
        "changed": diff.changed,
        "data_changed": True,
        "duplicates_dropped": snapshot.duplicates_dropped,
        "previous_ts": diff.previous_ts,
        "quotes": list(config.quotes),
        "plan": config.plan,
        "script": config.script,
    }


def coins_market_cap_usd(coins: list[dict[str, Any]], quotes: tuple[str, ...]) -> Any:
    """The sum of the collected coins' USD market caps (None without a USD quote)."""
    if "USD" not in quotes:
        return None
    caps = (((coin.get("quotes") or {}).get("USD") or {}).get("market_cap") for coin in coins)
    total = sum(cap for cap in caps if type(cap) in (int, float))
    return total if not isinstance(total, float) or math.isfinite(total) else None


def snapshot_file_bodies(ctx: RunContext, snapshot: Snapshot) -> dict[Path, bytes]:
    """market_cap_snapshot.json / .jsonl / .csv, serialised (CONTRACT "Files")."""
    config = ctx.config
    header = {
        "snapshot_id": snapshot.snapshot_id,
        "collected_at": snapshot.collected_at,
        "source": config.base_url,
        "quotes": list(config.quotes),
        "plan": config.plan,
        "expected_count": snapshot.expected_count,
        "duplicates_dropped": snapshot.duplicates_dropped,
        "global": snapshot.global_data,
    }
    encoded = encode_coins(snapshot.coins)
    stamp = snapshot.collected_at
    return {
        config.out_dir / SNAPSHOT_JSON: snapshot_json_bytes(header, encoded),
        config.out_dir / SNAPSHOT_JSONL: snapshot_jsonl_bytes(encoded, stamp),
        config.out_dir / SNAPSHOT_CSV: csv_bytes(snapshot.coins, config.quotes, stamp),
    }


def publish(
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
    GUARD.checkpoint()
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
                _rename_into_place(ctx, tmp, path)
        return True
    finally:
        for tmp in temps.values():
            if tmp.exists():
                discard_temp(tmp)


def _rename_into_place(ctx: RunContext, tmp: Path, path: Path) -> None:
    try:
        commit_temp(tmp, path)
    except CollectorError as exc:
        if not ctx.committed:
            raise
        ctx.warn(f"{path.name} not replaced ({exc}); the next run rewrites it")


def after_commit(ctx: RunContext, doing: str, step: Callable[[], object] | bool) -> None:
    """Run a step past the commit point: a failure is a warning, never the run's outcome."""
    best_effort(ctx, doing, step, "after the snapshot was committed")


def best_effort(
    ctx: RunContext, doing: str, step: Callable[[], object] | bool, when: str = ""
) -> None:
    """Run a step whose failure must not change the run's outcome: it becomes a warning."""
    if not callable(step):
        return
    try:
        step()
    except Interrupted:
        raise  # a signal ends the run: 130/143, or ok when the snapshot is already committed
    except Exception as exc:  # noqa: BLE001 - a warning; the next run retries
        ctx.warn(f"{doing} failed{' ' + when if when else ''}: {exc}")
        if not isinstance(exc, CollectorError | OSError):
            log.warning("traceback of the above", exc_info=exc)


def _record_failed_run(ctx: RunContext, files: HistoryFiles, exc: Exception) -> None:
    """04: a failed run is listed in history/gaps.jsonl so that a missing slot has a reason."""
    error = exc.one_line() if isinstance(exc, CollectorError) else f"{type(exc).__name__}: {exc}"
    try:
        record_failed_run(files, ctx.stats.started_at, int(exit_code_for(exc)), error)
    except (LocalStateError, OSError) as write_exc:
        log.warning("could not record the failed run in gaps.jsonl: %s", write_exc)


def _clean_orphans(directory: Path, owned: tuple[str, ...] | None) -> None:
    """Temp files of a killed run; call while holding the lock that guards `owned` files."""
    if directory.is_dir():
        for orphan in remove_orphan_temps(directory, owned):
            log.info("removed orphan temp file %s", orphan.name)


# --- 01: the coin catalogue ----------------------------------------------------------------


def fetch_catalogue(ctx: RunContext) -> int:
    """/coins once; coins_metadata.json and coins_list.txt replaced together."""
    config = ctx.config
    check_targets(config.out_dir, (COINS_JSON, COINS_LIST))
    _clean_orphans(config.out_dir, (COINS_JSON, COINS_LIST))
    ledger = RequestLedger(config.out_dir)
    ledger.check_can_run(1, config.max_attempts, config.monthly_budget, config.force)
    client = ApiClient(config, ledger, ctx.deadline, ctx.counter, on_retry=ctx.progress)
    try:
        ctx.say(f"Fetching /coins from {config.base_url} …")
        catalogue = fetch_or_keep_rejected(
            config.out_dir, client, lambda: validate_coins(client.get_json("/coins"))
        )
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
