"""04 --status: is it working? Health for a person or a probe; exit 0 healthy, 1 not.

Read-only, through the reader of record. Unhealthy reasons are `Problem`s ranked by how much
they need a person; the last line names the worst and what to do (docs/operations.md,
"Monitoring").
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from typing import Any

from .clock import now, parse_iso, utc_iso
from .context import STATS_NAME, RunContext
from .errors import ExitCode, LocalStateError
from .history import Gap, HistoryFiles, HistoryStore, Picture, find_gaps, open_picture
from .history.files import ts_of
from .history.gaps import REPAIR_LOOK_BACK_S, latest_repairs
from .history.summaries import SnapshotRecord
from .jsonio import loads_object
from .ledger import LedgerState, RequestLedger, empty_ledger
from .report import age_text

DAY_S = 86400
STALE_CADENCES = 2  # older than this many cadences: unhealthy, whatever else looks fine
LOW_DISK_BYTES = 200e6


@dataclass(frozen=True, order=True)
class Problem:
    """Something that makes --status unhealthy; the lowest `rank` is the worst."""

    rank: int
    text: str
    action: str = ""


# What a problem of each kind asks of a person, worst first.
DAMAGED, BLOCKED, FAILED, STALE, COVERAGE, BUDGET, DISK, BEHIND, NOTHING_YET = range(9)
ACTIONS = {
    DAMAGED: "run --check-history; see docs/operations.md, 'Repairing history'",
    BLOCKED: "wait for the reset, or pass --force after an upgrade",
    FAILED: "read its error line in latest_stats.json or collection.log",
    STALE: "check that cron runs the collector (cron.log, collection.log)",
    COVERAGE: "check the gaps above and collection.log",
    BUDGET: "lower the cadence or raise --monthly-budget",
    DISK: "free disk space",
    BEHIND: "let the collector run; each run archives up to 25 s",
    NOTHING_YET: "run the collector once",
}
HEALTH_LINE_MAX = 200


def health_line(problems: list[Problem]) -> str:
    """`Health: OK`, or one line of at most 200 characters: the worst problem, what to do."""
    if not problems:
        return "Health: OK"
    worst = min(problems)
    action = worst.action or ACTIONS.get(worst.rank, "")
    line = f"Health: UNHEALTHY — {worst.text}" + (f"; {action}" if action else "")
    more = f" (+{len(problems) - 1} more above)" if len(problems) > 1 else ""
    if len(line) + len(more) > HEALTH_LINE_MAX:
        line = line[: HEALTH_LINE_MAX - len(more) - 1] + "…"
    return line + more


def show_status(ctx: RunContext) -> int:
    """Print health; exit 0 when healthy, 1 when not (for a monitoring probe)."""
    config = ctx.config
    out = config.out_dir
    at = now()
    problems: list[Problem] = []
    try:
        stats = loads_object((out / STATS_NAME).read_bytes())
    except OSError:
        stats = None
    try:
        ledger = RequestLedger(out).load(at)
    except LocalStateError as exc:
        problems.append(Problem(DAMAGED, exc.one_line(), "restore or delete request_ledger.json"))
        ledger = empty_ledger(at)
    ctx.say(f"Output directory: {out}")
    _status_of_last_run(ctx, stats, problems)
    with open_picture(out) as picture:
        _status_of_snapshots(ctx, picture.snapshots, at, problems)
        _status_of_coverage(ctx, picture, at, problems)
        _status_of_repairs(ctx, picture, at)
        _status_of_archive(ctx, picture, at, problems)
    _status_of_budget(ctx, ledger, problems)
    history_bytes = HistoryStore(out).total_bytes()
    free = shutil.disk_usage(out).free
    ctx.say(f"Disk: history {history_bytes / 1e6:.1f} MB; {free / 1e9:.1f} GB free")
    if free < LOW_DISK_BYTES:
        problems.append(Problem(DISK, f"only {free / 1e6:.0f} MB free"))
    for problem in sorted(problems)[1:]:
        ctx.say(f"Problem: {problem.text}")
    ctx.say(health_line(problems))
    return ExitCode.OK if not problems else ExitCode.UNHEALTHY


def _status_of_last_run(
    ctx: RunContext, stats: dict[str, Any] | None, problems: list[Problem]
) -> None:
    if not stats:
        ctx.say("Last run: none recorded")
        problems.append(Problem(NOTHING_YET, "no run recorded yet"))
        return
    ctx.say(
        f"Last run: {stats.get('status')} (exit {stats.get('exit_code')}) by "
        f"{stats.get('script')} at {stats.get('finished_at')}"
        + (f" — {stats['error']}" if stats.get("error") else "")
    )
    if stats.get("status") == "failed":
        problems.append(Problem(FAILED, f"last run failed: {stats.get('error')}"))


def _status_of_snapshots(
    ctx: RunContext, snapshots: tuple[SnapshotRecord, ...], at: float, problems: list[Problem]
) -> None:
    every = ctx.config.every_min
    if not snapshots:
        ctx.say("Last good snapshot: none")
        problems.append(Problem(NOTHING_YET, "no snapshot committed yet"))
        return
    last = snapshots[-1]
    age_min = (at - parse_iso(last.ts)) / 60
    ctx.say(
        f"Last good snapshot: {last.ts} ({age_text(age_min * 60)} ago), {last.coin_count} coins"
        + (f" of {last.expected_count} expected" if last.expected_count is not None else "")
    )
    if age_min > STALE_CADENCES * every:
        problems.append(
            Problem(
                STALE,
                f"last snapshot is {age_text(age_min * 60)} old, more than {STALE_CADENCES} "
                f"cadences of {every} min",
            )
        )
    elif age_min < 0:
        problems.append(
            Problem(STALE, f"last snapshot {last.ts} lies in the future (clock moved?)",
                    "fix the system clock")
        )  # fmt: skip


@dataclass(frozen=True)
class Coverage:
    """The cadence slots of a window, how many went without a snapshot, and the gaps."""

    since: float
    slots: int
    missing: int
    gaps: list[Gap]

    @property
    def percent(self) -> float:
        return 100.0 * (self.slots - self.missing) / self.slots if self.slots else 100.0


def coverage(timestamps: list[str], at: float, every_min: int, window_s: float = DAY_S) -> Coverage:
    """Missed slots of the last `window_s` (or since the first snapshot, if later), by the one
    gap rule (find_gaps, as gaps.jsonl records them): a gap that began before the window
    counts its missed slots inside it too, and an open gap up to now counts once it is more
    than 1.5 cadences long (a run not yet due is not missed)."""
    step = every_min * 60
    times = [parse_iso(t) for t in timestamps]
    since = max(at - window_s, times[0]) if times else at - window_s
    slots = max(1, round((at - since) / step))
    points = [t for t in times if t < since][-1:] + [t for t in times if since <= t <= at]
    gaps = find_gaps([utc_iso(t) for t in [*points, at]], every_min) if points else []
    missing = sum(slots_inside(gap, since, step) for gap in gaps)
    return Coverage(since, slots, min(missing, slots), gaps)


def slots_inside(gap: Gap, since: float, step: int) -> int:
    """The gap's missed slots at or after `since`."""
    start = parse_iso(gap.start)
    return sum(1 for k in range(1, gap.missing_slots + 1) if start + k * step >= since)


