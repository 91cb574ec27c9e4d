"""Any time range of the history as the same JSONL lines it was committed as (for jq)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .columnar import read_lines
from .files import HistoryFiles, lines_with_offsets, read_manifest
from .legacy import legacy_lines
from .store import HistoryStore


@dataclass(frozen=True)
class TimeRange:
    """Inclusive bounds on `ts`; a bare date as the end means through that whole day."""

    start: str
    end: str

    @classmethod
    def parse(cls, start: str, end: str | None = None) -> TimeRange:
        upper = end or start
        if len(upper) == 10:
            upper += "T23:59:59Z"
        return cls(start, upper)

    def holds(self, ts: str) -> bool:
        return self.start <= ts <= self.end

    def touches_day(self, day: str) -> bool:
        return self.start[:10] <= day <= self.end[:10]


def export_lines(store: HistoryStore, span: TimeRange) -> Iterator[bytes]:
    """Committed lines with `ts` in the range, oldest first, byte for byte."""
    files = store.files
    state = store.read_state()
    archived = read_manifest(files)
    segments: list[tuple[str, Iterator[bytes]]] = []
    for day, entry in archived.items():
        if span.touches_day(day):
            segments.append((day, read_lines(files.archive_dir / entry["file"], files.dir)))
    for legacy in files.legacy_archives():
        month = legacy.name[len("market_cap_history-") : -len(".jsonl.gz")]
        if span.start[:7] <= month <= span.end[:7]:
            # Converted days are a prefix of their month: what the archive still holds follows.
            segments.append((f"{month}-99", legacy_lines(legacy, set(archived))))
    segments.append(("9999", _plain_lines(files, state)))
    for _, lines in sorted(segments, key=lambda segment: segment[0]):
        for line in lines:
            if span.holds(line[7:27].decode("ascii", "replace")):
                yield line


def _plain_lines(files: HistoryFiles, state: dict) -> Iterator[bytes]:
    committed, start = state["history_size"], state["archived_bytes"]
    for _, line in lines_with_offsets(files.rows, limit=committed, start=start):
        yield line
