"""The collection pipeline of 02, 03 and 04, top to bottom: open the history, fetch and
validate, build the snapshot, publish it with the history commit, then archive.

Their profiles say what else each script does (gap records, archiving). It runs under the
lock the runner holds. Everything that can fail is checked before the commit point; after
it, problems are warnings (`RunContext.after_commit`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from .backfill_tasks import Coin
from .client import ApiClient
from .clock import now, parse_iso, utc_iso
from .context import STATS_NAME, RunContext
from .errors import CollectorError, ExitCode, Interrupted, LocalStateError, exit_code_for
from .fsio import crash_point
from .gap_repair import repair_gaps
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
from .ledger import RequestLedger, log_budget_plan
from .publish import check_targets, clean_orphans, publish
from .rejected import fetch_validated
from .report import print_summary
from .settings import CALLS_PER_SNAPSHOT
from .snapshot import (
    SNAPSHOT_FILES,
    SNAPSHOT_JSON,
    RunFacts,
    Snapshot,
    build_snapshot,
    history_rows,
    missing_last_updated,
    snapshot_file_bodies,
    snapshots_line,
    too_soon,
    unchanged,
)
from .validate import Validated, check_shrink, validate_global, validate_tickers

log = logging.getLogger(__name__)


def collect_snapshot(ctx: RunContext) -> int:
    """One snapshot: /tickers + /global, validated, written, appended to history once."""
    config = ctx.config
    check_targets(config.out_dir, (*SNAPSHOT_FILES, *_history_targets()), (HISTORY_DIR,))
    store = HistoryStore(config.out_dir)
    try:
        code, snapshot = _collect(ctx, store)
    except Exception as exc:
        if config.profile.records_gaps and not ctx.committed and not isinstance(exc, Interrupted):
            _record_failed_run(ctx, store.files, exc)
        raise
    if config.profile.archives_history:
        ctx.best_effort("archiving closed days", lambda: archive_closed_days(ctx, store))
    if snapshot is not None and config.profile.repairs_gaps and config.repair:
        coins = [Coin(c["id"], c.get("rank") or 0) for c in snapshot.coins]
        ctx.after_commit("repairing gaps", lambda: repair_gaps(ctx, coins))
    return code


def _collect(ctx: RunContext, store: HistoryStore) -> tuple[int, Snapshot | None]:
    """The run's code, and the snapshot it committed (None: skipped)."""
    config = ctx.config
    head = open_history(ctx, store)
    files_current = snapshot_files_current(config.out_dir, head.last_snapshot_id)
    if files_current and (reason := too_soon(config.min_interval_s, head.last_ts, now())):
        return ctx.skip(reason), None
    ledger = RequestLedger(config.out_dir)
    ledger.check_can_run(
        CALLS_PER_SNAPSHOT, config.max_attempts, config.monthly_budget, config.force
    )
    snapshot = fetch_snapshot(ctx, ledger, head)
    if files_current and (reason := unchanged(snapshot.diff)):
        return ctx.skip(reason), None
    if snapshot.snapshot_id == head.last_snapshot_id:
        return ctx.skip(f"a snapshot was already committed in second {snapshot.snapshot_id}"), None
    if not write_and_commit(ctx, store, snapshot, head.snapshot_count):
        return ctx.skip(f"snapshot {snapshot.collected_at} was already in the history"), None
    if config.force:
        ctx.after_commit("clearing the quota block", ledger.clear_block)
    if config.profile.records_gaps and (previous := snapshot.diff.previous_ts):
        ctx.after_commit(
            "recording a gap",
            lambda: record_missed_slots(
                store.files, previous, snapshot.collected_at, config.every_min
            ),
        )
    ctx.after_commit("printing the summary", lambda: print_summary(ctx, snapshot))
    return ExitCode.OK, snapshot


def archive_closed_days(ctx: RunContext, store: HistoryStore) -> None:
    """Days that have ended move into Parquet archives (bounded time; see history/archive)."""
    days = store.archive_closed_days()
    ctx.stats.archived_days.extend(days)
    for name in store.archived_pieces:
        ctx.say(f"Archived {name[:10]} into history/archive/{name}")


def _history_targets() -> tuple[str, ...]:
    return tuple(f"{HISTORY_DIR}/{name}" for name in TARGET_NAMES)


