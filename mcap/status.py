"""04 --status and --check-history: read-only health reports for people and probes."""

from __future__ import annotations

import json
import shutil
import time
from typing import Any

from .errors import BadApiData, ExitCode, LocalStateError
from .history import HistoryStore, check_history, find_gaps
from .ledger import RequestLedger, empty_ledger, parse_iso
from .runner import STATS_NAME, RunContext

UNHEALTHY = 1
STALE_CADENCES = 2  # older than this many cadences: unhealthy, whatever else looks fine


def _read_json(path: Any) -> dict[str, Any] | None:
    """A JSON object from disk, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _missing_slots(timestamps: list[str], every_min: int, now: float) -> int:
    """Slots of the last 24 h without a snapshot (cadence `every_min`)."""
    since = now - 86400
    recent = [t for t in timestamps if parse_iso(t) >= since]
    expected = int(86400 // (every_min * 60))
    return max(0, expected - len(recent))


def show_status(ctx: RunContext) -> int:
    """Print health; exit 0 when healthy, 1 when not (for a monitoring probe)."""
    config = ctx.config
    out = config.out_dir
    now = time.time()
    problems: list[str] = []
    stats = _read_json(out / STATS_NAME)
    store = HistoryStore(out)
    entries = store.snapshot_entries() if store.dir.is_dir() else []
    timestamps = [e["ts"] for e in entries]
    try:
        ledger = RequestLedger(out).load(now)
    except LocalStateError as exc:
        problems.append(exc.one_line())
        ledger = empty_ledger(now)
    ctx.say(f"Output directory: {out}")
    if stats:
        ctx.say(
            f"Last run: {stats.get('status')} (exit {stats.get('exit_code')}) by "
            f"{stats.get('script')} at {stats.get('finished_at')}"
            + (f" — {stats['error']}" if stats.get("error") else "")
        )
        if stats.get("status") == "failed":
            problems.append(f"last run failed: {stats.get('error')}")
    else:
        ctx.say("Last run: none recorded")
        problems.append("no run recorded yet")
    if timestamps:
        age_min = (now - parse_iso(timestamps[-1])) / 60
        last = entries[-1]
        ctx.say(
            f"Last good snapshot: {timestamps[-1]} ({age_min:.0f} min ago), "
            f"{last.get('coin_count')} coins of {last.get('expected_count')} expected"
        )
        if age_min > STALE_CADENCES * config.every_min:
            problems.append(
                f"last snapshot is {age_min:.0f} min old, more than {STALE_CADENCES} cadences "
                f"of {config.every_min} min"
            )
        elif age_min < 0:
            problems.append(f"last snapshot {timestamps[-1]} lies in the future (clock moved?)")
    else:
        ctx.say("Last good snapshot: none")
        problems.append("no snapshot committed yet")
    gaps = [g for g in find_gaps(timestamps, config.every_min) if parse_iso(g["to"]) >= now - 86400]
    missing = _missing_slots(timestamps, config.every_min, now)
    ctx.say(
        f"Last 24 h: {missing} of {int(86400 // (config.every_min * 60))} slots without a "
        f"snapshot (cadence {config.every_min} min); {len(gaps)} gap(s)"
    )
    for gap in gaps[-10:]:
        ctx.say(f"  gap {gap['from']} → {gap['to']}: {gap['missing_slots']} missed slot(s)")
    budget = config.monthly_budget
    used = ledger["month_requests"]
    ctx.say(
        f"Requests this month ({ledger['month']}): {used:,}"
        + (f" of {budget:,} ({100 * used / budget:.1f} %)" if budget else " (no budget set)")
    )
    if budget and used >= 0.9 * budget:
        problems.append(f"{used} of {budget} monthly requests used")
    if ledger.get("blocked_until"):
        ctx.say(f"BLOCKED until {ledger['blocked_until']}: {ledger.get('blocked_reason')}")
        problems.append(f"quota blocked until {ledger['blocked_until']}")
    history_bytes = store.total_bytes() if store.dir.is_dir() else 0
    free = shutil.disk_usage(out).free if out.is_dir() else 0
    ctx.say(f"Disk: history {history_bytes / 1e6:.1f} MB; {free / 1e9:.1f} GB free")
    if out.is_dir() and free < 200e6:
        problems.append(f"only {free / 1e6:.0f} MB free")
    ctx.say("Health: OK" if not problems else "Health: UNHEALTHY — " + "; ".join(problems))
    return ExitCode.OK if not problems else UNHEALTHY


def run_check_history(ctx: RunContext) -> int:
    """Verify the history files; 0 when whole and unique, 65 otherwise."""
    report = check_history(ctx.config.out_dir, ctx.config.every_min)
    ctx.say(
        f"History: {report.rows:,} rows in {report.snapshots:,} snapshots "
        f"({', '.join(report.files) or 'no files'})"
    )
    for note in report.notes:
        ctx.say(f"Note: {note}")
    ctx.say(f"Gaps (cadence {ctx.config.every_min} min): {len(report.gaps)}")
    for gap in report.gaps[-20:]:
        ctx.say(f"  {gap['from']} → {gap['to']}: {gap['missing_slots']} missed slot(s)")
    if report.ok:
        ctx.say("Check: OK — every snapshot whole and present once")
        return ExitCode.OK
    for problem in report.problems:
        ctx.say(f"Problem: {problem}")
    raise BadApiData(
        f"history check failed: {len(report.problems)} problem(s), first: {report.problems[0]}",
        hint="see README 'Repairing history'",
    )
