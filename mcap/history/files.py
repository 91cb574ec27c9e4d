"""Where the history lives and how its lines are read: names, sizes, lines, snapshot groups."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

HISTORY_DIR = "history"
HISTORY_NAME = "market_cap_history.jsonl"
SNAPSHOTS_NAME = "snapshots.jsonl"
GAPS_NAME = "gaps.jsonl"
STATE_NAME = ".state.json"
LOCK_NAME = ".history.lock"
ARCHIVE_PREFIX = "market_cap_history-"
ARCHIVE_SUFFIX = ".jsonl.gz"
ARCHIVE_PATTERN = f"{ARCHIVE_PREFIX}*{ARCHIVE_SUFFIX}"
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

    def archive(self, period: str) -> Path:
        return self.dir / f"{ARCHIVE_PREFIX}{period}{ARCHIVE_SUFFIX}"

    def archives(self) -> list[Path]:
        return sorted(self.dir.glob(ARCHIVE_PATTERN))

    @staticmethod
    def archive_period(path: Path) -> str:
        return path.name[len(ARCHIVE_PREFIX) : -len(ARCHIVE_SUFFIX)]


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def lines_with_offsets(path: Path, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Complete lines (split on b'\\n' only) with the byte offset just after each.

    Stops at `limit` (the committed size) and at an unterminated last line.
    """
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        offset = 0
        for line in handle:
            if not line.endswith(b"\n"):
                return
            offset += len(line)
            if limit is not None and offset > limit:
                return
            yield offset, line


def row_month(line: bytes) -> str | None:
    """The `YYYY-MM` of a history row from its first bytes (rows start `{"ts":"YYYY-MM-…`)."""
    if line.startswith(b'{"ts":"') and len(line) > 14:
        return line[7:14].decode("ascii", "replace")
    return None


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
