"""Legacy monthly `.jsonl.gz` archives of older versions, read day by day for conversion.

Each not-yet-archived day is spooled to a temp file in one streaming pass over the archive;
blocks inside days already converted are skipped without splitting them into lines.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HistoryDamaged
from ..fsio import fsync_dir
from .files import HistoryFiles

log = logging.getLogger(__name__)


@dataclass
class DaySource:
    """One closed day's committed lines, wherever they are."""

    day: str
    origin: str  # "plain" or a legacy archive's file name
    lines: Callable[[], Iterator[bytes]]
    rows: int
    end: int = 0  # plain only: offset just after the day's last line


def legacy_days(files: HistoryFiles, path: Path, archived: dict[str, Any]) -> Iterator[DaySource]:
    """The days of a legacy monthly gzip archive not yet archived, one pass over the file.

    Each such day is spooled to a temp file beside the history, then offered; blocks of
    days already archived are skipped without splitting them into lines.
    """
    spool: Path | None = None
    out = None
    day, rows = None, 0
    try:
        for block_day, lines in _gz_day_runs(path, archived):
            if block_day != day:
                if out is not None:
                    out.close()
                    yield _spooled(path, day, spool, rows)
                day, rows = block_day, 0
                spool = files.dir / f".legacy-{block_day}.jsonl.tmp"
                out = open(spool, "wb")
            out.writelines(lines)
            rows += len(lines)
        if out is not None:
            out.close()
            yield _spooled(path, day, spool, rows)
    finally:
        if out is not None:
            out.close()
        for leftover in files.dir.glob(".legacy-*.jsonl.tmp"):
            leftover.unlink(missing_ok=True)


def _spooled(path: Path, day: str | None, spool: Path | None, rows: int) -> DaySource:
    def lines() -> Iterator[bytes]:
        with open(spool, "rb") as handle:  # type: ignore[arg-type]
            yield from handle

    return DaySource(str(day), path.name, lines, rows)


def _gz_day_runs(path: Path, archived: dict[str, Any]) -> Iterator[tuple[str, list[bytes]]]:
    """(day, lines) runs of a gzip archive, leaving out days already archived."""
    pending = b""
    try:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(4 << 20):
                block, pending = _whole_lines(pending + block)
                if not block:
                    continue
                first, last = day_of(block), day_of(block[block.rfind(b"\n", 0, -1) + 1 :])
                if first == last and first in archived:
                    continue  # a block inside an archived day: no need to split it
                run_day, run = None, []
                for line in block.splitlines(keepends=True):
                    line_day = day_of(line)
                    if line_day != run_day and run:
                        if run_day not in archived:
                            yield run_day, run  # type: ignore[misc]
                        run = []
                    run_day = line_day
                    run.append(line)
                if run and run_day not in archived:
                    yield run_day, run  # type: ignore[misc]
    except (OSError, EOFError, zlib.error) as exc:
        raise HistoryDamaged(f"legacy archive {path.name} is damaged: {exc}") from exc


def legacy_lines(path: Path, archived: set[str] | dict[str, Any]) -> Iterator[bytes]:
    """The lines of a legacy monthly archive whose day is not yet converted."""
    try:
        with gzip.open(path, "rb") as handle:
            for line in handle:
                if line[7:17].decode("ascii", "replace") not in archived:
                    yield line
    except (OSError, EOFError, zlib.error) as exc:
        raise HistoryDamaged(f"legacy archive {path.name} is damaged: {exc}") from exc


def _whole_lines(data: bytes) -> tuple[bytes, bytes]:
    cut = data.rfind(b"\n") + 1
    return data[:cut], data[cut:]


def day_of(line: bytes) -> str:
    if not line.startswith(b'{"ts":"') or len(line) < 17:
        raise HistoryDamaged("a committed history line does not start with its ts")
    return line[7:17].decode("ascii", "replace")


def drop_converted_legacy(files: HistoryFiles, archived: dict[str, Any]) -> None:
    """A legacy archive none of whose days is left to convert is no longer needed."""
    for legacy in files.legacy_archives():
        if next(_gz_day_runs(legacy, archived), None) is None:
            legacy.unlink()
            fsync_dir(files.dir)
            log.info("archive: %s converted to daily Parquet files and removed", legacy.name)
