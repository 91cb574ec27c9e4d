"""Where the history lives and how its lines are cut: names, sizes, lines, snapshot groups.

Every history line starts with `{"ts":"YYYY-MM-DDTHH:MM:SSZ"` (our encoder writes `ts` first),
so the snapshot a line belongs to is read from its first 27 bytes without parsing it. That
slicing lives here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import HistoryDamaged

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

TS_PREFIX = b'{"ts":"'
_TS_END = len(TS_PREFIX) + 20  # `YYYY-MM-DDTHH:MM:SSZ`


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

    def archive_file(self, name: str) -> Path:
        """A file of archive/ by its plain name (the manifest never holds a path)."""
        return self.archive_dir / name

    def legacy_archives(self) -> list[Path]:
        return sorted(self.dir.glob(f"{LEGACY_PREFIX}*{LEGACY_SUFFIX}"))


def legacy_month(path: Path) -> str:
    """`market_cap_history-2026-04.jsonl.gz` → `2026-04`."""
    return path.name[len(LEGACY_PREFIX) : -len(LEGACY_SUFFIX)]


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def ts_of(line: bytes) -> str:
    """The snapshot time of a committed history line, from its first bytes.

    Raises:
        HistoryDamaged: the line does not start with our `{"ts":"…"` prefix.
    """
    if not line.startswith(TS_PREFIX) or line[_TS_END : _TS_END + 1] != b'"':
        raise HistoryDamaged(f"a history line does not start with its ts: {line[:40]!r}")
    return line[len(TS_PREFIX) : _TS_END].decode("ascii", "replace")


def day_of(line: bytes) -> str:
    """`YYYY-MM-DD` of a committed history line (see ts_of)."""
    return ts_of(line)[:10]


def ts_key(line: bytes) -> bytes:
    """The raw ts bytes of a line: cheap grouping of consecutive lines by snapshot."""
    return line[len(TS_PREFIX) : _TS_END]


def lines_with_offsets(
    path: Path | None, limit: int | None = None, start: int = 0, handle: object = None
) -> Iterator[tuple[int, bytes]]:
    """Complete lines (split on b'\\n' only) from byte `start`, with the offset after each.

    Stops at `limit` (the committed size) and at an unterminated last line. `start` must
    be a line boundary (e.g. the archived head of the plain file, which is not re-read).
    Reads `handle` (an open binary file) when given, else opens `path`.
    """
    if handle is None:
        try:
            handle = open(path, "rb")  # type: ignore[arg-type]
        except FileNotFoundError:
            return
        with handle:  # type: ignore[attr-defined]
            yield from _lines(handle, limit, start)
    else:
        yield from _lines(handle, limit, start)


def _lines(handle: object, limit: int | None, start: int) -> Iterator[tuple[int, bytes]]:
    handle.seek(start)  # type: ignore[attr-defined]
    offset = start
    for line in handle:  # type: ignore[attr-defined]
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
    rows: int
    start: int  # byte offset of the first row
    end: int  # byte offset just after the last row


def snapshot_groups(lines: Iterable[tuple[int, bytes]], start: int) -> Iterator[SnapshotGroup]:
    """(offset after the line, line) in file order → one group per run of equal ts.

    Raises:
        HistoryDamaged: a line without our ts prefix.
    """
    group: SnapshotGroup | None = None
    key = b""
    for end, line in lines:
        if group is None or ts_key(line) != key:
            if group is not None:
                yield group
            group = SnapshotGroup(ts_of(line), 0, start, start)
            key = ts_key(line)
        group.rows += 1
        group.end = start = end
    if group is not None:
        yield group
