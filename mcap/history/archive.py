"""Closed months move out of the plain file into verified archives, exactly once.

Rows are in time order, so closed months are a prefix of the plain file. The months being
moved are recorded in the state first (`pending_compaction`); a run killed at any point
leaves that mark, and the next locked run finishes the job.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import HistoryDamaged, WriteError
from ..fsio import FILE_MODE, commit_temp, crash_point, discard_temp
from .files import HISTORY_NAME, HistoryFiles, lines_with_offsets, row_month, size_of
from .state import save_state

log = logging.getLogger(__name__)


def closed_months(files: HistoryFiles, current: str, committed: int) -> list[str]:
    """Months before `current` at the head of the committed plain rows, oldest first."""
    months: list[str] = []
    for _, line in lines_with_offsets(files.rows, limit=committed):
        month = _month_of(line)
        if month >= current:
            break
        if month not in months:
            months.append(month)
    return months


def start_compaction(files: HistoryFiles, state: dict[str, Any], months: list[str]) -> None:
    """Mark the months as being moved, then move them."""
    state["pending_compaction"] = months
    save_state(files, state)
    finish_compaction(files, state)


def finish_compaction(files: HistoryFiles, state: dict[str, Any]) -> None:
    """Idempotent: archive each pending month, then drop those rows from the plain file."""
    months = set(state["pending_compaction"])
    ranges: dict[str, list[int]] = {}
    keep_from = 0
    for offset_end, line in lines_with_offsets(files.rows, limit=state["history_size"]):
        month = _month_of(line)
        if month not in months:
            break
        ranges.setdefault(month, [keep_from, offset_end])[1] = offset_end
        keep_from = offset_end
    for month, (start, end) in ranges.items():
        _write_archive(files, month, start, end)
    if keep_from:
        tmp = files.rows.with_name(f".{HISTORY_NAME}.compact.tmp")
        with open(files.rows, "rb") as src, open(tmp, "wb") as dst:
            src.seek(keep_from)
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.chmod(tmp, FILE_MODE)
        crash_point("compaction.before_replace")
        commit_temp(tmp, files.rows)
        state["history_size"] -= keep_from
    else:
        # Crashed after the plain file was rewritten: it holds exactly the committed rows.
        state["history_size"] = size_of(files.rows)
    state["pending_compaction"] = []
    save_state(files, state)
    for month, (start, end) in ranges.items():
        log.info("history: archived %d byte(s) of %s rows", end - start, month)


def iter_archived_lines(files: HistoryFiles) -> Iterator[tuple[str, bytes]]:
    """Every archived history line, oldest month first, with its file name.

    Raises:
        HistoryDamaged: an archive cannot be read.
    """
    for archive in files.archives():
        try:
            with gzip.open(archive, "rb") as handle:
                for line in handle:
                    yield archive.name, line
        except (OSError, EOFError, zlib.error) as exc:
            raise HistoryDamaged(f"archive {archive.name} is damaged: {exc}") from exc


def _month_of(line: bytes) -> str:
    month = row_month(line)
    if month is None:
        raise HistoryDamaged(f"{HISTORY_NAME} holds a committed line that does not start with ts")
    return month


def _write_archive(files: HistoryFiles, month: str, start: int, end: int) -> None:
    """Stream rows [start, end) into a gzip archive, verified before it is renamed in."""
    path = files.archive(month)
    expected = _range_digest(files.rows, start, end)
    if path.exists():
        if _gzip_digest(path) == expected:
            return  # written by an interrupted earlier compaction
        raise HistoryDamaged(f"{path.name} exists with different rows; refusing to overwrite")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(files.rows, "rb") as src, open(tmp, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
                src.seek(start)
                remaining = end - start
                while remaining:
                    block = src.read(min(remaining, 1 << 20))
                    gz.write(block)
                    remaining -= len(block)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, FILE_MODE)
        if _gzip_digest(tmp) != expected:
            raise WriteError(f"verification of {path.name} failed")
        crash_point("compaction.before_archive_rename")
        commit_temp(tmp, path)
    except OSError as exc:
        raise WriteError(f"cannot write {path.name}: {exc.strerror}") from exc
    finally:
        discard_temp(tmp if tmp.exists() else None)


def _range_digest(path: Path, start: int, end: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(start)
        remaining = end - start
        while remaining:
            block = handle.read(min(remaining, 1 << 20))
            if not block:
                break
            sha.update(block)
            remaining -= len(block)
    return sha.hexdigest()


def _gzip_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with gzip.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()