def open_history(ctx: RunContext, store: HistoryStore) -> HistoryHead:
    """Clean a killed run's temp files, repair the history, check the clock."""
    config = ctx.config
    clean_orphans(config.out_dir, (*SNAPSHOT_FILES, STATS_NAME))
    clean_orphans(store.dir, None)  # only collectors, under the run lock, write history/
    clean_orphans(store.files.archive_dir, None)
    head = store.prepare()
    ctx.stats.last_success_at = head.last_ts
    check_clock(head.last_ts, store.archived_last_day(), store)
    log_budget_plan(config, RequestLedger(config.out_dir).load().month_requests)
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


def fetch_snapshot(ctx: RunContext, ledger: RequestLedger, head: HistoryHead) -> Snapshot:
    """/tickers then /global, each validated (a refused payload is kept in rejected/)."""
    config = ctx.config
    client = ApiClient(config, ledger, ctx.deadline, ctx.counter, on_retry=ctx.progress)

    def tickers_of(payload: object) -> Validated:
        tickers = validate_tickers(payload, config.quotes)
        # Checked before /global: a refused payload costs no second request.
        check_shrink("/tickers", len(tickers.rows), head.last_coin_count, config.accept_shrink)
        return tickers

    try:
        ctx.say(f"Fetching /tickers (quotes {','.join(config.quotes)}) from {config.base_url} …")
        params = {"quotes": ",".join(config.quotes)}
        tickers = fetch_validated(config.out_dir, client, "/tickers", tickers_of, params)
        ctx.say(f"  {len(tickers.rows):,} coins received; fetching /global …")
        global_data = fetch_validated(config.out_dir, client, "/global", validate_global)
    finally:
        client.close()
    crash_point("run.after_fetch")
    snapshot = build_snapshot(
        utc_iso(), tickers.rows, global_data, tickers.duplicates_dropped, config.plan,
        head.last_ts, head.last_updated,
    )  # fmt: skip
    if missing := missing_last_updated(snapshot.last_updated):
        log.warning(
            "%d coin(s) have no last_updated; they count as changed (%s…)", len(missing), missing[0]
        )
    stats = ctx.stats
    stats.coin_count = len(snapshot.coins)
    stats.expected_count = snapshot.expected_count
    stats.duplicates_dropped = snapshot.duplicates_dropped
    stats.appeared = len(snapshot.diff.appeared)
    stats.disappeared = len(snapshot.diff.disappeared)
    return snapshot


def run_facts(ctx: RunContext) -> RunFacts:
    config = ctx.config
    return RunFacts(
        config.base_url, config.quotes, config.plan, config.script,
        ctx.counter.attempts, ctx.counter.retries,
    )  # fmt: skip


def write_and_commit(
    ctx: RunContext, store: HistoryStore, snapshot: Snapshot, committed_before: int
) -> bool:
    """Write the three snapshot files and the history as one commit; False if already there."""
    config, stats = ctx.config, ctx.stats
    facts = run_facts(ctx)
    rows = history_rows(snapshot, config.quotes)
    bodies = {
        config.out_dir / name: body for name, body in snapshot_file_bodies(snapshot, facts).items()
    }
    commit = Commit(
        snapshot.collected_at,
        snapshot.snapshot_id,
        rows,
        len(snapshot.coins),
        snapshot.last_updated,
        snapshots_line(snapshot, facts),
    )
    if not publish(ctx, bodies, lambda: store.commit(commit), extra_bytes=len(rows)):
        return False
    stats.snapshot_id, stats.collected_at = snapshot.snapshot_id, snapshot.collected_at
    stats.history_rows_appended, stats.history_bytes_appended = len(snapshot.coins), len(rows)
    stats.history_snapshot_count = committed_before + 1
    stats.last_success_at = snapshot.collected_at
    stats.files = {path.name: len(body) for path, body in bodies.items()}
    if snapshot.short:
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


def _record_failed_run(ctx: RunContext, files: HistoryFiles, exc: Exception) -> None:
    """04: a failed run is listed in history/gaps.jsonl so that a missing slot has a reason."""
    error = exc.one_line() if isinstance(exc, CollectorError) else f"{type(exc).__name__}: {exc}"
    try:
        record_failed_run(files, ctx.stats.started_at, int(exit_code_for(exc)), error)
    except (LocalStateError, OSError) as write_exc:
        log.warning("could not record the failed run in gaps.jsonl: %s", write_exc)
