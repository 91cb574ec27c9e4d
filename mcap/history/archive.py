"""Closed days move out of the plain history into verified Parquet files, exactly once.

A day is archived when it has ended (UTC), by whichever collector appends history. Per day:
its committed lines are checked against snapshots.jsonl (every snapshot whole, ids unique),
converted (`columnar.write_day`), read back and compared byte for byte (SHA-256 of the
regenerated lines against the source lines), moved into place, and listed in
`archive/manifest.jsonl`. Only then does the state's `archived_bytes` cover them; the plain
file loses that prefix at once when what remains is small (the usual case: the new day), or
later, so that a year-long plain file left by an older version is drained day by day
without rewriting gigabytes per run. Readers never count a day twice: the query recipe
skips plain rows up to the newest archived day, and the other readers skip `archived_bytes`.

Each step is idempotent; a run killed anywhere leaves what the next run needs to finish.
Legacy monthly `.jsonl.gz` archives are converted the same way, day by day, then removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..clock import utc_iso
from ..errors import HistoryDamaged, WriteError
from ..fsio import FILE_MODE, append_durably, commit_temp, crash_point
from ..jsonio import dumps
from ..signals import GUARD
from .columnar import read_lines, write_day, write_empty
from .files import HistoryFiles, lines_with_offsets, read_manifest, size_of
from .legacy import DaySource, day_of, drop_converted_legacy, legacy_days
from .state import save_state

log = logging.getLogger(__name__)

ARCHIVE_BUDGET_S = 25.0  # no run spends longer starting new days (CONTRACT: ≤ 30 s)
SECONDS_PER_ROW = 15e-6  # measured: convert + verify ≈ 8 s for a paid day (576k rows)
CUT_NOW_BYTES = 512 * 1024 * 1024  # copy at most this much to drop an archived prefix


def ensure_archive_dir(files: HistoryFiles) -> None:
    """archive/ with its zero-row `schema.parquet`, so the query recipe works from day one."""
    files.archive_dir.mkdir(exist_ok=True)
    if not files.schema.exists():
        tmp = files.archive_dir / f".{files.schema.name}.tmp"
        write_empty(tmp, files.dir)
        commit_temp(tmp, files.schema)


def archive_closed_days(
    files: HistoryFiles,
    state: dict[str, Any],
    expected: dict[str, int],
    today: str,
    budget_s: float = ARCHIVE_BUDGET_S,
) -> list[str]:
    """Archive closed days (legacy archives first, then the plain file) within the budget.

    `expected` maps each committed snapshot's ts to its coin count. Hold the history lock.
    """
    started = time.monotonic()
    done: list[str] = []
    archived = read_manifest(files)
    for source in _closed_days(files, state, today, archived):
        GUARD.checkpoint()
        elapsed = time.monotonic() - started
        if done and elapsed + 0.3 + source.rows * SECONDS_PER_ROW > budget_s:
            log.info("archive: %s waits for the next run (time budget)", source.day)
            break
        if source.day not in archived:
            archived[source.day] = _archive_day(files, source, expected)
            done.append(source.day)
        if source.origin == "plain":
            state["archived_bytes"] = source.end
            save_state(files, state)
    drop_converted_legacy(files, archived)
    if state["archived_bytes"] and (
        state["history_size"] - state["archived_bytes"] <= CUT_NOW_BYTES
    ):
        start_cut(files, state)
    return done


def _closed_days(
    files: HistoryFiles, state: dict[str, Any], today: str, archived: dict[str, Any]
) -> Iterator[DaySource]:
    for legacy in files.legacy_archives():
        yield from legacy_days(files, legacy, archived)
    yield from _plain_days(files, state, today)


def _plain_days(files: HistoryFiles, state: dict[str, Any], today: str) -> Iterator[DaySource]:
    """Closed days at the head of the committed plain rows, past what is archived."""
    start, day, rows, end = state["archived_bytes"], None, 0, state["archived_bytes"]
    committed = state["history_size"]
    for offset_end, line in lines_with_offsets(files.rows, limit=committed, start=start):
        line_day = day_of(line)
        if line_day != day:
            if day is not None:
                yield _plain_source(files, day, start, end, rows)
                start = end
            if line_day >= today:
                return
            day, rows = line_day, 0
        rows += 1
        end = offset_end
    if day is not None and day < today:
        yield _plain_source(files, day, start, end, rows)


def _plain_source(files: HistoryFiles, day: str, start: int, end: int, rows: int) -> DaySource:
    def lines() -> Iterator[bytes]:
        with open(files.rows, "rb") as handle:
            handle.seek(start)
            while handle.tell() < end:
                yield handle.readline()

    return DaySource(day, "plain", lines, rows, end)


def _archive_day(files: HistoryFiles, source: DaySource, expected: dict[str, int]) -> dict:
    """Convert, verify, move into place and list one day; returns its manifest entry."""
    final = files.day_archive(source.day)
    tmp = files.archive_dir / f".{final.name}.tmp"
    try:
        digest = write_day(source.lines(), tmp, files.dir)
        _check_snapshots(source, digest.snapshots, expected)
        regenerated = _sha256_of(read_lines(tmp, files.dir))
        if regenerated != digest.sha256.hexdigest():
            raise WriteError(f"archive of {source.day} did not read back identically; kept plain")
        crash_point("archive.before_rename")
        os.chmod(tmp, FILE_MODE)
        commit_temp(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    entry = {
        "day": source.day,
        "file": final.name,
        "rows": digest.rows,
        "snapshots": len(digest.snapshots),
        "raw_rows": digest.raw_rows,
        "bytes": final.stat().st_size,
        "file_sha256": _sha256_of(_chunks(final)),
        "source_sha256": digest.sha256.hexdigest(),
        "source": source.origin,
        "archived_at": utc_iso(),
    }
    crash_point("archive.before_manifest")
    append_durably(files.manifest, (dumps(entry) + "\n").encode())
    log.info(
        "archive: %s → %s (%d rows, %d bytes, %.1f B/row)",
        source.day,
        final.name,
        digest.rows,
        entry["bytes"],
        entry["bytes"] / max(1, digest.rows),
    )
    return entry


def _check_snapshots(source: DaySource, found: dict[str, int], expected: dict[str, int]) -> None:
    """Every snapshot of the day whole, and nothing that snapshots.jsonl does not list."""
    wanted = {ts: n for ts, n in expected.items() if ts.startswith(source.day)}
    if found != wanted:
        odd = sorted(ts for ts in set(found) | set(wanted) if found.get(ts) != wanted.get(ts))
        raise HistoryDamaged(
            f"{source.day} in {source.origin} does not match snapshots.jsonl (first: {odd[0]}: "
            f"{found.get(odd[0])} rows, expected {wanted.get(odd[0])}); not archived"
        )


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            yield block


def _sha256_of(blocks: Iterator[bytes]) -> str:
    sha = hashlib.sha256()
    for block in blocks:
        sha.update(block)
    return sha.hexdigest()


def file_sha256(path: Path) -> str:
    return _sha256_of(_chunks(path))


# --- dropping the archived prefix of the plain file ------------------------------------------


def start_cut(files: HistoryFiles, state: dict[str, Any]) -> None:
    """Mark, then drop the archived prefix of the plain file (copying what follows it)."""
    state["cutting"] = state["archived_bytes"]
    save_state(files, state)
    finish_cut(files, state)


def finish_cut(files: HistoryFiles, state: dict[str, Any]) -> None:
    """Idempotent: after a crash the file is either still whole or already cut."""
    cut, committed = state["cutting"], state["history_size"]
    if size_of(files.rows) != committed - cut:  # not cut yet
        tmp = files.rows.with_name(f".{files.rows.name}.cut.tmp")
        with open(files.rows, "rb") as src, open(tmp, "wb") as dst:
            src.seek(cut)
            remaining = committed - cut
            while remaining > 0:
                block = src.read(min(remaining, 1 << 20))
                if not block:
                    break
                dst.write(block)
                remaining -= len(block)
            dst.flush()
            os.fsync(dst.fileno())
        os.chmod(tmp, FILE_MODE)
        crash_point("archive.before_cut")
        commit_temp(tmp, files.rows)
    state.update(history_size=committed - cut, archived_bytes=0, cutting=0)
    save_state(files, state)


def finish_legacy_compaction(files: HistoryFiles, state: dict[str, Any]) -> None:
    """A monthly compaction interrupted by an older version: its verified .jsonl.gz holds the
    month, so those rows are dropped from the plain file (the daily conversion follows)."""
    months = set(state["pending_compaction"])
    keep_from = 0
    for offset_end, line in lines_with_offsets(files.rows, limit=state["history_size"]):
        month = day_of(line)[:7]
        if month not in months or not (files.dir / f"market_cap_history-{month}.jsonl.gz").exists():
            break
        keep_from = offset_end
    state["pending_compaction"] = []
    if keep_from:
        state["archived_bytes"] = keep_from
        start_cut(files, state)
    else:
        save_state(files, state)