def refilled_slots(found: Coverage, files: HistoryFiles, every_min: int) -> int:
    """The window's missed slots whose gap, gap repair says, was refilled (they count as
    covered: --status's coverage, the metrics file's missed slots)."""
    repairs = latest_repairs(files) if found.gaps else {}
    return sum(
        slots_inside(gap, found.since, every_min * 60)
        for gap in found.gaps
        if repairs.get((gap.start, gap.end), {}).get("status") == "repaired"
    )


def _status_of_coverage(
    ctx: RunContext, picture: Picture, at: float, problems: list[Problem]
) -> None:
    """Missed slots of the last 24 h, by the same gap rule as gaps.jsonl and the checker; a
    gap that gap repair refilled counts as covered."""
    config, snapshots, files = ctx.config, picture.snapshots, picture.files
    if not snapshots:
        return
    found = coverage([record.ts for record in snapshots], at, config.every_min)
    hours = (at - found.since) / 3600
    window = "24 h" if hours >= 23.99 else f"{hours:.1f} h (since the first snapshot)"
    refilled = refilled_slots(found, files, config.every_min)
    found = replace(found, missing=found.missing - refilled)
    ctx.say(
        f"Last {window}: {found.missing + refilled} of {found.slots} slots without a snapshot"
        + (f", {refilled} of them refilled from the historical endpoint" if refilled else "")
        + f" (cadence {config.every_min} min, coverage {found.percent:.1f} %); "
        f"{len(found.gaps)} gap(s)"
    )
    for gap in found.gaps[-10:]:
        end = "now" if gap.end == utc_iso(at) else gap.end
        ctx.say(f"  gap {gap.start} → {end}: {gap.missing_slots} missed slot(s)")
    if len(found.gaps) > 10:
        ctx.say(f"  … and {len(found.gaps) - 10} earlier gap(s)")
    if found.percent < config.min_coverage:
        problems.append(
            Problem(
                COVERAGE,
                f"coverage {found.percent:.1f} % over the last {window.split(' (')[0]} is "
                f"below --min-coverage {config.min_coverage:g} %",
            )
        )


