"""Legacy monthly `.jsonl.gz` archives of older versions, read day by day for conversion.

Each day with lines not yet in Parquet is spooled to a temp file in one streaming pass over
the archive; blocks whose lines are all archived already are skipped without splitting them.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path

from ..errors import HistoryDamaged
from .files import HistoryFiles, day_of, ts_of

log = logging.getLogger(__name__)

BLOCK = 4 << 20


def spooled_days(files: HistoryFiles, path: Path, through: str | None) -> Iterator[Path]:
    """Temp files beside the history, one per day, holding the lines after `through`.

    Each file is removed when the next is offered (and when the generator is closed).
    """
    spool: Path | None = None
    out = None
    day = None
    try:
        for line_day, lines in _day_runs(path, through):
            if line_day != day:
                if out is not None:
                    out.close()
                    yield spool  # type: ignore[misc]
                    spool.unlink(missing_ok=True)  # type: ignore[union-attr]
                day = line_day
                spool = files.dir / f".legacy-{line_day}.jsonl.tmp"
                out = open(spool, "wb")
            out.writelines(lines)  # type: ignore[union-attr]
        if out is not None:
            out.close()
            yield spool  # type: ignore[misc]
    finally:
        if out is not None:
            out.close()
        for leftover in files.dir.glob(".legacy-*.jsonl.tmp"):
            leftover.unlink(missing_ok=True)


def _day_runs(path: Path, through: str | None) -> Iterator[tuple[str, list[bytes]]]:
    """(day, lines) runs of a gzip archive, leaving out lines up to `through`."""
    pending = b""
    try:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(BLOCK):
                block, pending = _whole_lines(pending + block)
                if not block:
                    continue
                last = block[block.rfind(b"\n", 0, -1) + 1 :]
                if through is not None and ts_of(last) <= through:
                    continue  # every line of the block is archived: no need to split it
                run_day, run = None, []
                for line in block.splitlines(keepends=True):
                    if through is not None and ts_of(line) <= through:
                        continue
                    line_day = day_of(line)
                    if line_day != run_day and run:
                        yield run_day, run  # type: ignore[misc]
                        run = []
                    run_day = line_day
                    run.append(line)
                if run:
                    yield run_day, run  # type: ignore[misc]
    except (OSError, EOFError, zlib.error) as exc:
        raise HistoryDamaged(f"legacy archive {path.name} is damaged: {exc}") from exc


def _whole_lines(data: bytes) -> tuple[bytes, bytes]:
    cut = data.rfind(b"\n") + 1
    return data[:cut], data[cut:]
