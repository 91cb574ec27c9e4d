"""Any time range of the history as the same JSONL lines it was committed as (for jq).

Read through the reader of record: archived pieces as the manifest lists them, each file's
SHA-256 checked before a line of it is printed, and a piece printed whole is hashed as it
goes and compared with the SHA-256 of the lines it was made from; then legacy monthly
archives not yet converted; then the committed plain lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from ..clock import time_bound
from ..errors import ArchiveDamaged
from . import columnar
from .files import ts_of
from .points_reader import merged_lines, split_lines
from .reader import Picture

POINT_BATCH = 2_000  # rows a piece's cursor holds while the pieces are merged


@dataclass(frozen=True)
class TimeRange:
    """Inclusive bounds on `ts`; a bare date as the end means through that whole day."""

    start: str
    end: str

    @classmethod
    def parse(cls, start: str, end: str | None = None) -> TimeRange:
        """Raises ValueError for an impossible date or time, or FROM after TO."""
        lower = time_bound(start)
        upper = time_bound(end if end is not None else start, end_of_day=True)
        if lower > upper:
            raise ValueError(f"FROM {start} is after TO {end}")
        return cls(lower, upper)

    def holds(self, ts: str) -> bool:
        return self.start <= ts <= self.end

    def overlaps(self, first: str, last: str) -> bool:
        return first <= self.end and self.start <= last

    def within(self, first: str, last: str) -> bool:
        return self.start <= first and last <= self.end


def export_lines(picture: Picture, span: TimeRange) -> Iterator[bytes]:
    """Committed lines with `ts` in the range, oldest first, byte for byte (in chunks).

    Raises:
        ArchiveDamaged: the history cannot be read truthfully (checked before anything is
            yielded), or a piece did not print back as it was archived.
    """
    picture.require_trustworthy()
    pieces = [e for e in picture.manifest.entries if span.overlaps(e.first_ts, e.last_ts)]
    for entry in pieces:  # every file it prints from, whole, before the first line
        problem = picture.file_problem(entry, full=True)
        if problem:
            raise ArchiveDamaged(f"the history cannot be read truthfully: {problem}")
    if pieces:
        with columnar.connect(None) as con:
            for entry in pieces:
                path = picture.fd_path(picture.archives[entry.file])
                whole = span.within(entry.first_ts, entry.last_ts)
                yield from _checked(
                    columnar.read_lines(con, path, None if whole else (span.start, span.end)),
                    entry.source_sha256 if whole else None,
                    entry.file,
                )
    for _, handle in picture.legacy:
        yield from _in_span(picture.legacy_lines(handle), span)
    yield from _in_span(picture.plain_lines(), span)


def export_points(picture: Picture, span: TimeRange) -> Iterator[bytes]:
    """Backfilled points with `ts` in the range as their JSONL lines, by (ts, id).

    Raises:
        ArchiveDamaged: as export_lines.
    """
    picture.require_trustworthy()
    points = picture.points
    if points is None or not points.count:
        return
    pieces = [p for p in points.head.pieces if span.overlaps(p.first_ts, p.last_ts)]
    for piece in pieces:
        problem = points.piece_problem(piece, full=True)
        if problem:
            raise ArchiveDamaged(f"the history cannot be read truthfully: {problem}")
    plain = sorted(_in_span(points.plain_lines(), span))
    with columnar.connect(None) as con:
        streams = [iter(plain)]
        for piece in pieces:
            whole = span.within(piece.first_ts, piece.last_ts)
            lines = columnar.read_lines(
                columnar.cursor(con), picture.fd_path(points.pieces[piece.file]),
                None if whole else (span.start, span.end), batch=POINT_BATCH,
            )  # fmt: skip
            name = f"backfill/archive/{piece.file}"
            checked = _checked(lines, piece.source_sha256 if whole else None, name)
            streams.append(split_lines(checked))
        yield from merged_lines(streams)


def _checked(chunks: Iterator[bytes], sha256: str | None, name: str) -> Iterator[bytes]:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
        yield chunk
    if sha256 is not None and digest.hexdigest() != sha256:
        raise ArchiveDamaged(
            f"archive/{name} did not print back the lines it was made from; the output above "
            "is not the history",
            hint="report this (a DuckDB upgrade that prints numbers differently?); "
            "the file itself is unchanged",
        )


def _in_span(lines: Iterator[bytes], span: TimeRange) -> Iterator[bytes]:
    for line in lines:
        if span.holds(ts_of(line)):
            yield line