def _status_of_repairs(ctx: RunContext, picture: Picture, at: float) -> None:
    """Backfilled points, and the recent gaps by repair state (gap repair's records)."""
    points = picture.points
    if points is not None and points.count:
        ctx.say(
            f"Backfilled: {points.count:,} point(s) ({len(points.head.pieces)} Parquet "
            f"piece(s), {points.plain_count:,} plain)"
        )
    since = utc_iso(at - REPAIR_LOOK_BACK_S)
    gaps = find_gaps([r.ts for r in picture.snapshots if r.ts >= since], ctx.config.every_min)
    if not gaps:
        return
    latest = latest_repairs(picture.files)
    states = [str(latest.get((g.start, g.end), {}).get("status", "open")) for g in gaps]
    counts = {state: states.count(state) for state in ("repaired", "partly", "unrepairable")}
    ctx.say(
        f"Gaps of the last {REPAIR_LOOK_BACK_S // DAY_S} days: {len(gaps)}; repaired "
        f"{counts['repaired']}, partly {counts['partly']}, unrepairable "
        f"{counts['unrepairable']}, open {states.count('open')}"
    )


def _status_of_archive(
    ctx: RunContext, picture: Picture, at: float, problems: list[Problem]
) -> None:
    """Archived days, their integrity, and whether closed days wait too long in the plain file."""
    days = sorted({entry.day for entry in picture.manifest.entries})
    waiting = _plain_first_day(picture)
    ctx.say(
        f"Archive: {len(days)} day(s) in Parquet"
        + (f" ({days[0]} … {days[-1]})" if days else "")
        + (f"; plain file from {waiting}" if waiting else "; plain file empty")
        + (f"; {len(picture.legacy)} legacy archive(s) to convert" if picture.legacy else "")
    )
    for name in picture.strays:
        ctx.say(f"Warning: archive/{name} is not an archive file; it is not read")
    for problem in picture.problems(full=True):  # every file read once: ~3 s a paid year
        problems.append(Problem(DAMAGED, problem))
    for problem in picture.manifest.unfinished():
        problems.append(Problem(DAMAGED, problem, "let the next collector run repair it"))
    for name in picture.unlisted:
        problems.append(
            Problem(DAMAGED, f"archive/{name} is not listed in the manifest",
                    "the next collector run redoes an interrupted archive step; if it stays, "
                    "see docs/operations.md, 'Repairing history'")
        )  # fmt: skip
    yesterday = utc_iso(at - DAY_S)[:10]
    if waiting and waiting < yesterday:
        problems.append(
            Problem(BEHIND, f"archiving is behind: the plain file still starts at {waiting}")
        )


def _plain_first_day(picture: Picture) -> str | None:
    line = next(picture.plain_lines(), None)
    return ts_of(line)[:10] if line else None


def _status_of_budget(ctx: RunContext, ledger: LedgerState, problems: list[Problem]) -> None:
    budget = ctx.config.monthly_budget
    used = ledger.month_requests
    ctx.say(
        f"Requests this month ({ledger.month}): {used:,}"
        + (f" of {budget:,} ({100 * used / budget:.1f} %)" if budget else " (no budget set)")
    )
    if budget and used >= 0.9 * budget:
        problems.append(Problem(BUDGET, f"{used} of {budget} monthly requests used"))
    if ledger.blocked_until:
        ctx.say(f"BLOCKED until {ledger.blocked_until}: {ledger.blocked_reason}")
        problems.append(Problem(BLOCKED, f"quota blocked until {ledger.blocked_until}"))
