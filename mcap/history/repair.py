"""Bringing the files back to their commit point: cut uncommitted tails, rebuild a lost head."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..clock import compact_id, parse_iso, utc_iso
from ..errors import HistoryDamaged
from .files import HistoryFiles, legacy_month, lines_with_offsets, size_of, ts_key, ts_of
from .manifest import Manifest
from .state import RECENT_IDS_KEPT, HistoryHead

log = logging.getLogger(__name__)


def cut_tail(path: Path, committed: int) -> int:
    """Move bytes past the committed size into `<name>.cut-<utc>`; return how many.

    Raises:
        HistoryDamaged: the file is shorter than what was committed.
    """
    size = size_of(path)
    if size < committed:
        raise HistoryDamaged(
            f"{path.name} is {size} bytes but {committed} bytes were committed: "
            "it was truncated or replaced outside the collector"
        )
    if size == committed:
        return 0
    cut_path = path.with_name(f"{path.name}.cut-{compact_id(utc_iso())}")
    with open(path, "rb") as src, open(cut_path, "ab") as dst:
        src.seek(committed)
        shutil.copyfileobj(src, dst)
        dst.flush()
        os.fsync(dst.fileno())
    with open(path, "r+b") as handle:
        handle.truncate(committed)
        os.fsync(handle.fileno())
    log.warning(
        "history repair: cut %d uncommitted byte(s) from %s (kept in %s)",
        size - committed,
        path.name,
        cut_path.name,
    )
    return size - committed


@dataclass(frozen=True)
class _Listed:
    """A readable line of snapshots.jsonl."""

    end: int  # offset just after the line
    ts: str
    coin_count: int
    snapshot_id: str | None


def _listed_snapshots(files: HistoryFiles) -> list[_Listed]:
    """Readable lines of snapshots.jsonl up to the first damaged one."""
    listed: list[_Listed] = []
    for end, line in lines_with_offsets(files.snapshots):
        try:
            entry = json.loads(line)
            ts, count = str(entry["ts"]), int(entry["coin_count"])
            parse_iso(ts)
        except (ValueError, KeyError, TypeError, RecursionError):
            break
        listed.append(_Listed(end, ts, count, entry.get("snapshot_id")))
    return listed


def _whole_snapshots(files: HistoryFiles, counts: dict[str, int]) -> dict[str, tuple[int, int]]:
    """ts → (offset of its first row, offset after its last expected row), for every snapshot
    whose rows are all in the plain file (only the first 27 bytes of each line are read)."""
    whole: dict[str, tuple[int, int]] = {}
    key, ts, rows, start, offset = b"", "", 0, 0, 0
    for end, line in lines_with_offsets(files.rows):
        if ts_key(line) != key:
            try:
                ts = ts_of(line)
            except HistoryDamaged:
                break  # not a line of ours: the committed prefix ends here
            key, rows, start = ts_key(line), 0, offset
        rows += 1
        offset = end
        if rows == counts.get(ts):
            whole[ts] = (start, end)
    return whole


def rebuild_state(files: HistoryFiles, manifest: Manifest) -> HistoryHead:
    """Recover the commit point from the files themselves (state file lost or damaged).

    A snapshot counts as committed when its line in snapshots.jsonl is readable and its
    rows are all there (in the plain file, or in an archived piece or legacy month); the
    first one that fails ends the committed prefix, and everything after it is cut on repair.
    Memory stays bounded whatever the files' size: one snapshot's ids at a time.
    """
    log.warning("history state missing or damaged: rebuilding it from %s", files.dir)
    listed = _listed_snapshots(files)
    through = manifest.archived_through
    months = {legacy_month(p) for p in files.legacy_archives()}

    def archived(ts: str) -> bool:
        return (through is not None and ts <= through) or ts[:7] in months

    whole = _whole_snapshots(files, {entry.ts: entry.coin_count for entry in listed})
    committed: list[_Listed] = []
    history_size = archived_bytes = 0
    leading = True
    last_rows: tuple[int, int] | None = None
    for entry in listed:
        if entry.ts in whole:
            last_rows = whole[entry.ts]
            history_size = last_rows[1]
            leading = leading and archived(entry.ts)
            if leading:  # a plain head already in Parquet, not yet dropped from the file
                archived_bytes = history_size
        elif archived(entry.ts):
            last_rows = None
        else:
            break
        committed.append(entry)
    if not committed:
        return HistoryHead()
    last = committed[-1]
    return HistoryHead(
        history_size=history_size,
        snapshots_size=last.end,
        snapshot_count=len(committed),
        last_ts=last.ts,
        last_snapshot_id=last.snapshot_id,
        last_coin_count=last.coin_count,
        recent_snapshot_ids=tuple(
            e.snapshot_id for e in committed[-RECENT_IDS_KEPT:] if e.snapshot_id
        ),
        # last_updated unknown (None): the next snapshot counts as changed.
        last_updated=dict.fromkeys(_ids_between(files, last_rows) if last_rows else ()),
        archived_bytes=min(archived_bytes, history_size),
    )


def _ids_between(files: HistoryFiles, extent: tuple[int, int]) -> list[str]:
    ids = []
    for _, line in lines_with_offsets(files.rows, limit=extent[1], start=extent[0]):
        try:
            ids.append(json.loads(line)["id"])
        except (ValueError, KeyError, TypeError, RecursionError):
            continue
    return ids
