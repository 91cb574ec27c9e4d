"""Bringing the files back to their commit point: cut uncommitted tails, rebuild a lost state."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..clock import compact_id, parse_iso, utc_iso
from ..errors import HistoryDamaged
from .files import (
    LEGACY_PREFIX,
    LEGACY_SUFFIX,
    HistoryFiles,
    archived_days,
    lines_with_offsets,
    size_of,
    snapshot_groups,
)
from .state import RECENT_IDS_KEPT, empty_state

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


def _snapshot_entries(files: HistoryFiles) -> list[tuple[int, dict[str, Any]]]:
    """Readable lines of snapshots.jsonl up to the first damaged one, with end offsets."""
    entries: list[tuple[int, dict[str, Any]]] = []
    for offset_end, line in lines_with_offsets(files.snapshots):
        try:
            entry = json.loads(line)
            ts, count = str(entry["ts"]), int(entry["coin_count"])
            parse_iso(ts)
        except (ValueError, KeyError, TypeError, RecursionError):
            break
        kept = {"ts": ts, "coin_count": count, "id": entry.get("snapshot_id")}
        entries.append((offset_end, kept))
    return entries


def _row_keys(files: HistoryFiles) -> Iterator[tuple[str, Any, int]]:
    for offset_end, line in lines_with_offsets(files.rows):
        try:
            row = json.loads(line)
            ts, ident = row["ts"], row["id"]
        except (ValueError, KeyError, TypeError, RecursionError):
            return
        if not isinstance(ts, str):
            return
        yield ts, ident, offset_end


def rebuild_state(files: HistoryFiles) -> dict[str, Any]:
    """Recover the commit point from the files themselves (state file lost or damaged).

    A snapshot counts as committed when its line in snapshots.jsonl is readable and its
    rows are all there (in the plain file, or in an archived day or legacy month); the first one
    that fails ends the committed prefix, and everything after it is cut on repair.
    Memory stays bounded whatever the files' size: one snapshot's ids at a time.
    """
    log.warning("history state missing or damaged: rebuilding it from %s", files.dir)
    entries = _snapshot_entries(files)
    counts = {entry["ts"]: entry["coin_count"] for _, entry in entries}
    days = archived_days(files)
    months = {p.name[len(LEGACY_PREFIX) : -len(LEGACY_SUFFIX)] for p in files.legacy_archives()}

    def archived(ts: str) -> bool:
        return ts[:10] in days or ts[:7] in months

    complete: dict[str, int] = {}
    last_ids: tuple[str | None, list[str]] = (None, [])
    archived_bytes, leading = 0, True
    for group in snapshot_groups(_row_keys(files)):
        want = counts.get(group.ts)
        whole = bool(want) and len(group.ids) >= want
        if whole:
            complete[group.ts] = group.ends[want - 1]
            last_ids = (group.ts, group.ids[:want])
        leading = leading and whole and archived(group.ts)
        if leading:  # a plain head already in Parquet, not yet dropped from the file
            archived_bytes = complete[group.ts]
    state = empty_state()
    committed: list[tuple[int, dict[str, Any]]] = []
    for offset_end, entry in entries:
        if entry["ts"] in complete:
            state["history_size"] = complete[entry["ts"]]
        elif not archived(entry["ts"]):
            break
        committed.append((offset_end, entry))
    state["archived_bytes"] = min(archived_bytes, state["history_size"])
    if committed:
        last = committed[-1][1]
        state.update(
            snapshots_size=committed[-1][0],
            snapshot_count=len(committed),
            last_ts=last["ts"],
            last_snapshot_id=last["id"],
            last_coin_count=last["coin_count"],
            recent_snapshot_ids=[e["id"] for _, e in committed][-RECENT_IDS_KEPT:],
            # last_updated unknown (None): the next snapshot counts as changed.
            last_updated=dict.fromkeys(last_ids[1] if last_ids[0] == last["ts"] else []),
        )
    return state
