"""Whole snapshots of closed days, grouped into the pieces archiving converts one at a time.

A piece is a byte range of a file of history lines (the plain file, or a legacy day spooled
to a temp file): at most PIECE_ROWS rows of one day, or exactly what an existing manifest
entry holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import HistoryDamaged
from .files import lines_with_offsets, snapshot_groups
from .manifest import ArchiveEntry, Manifest

PIECE_ROWS = 1_000_000  # a paid day polled every 30 min (576,000 rows) is one piece


@dataclass
class Piece:
    """Whole snapshots of one closed day, `start`…`end` in `path` (a plain or spooled file)."""

    day: str
    origin: str  # "plain" or a legacy archive's name
    path: Path
    start: int
    end: int
    rows: int
    first_ts: str
    last_ts: str
    listed: ArchiveEntry | None  # the manifest entry that already holds these snapshots

    def lines(self) -> Iterator[bytes]:
        for _, line in lines_with_offsets(self.path, limit=self.end, start=self.start):
            yield line

    def sha256(self) -> str:
        sha = hashlib.sha256()
        with open(self.path, "rb") as handle:
            handle.seek(self.start)
            remaining = self.end - self.start
            while remaining > 0 and (block := handle.read(min(remaining, 1 << 20))):
                sha.update(block)
                remaining -= len(block)
        return sha.hexdigest()


def pieces_of(
    path: Path,
    start: int,
    limit: int | None,
    origin: str,
    manifest: Manifest,
    today: str,
    max_rows: int = PIECE_ROWS,
) -> Iterator[Piece]:
    """The pieces of the snapshots in `path` from `start`, in order, days before `today`.

    Snapshots the manifest already covers come as the piece of their entry; the others are
    grouped by day, at most `max_rows` rows a piece (at least one snapshot).

    Raises:
        HistoryDamaged: a snapshot up to `archived_through` that no entry covers.
    """
    through = manifest.archived_through
    piece: Piece | None = None
    lines = lines_with_offsets(path, limit=limit, start=start)
    for group in snapshot_groups(lines, start):
        day = group.ts[:10]
        if day >= today:
            break
        listed = manifest.covering(group.ts) if through and group.ts <= through else None
        if through and group.ts <= through and listed is None:
            raise HistoryDamaged(
                f"snapshot {group.ts} in {path.name} is older than the newest archive "
                f"({through}) but in no archive piece; not archived, nothing cut"
            )
        if piece is not None and (
            listed is not piece.listed
            or (listed is None and (day != piece.day or piece.rows + group.rows > max_rows))
        ):
            yield piece
            piece = None
        if piece is None:
            piece = Piece(day, origin, path, group.start, group.end, 0, group.ts, group.ts, listed)
        piece.rows += group.rows
        piece.end, piece.last_ts = group.end, group.ts
    if piece is not None:
        yield piece
