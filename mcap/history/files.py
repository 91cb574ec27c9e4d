"""Where the history lives and how its lines are read: names, sizes, lines, snapshot groups."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HISTORY_DIR = "history"
HISTORY_NAME = "market_cap_history.jsonl"
SNAPSHOTS_NAME = "snapshots.jsonl"
GAPS_NAME = "gaps.jsonl"
STATE_NAME = ".state.json"
LOCK_NAME = ".history.lock"
ARCHIVE_DIR = "archive"
MANIFEST_NAME = "manifest.jsonl"
SCHEMA_NAME = "schema.parquet"
# Monthly gzip archives of older versions; converted to daily Parquet files, then removed.
LEGACY_PREFIX = "market_cap_history-"
LEGACY_SUFFIX = ".jsonl.gz"
# Files a collector run replaces or appends to inside history/ (checked before any request).
TARGET_NAMES = (HISTORY_NAME, SNAPSHOTS_NAME, GAPS_NAME, STATE_NAME)


class HistoryFiles:
    """The paths of one output directory's history."""

    def __init__(self, out_dir: Path) -> None:
        self.dir = out_dir / HISTORY_DIR
        self.rows = self.dir / HISTORY_NAME
        self.snapshots = self.dir / SNAPSHOTS_NAME
        self.gaps = self.dir / GAPS_NAME
        self.state = self.dir / STATE_NAME
        self.lock = self.dir / LOCK_NAME
        self.archive_dir = self.dir / ARCHIVE_DIR
        self.manifest = self.archive_dir / MANIFEST_NAME
        self.schema = self.archive_dir / SCHEMA_NAME

    def day_archive(self, day: str) -> Path:
        """`history/archive/YYYY-MM-DD.parquet`."""
        return self.archive_dir / f"{day}.parquet"

    def legacy_archives(self) -> list[Path]:
        return sorted(self.dir.glob(f"{LEGACY_PREFIX}*{LEGACY_SUFFIX}"))


def read_manifest(files: HistoryFiles) -> dict[str, dict[str, Any]]:
    """Archived days by date, from archive/manifest.jsonl (unreadable lines skipped)."""
    entries: dict[str, dict[str, Any]] = {}
    for _, line in lines_with_offsets(files.manifest):
        try:
            entry = json.loads(line)
            entries[str(entry["day"])] = entry
        except (ValueError, KeyError, TypeError, RecursionError):
            continue
    return entries


def archived_days(files: HistoryFiles) -> set[str]:
    """Days held by Parquet archives: listed in the manifest, or present as a day file."""
    named = {p.stem for p in files.archive_dir.glob("????-??-??.parquet")}
    return set(read_manifest(files)) | named


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def lines_with_offsets(
    path: Path, limit: int | None = None, start: int = 0
) -> Iterator[tuple[int, bytes]]:
    """Complete lines (split on b'\\n' only) from byte `start`, with the offset after each.

    Stops at `limit` (the committed size) and at an unterminated last line. `start` must
    be a line boundary (e.g. the archived head of the plain file, which is not re-read).
    """
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        handle.seek(start)
        offset = start
        for line in handle:
            if not line.endswith(b"\n"):
                return
            offset += len(line)
            if limit is not None and offset > limit:
                return
            yield offset, line


@dataclass
class SnapshotGroup:
    """The consecutive rows of one `ts` in a history file."""

    ts: str
    ids: list[str]
    ends: list[int]  # byte offset just after each row


def snapshot_groups(rows: Iterable[tuple[str, str, int]]) -> Iterator[SnapshotGroup]:
    """(ts, id, offset after the row) in file order → one group per run of equal ts."""
    group: SnapshotGroup | None = None
    for ts, ident, end in rows:
        if group is None or ts != group.ts:
            if group is not None:
                yield group
            group = SnapshotGroup(ts, [], [])
        group.ids.append(ident)
        group.ends.append(end)
    if group is not None:
        yield group
