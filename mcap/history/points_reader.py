"""The backfilled points as the reader of record sees them: the committed state, its Parquet
pieces and the plain points up to their committed size, all opened under the readers' lock
on history/ (the points' switches take it exclusively, as the snapshots' do).

A backfill commits beside readers (under its own lock, not the readers'): what it appends
after the state a picture read is past that state's sizes and is never read. DuckDB cannot
stop reading a file at a size, so the committed plain points are copied into an anonymous
memory file (`memfd`) that --query names by descriptor; they are bounded (archived in
pieces of PIECE_ROWS).
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from ..errors import ArchiveDamaged
from .files import lines_with_offsets
from .manifest import listed_file_problem
from .points import Piece, PointsFiles, PointsHead, load_head

COPY_BLOCK = 1 << 20


@dataclass
class PointsPicture:
    """The backfilled points committed at the instant of the picture, their files open."""

    files: PointsFiles
    head: PointsHead = field(default_factory=PointsHead)
    state_problem: str | None = None
    plain: BinaryIO | None = None
    plain_size: int = 0
    pieces: dict[str, BinaryIO] = field(default_factory=dict)
    _memfd: BinaryIO | None = None

    def close(self) -> None:
        for handle in [self.plain, self._memfd, *self.pieces.values()]:
            if handle is not None:
                handle.close()
        self.plain, self._memfd, self.pieces = None, None, {}

    @property
    def count(self) -> int:
        return self.head.points

    @property
    def plain_count(self) -> int:
        return self.head.points - sum(piece.rows for piece in self.head.pieces)

    def handles(self) -> dict[str, BinaryIO]:
        """Name under history/ → open file, for messages and DuckDB's allowed paths."""
        named = {f"backfill/archive/{name}": handle for name, handle in self.pieces.items()}
        if self._memfd is not None:
            named["backfill/points.jsonl"] = self._memfd
        if self.plain is not None:
            named["backfill/points.jsonl (file)"] = self.plain
        return named

    # --- lines --------------------------------------------------------------------------
    def plain_lines(self) -> Iterator[bytes]:
        """The committed plain points, in the order they were stored."""
        if self.plain is None:
            return
        for _, line in lines_with_offsets(
            None, limit=self.head.points_size, start=self.head.archived_bytes, handle=self.plain
        ):
            yield line

    def plain_copy(self) -> BinaryIO:
        """The committed plain points as a memory file DuckDB can read whole."""
        if self._memfd is None:
            fd = os.memfd_create("mcap-points", os.MFD_CLOEXEC)
            copy = os.fdopen(fd, "w+b")
            for line in self.plain_lines():
                copy.write(line)
            copy.flush()
            copy.seek(0)
            self._memfd = copy
        return self._memfd

    # --- verification -------------------------------------------------------------------
    def piece_problem(self, piece: Piece, full: bool = False) -> str | None:
        handle = self.pieces.get(piece.file)
        name = f"history/backfill/archive/{piece.file}"
        return listed_file_problem(handle, name, piece, "backfill state", full)

    def problems(self, full: bool = False) -> list[str]:
        """What would make an answer over the backfilled points untrue."""
        found = []
        if self.state_problem:
            found.append(f"history/backfill/.state.json is damaged ({self.state_problem})")
        if self.plain_size < self.head.points_size:
            found.append(
                f"history/backfill/points.jsonl is {self.plain_size} bytes, shorter than the "
                f"{self.head.points_size} committed: it was truncated outside the collector"
            )
        for piece in self.head.pieces:
            problem = self.piece_problem(piece, full)
            if problem:
                found.append(problem)
        return found

    def require_trustworthy(self, full: bool = False) -> None:
        refuse_problems(self.problems(full))


def open_points(files: PointsFiles) -> PointsPicture:
    """Read the committed state and open its files (call it under the readers' lock)."""
    picture = PointsPicture(files)
    try:
        head = load_head(files)
    except ValueError as exc:
        picture.state_problem = str(exc)
        return picture
    picture.plain = _open(files.points)
    if picture.plain is not None:
        picture.plain_size = os.fstat(picture.plain.fileno()).st_size
    picture.head = _settled(head, picture.plain_size)
    for piece in picture.head.pieces:
        handle = _open(files.piece(piece.file))
        if handle is not None:
            picture.pieces[piece.file] = handle
    return picture


def _settled(head: PointsHead, size: int) -> PointsHead:
    """A state left mid-cut (a writer killed in a switch): the cut happened or it did not,
    as the file's size says (what the next writer's repair will record)."""
    if not head.cutting:
        return head
    if size == head.points_size - head.cutting:
        return head.replace(points_size=size, archived_bytes=0, cutting=0)
    return head.replace(cutting=0)


def _open(path: os.PathLike[str]) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except (FileNotFoundError, NotADirectoryError):
        return None


def merged_lines(streams: list[Iterator[bytes]]) -> Iterator[bytes]:
    """Lines of sorted streams (each of (ts, id)-sorted lines), merged in that order."""
    return heapq.merge(*streams)


def split_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Chunks of whole lines → lines (split on b"\\n" only, each keeping it)."""
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            yield chunk[start : end + 1]
            start = end + 1


def refuse_problems(problems: list[str]) -> None:
    """Raises ArchiveDamaged (74) with the first problem, so no view answers over it."""
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ArchiveDamaged(f"the history cannot be read truthfully: {problems[0]}{more}")
