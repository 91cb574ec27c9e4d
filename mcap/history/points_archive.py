"""Backfilled points move from points.jsonl into verified Parquet pieces, exactly once.

The same proof as the snapshot archive (columnar.py): the plain points are sorted by
(ts, id), staged, converted, and printed back byte for byte; then, in one switch under the
readers' lock, the file is moved into place, listed in the state (the pieces list *is* the
state: one atomic replace) and the points it holds cut from points.jsonl, so the plain file
never holds an archived point once a switch is over. A run killed inside the switch leaves
the state saying what was cut (`archived_bytes`); the next one finishes the cut, once those
bytes are proven to be what a listed, unchanged piece was made from. The store's lock is held
for the switch only: a piece is made from committed bytes, which later commits only append
to, so the workers keep committing while it is converted; a switch finds the head as the
piece expects it (no other archiver switched meanwhile) or drops the piece.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..clock import utc_iso
from ..errors import HistoryDamaged, WriteError
from ..fsio import (
    FILE_MODE,
    commit_temp,
    copy_range,
    crash_point,
    discard_temp,
    ensure_subdir,
    locked,
)
from . import columnar
from .files import lines_with_offsets
from .locks import switch_lock
from .manifest import file_sha256, tail_sha256
from .points import Piece, PointsFiles, PointsHead, load_head, repair_head, save_head

log = logging.getLogger(__name__)

PIECE_ROWS = 125_000  # sorted in memory (about 50 MB with the run) before DuckDB converts it
MEMORY_LIMIT = "80MB"  # a piece of 125,000 points sorts within it (DuckDB spills beyond)
SWITCH_WAIT_S = 5.0
_PREPARED = itertools.count()


def compact_points(files: PointsFiles, min_rows: int, budget_s: float) -> PointsHead:
    """Archive plain points (when at least `min_rows` wait) within `budget_s`; the head.

    Hold nothing: this takes the store's lock itself, only to read the head and for each
    switch. A piece is sorted, converted and proven without it, so the backfill's workers
    keep committing meanwhile (their points land after the piece's bytes); a switch whose
    head changed meanwhile (another process archived first) drops its piece.
    """
    started = time.monotonic()
    with locked(files.lock):
        head = repair_head(files, load_head(files))
        if head.archived_bytes:  # a switch was killed before its cut: finish it first
            head = _drop_head(files, head)
            if head.archived_bytes:
                return head  # readers hold the lock; the next run cuts it
    while time.monotonic() - started < budget_s:
        plain = head.points - sum(piece.rows for piece in head.pieces)
        if plain < max(1, min_rows):
            break
        prepared = _prepare_piece(files, head)
        try:
            with locked(files.lock):
                current = load_head(files)
                if current.archived_bytes:  # another process's cut waits: the next run
                    return current
                if current.pieces != head.pieces:
                    head = current  # archived by another process meanwhile: look again
                    continue
                moved = _switch_piece(files, current, prepared)
        finally:
            discard_temp(prepared.tmp if prepared.tmp.exists() else None)
        if moved is None:
            break
        head = moved
    return head


@dataclass(frozen=True)
class Prepared:
    """A proven piece of points.jsonl's bytes [0, end), its file still a temp file."""

    piece: Piece
    tmp: Path
    end: int


def _prepare_piece(files: PointsFiles, head: PointsHead) -> Prepared:
    """The next piece of the committed plain points, sorted, converted and printed back,
    outside the store's lock (the bytes read are committed: later commits only append)."""
    ensure_subdir(files.archive_dir)
    lines, end = [], 0
    for offset, line in lines_with_offsets(files.points, limit=head.points_size, start=0):
        lines.append(line)
        end = offset
        if len(lines) >= PIECE_ROWS:
            break
    lines.sort()  # by ts, then id: positions within a time are then unique and stable
    for before, after in zip(lines, lines[1:], strict=False):
        if before[:60] == after[:60] and _key(before) == _key(after):
            raise HistoryDamaged(f"backfilled point {_key(before)} is stored twice; not archived")
    name = f"{len(head.pieces) + 1:06d}.parquet"
    # Two archivers (processes, or a nested call) may prepare the same piece; one switches.
    mine = f"{name}.{os.getpid()}.{next(_PREPARED)}"
    tmp, staging = files.archive_dir / f".{mine}.tmp", files.dir / f".{mine}.stage.tmp"
    try:
        staged = columnar.stage_lines(iter(lines), staging)
        del lines
        _convert(files, staging, staged, tmp)
        os.chmod(tmp, FILE_MODE)
        size = tmp.stat().st_size
        with open(tmp, "rb") as handle:
            digest, tail = file_sha256(handle), tail_sha256(handle, size)
    except BaseException:
        discard_temp(tmp if tmp.exists() else None)
        raise
    finally:
        staging.unlink(missing_ok=True)
    piece = Piece(
        name, staged.rows, staged.first_ts, staged.last_ts, size, digest, tail,
        staged.sha256, end, utc_iso(),
    )  # fmt: skip
    return Prepared(piece, tmp, end)


def _switch_piece(files: PointsFiles, head: PointsHead, prepared: Prepared) -> PointsHead | None:
    """In one switch under the readers' lock (the store's is held): the piece moved into
    place, listed, and its bytes cut from points.jsonl. None when readers hold the lock."""
    piece, end = prepared.piece, prepared.end
    rest = files.points.with_name(f".{files.points.name}.cut.tmp")
    try:
        copy_range(files.points, end, head.points_size, rest)
        with switch_lock(_history(files), SWITCH_WAIT_S) as held:
            if not held:
                log.info("backfill: readers hold the history; %s waits", piece.file)
                return None
            commit_temp(prepared.tmp, files.piece(piece.file))
            listed = head.replace(pieces=(*head.pieces, piece), archived_bytes=end, cutting=end)
            save_head(files, listed)  # the commit point: listed; the cut below may be redone
            crash_point("backfill.mid_switch")
            commit_temp(rest, files.points)
            head = listed.replace(points_size=head.points_size - end, archived_bytes=0, cutting=0)
            save_head(files, head)
    finally:
        discard_temp(rest if rest.exists() else None)
    log.info("backfill: %d points → archive/%s (%d bytes)", piece.rows, piece.file, piece.bytes)
    return head


def _key(line: bytes) -> bytes:
    return line[: line.index(b',"price_usd"')] if b',"price_usd"' in line else line


def _convert(files: PointsFiles, staging: Path, staged: columnar.Staged, tmp: Path) -> None:
    with columnar.connect(files.dir, memory_limit=MEMORY_LIMIT) as con:
        columnar.write_piece(con, staging, staged, tmp)
        digest = hashlib.sha256()
        for chunk in columnar.read_lines(con, str(tmp)):
            digest.update(chunk)
    if digest.hexdigest() != staged.sha256:
        raise WriteError("backfilled points did not read back identically; kept plain")


def _history(files: PointsFiles) -> object:
    """The history directory's paths, whose lock readers share."""
    from .files import HistoryFiles

    return HistoryFiles(files.dir.parent.parent)


def _head_pieces(head: PointsHead) -> list[tuple[Piece, int, int]]:
    """The pieces made from the plain head [0, archived_bytes), with their extents."""
    found, end = [], head.archived_bytes
    for piece in reversed(head.pieces):
        if end <= 0:
            break
        found.append((piece, end - piece.source_bytes, end))
        end -= piece.source_bytes
    if end != 0:
        raise HistoryDamaged("backfilled points: the archived head matches no pieces; not cut")
    return found[::-1]


def _drop_head(files: PointsFiles, head: PointsHead) -> PointsHead:
    """Drop the archived head of points.jsonl once each of its points is proven to be in a
    listed piece whose file is unchanged."""
    for piece, start, end in _head_pieces(head):
        lines = sorted(line for _, line in lines_with_offsets(files.points, end, start))
        if hashlib.sha256(b"".join(lines)).hexdigest() != piece.source_sha256:
            raise HistoryDamaged(f"backfilled points differ from archive/{piece.file}; not cut")
        with open(files.piece(piece.file), "rb") as handle:
            if file_sha256(handle) != piece.file_sha256:
                raise HistoryDamaged(f"backfill archive/{piece.file} changed; the points stay")
    tmp = files.points.with_name(f".{files.points.name}.cut.tmp")
    try:
        copy_range(files.points, head.archived_bytes, head.points_size, tmp)
        with switch_lock(_history(files), SWITCH_WAIT_S) as held:
            if not held:
                return head
            save_head(files, head.replace(cutting=head.archived_bytes))
            commit_temp(tmp, files.points)
            head = head.replace(
                points_size=head.points_size - head.archived_bytes, archived_bytes=0
            )
            save_head(files, head)
    finally:
        discard_temp(tmp if tmp.exists() else None)
    return head
