"""The history store: all-or-nothing, idempotent appends with a sidecar commit point.

Protocol (docs/design.md, "Commit protocol"): under an flock, bytes past the committed
sizes recorded in `history/.state.json` are a torn or uncommitted tail — they are copied to
a `.cut-<utc>` file and truncated. A batch is appended with one write + fsync, then the
state file is replaced atomically: that replace is the commit point. Appending never
re-reads the history, so it costs the same with one snapshot stored or ten thousand.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import now
from ..errors import HistoryDamaged, WriteError
from ..fsio import FILE_MODE, crash_point, ensure_subdir, locked, write_all
from ..jsonio import dumps
from ..redact import redact
from .archive import ARCHIVE_BUDGET_S, Archiver, ensure_archive_dir
from .files import HistoryFiles, size_of, ts_of
from .manifest import read_manifest
from .reader import open_picture
from .repair import cut_tail, rebuild_state
from .state import RECENT_IDS_KEPT, HistoryHead, load_state, save_state, settled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Commit:
    """What one snapshot adds to the history."""

    ts: str
    snapshot_id: str
    rows: bytes
    row_count: int
    last_updated: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)


class HistoryStore:
    """history/ in an output directory, as the collectors write it."""

    def __init__(self, out_dir: Path) -> None:
        self.files = HistoryFiles(out_dir)
        self.dir = self.files.dir
        self._rebuilt: HistoryHead | None = None  # a head rebuilt once, not yet saved
        self.rebuild_s = 0.0  # time this run spent rebuilding a lost head
        self.archived_pieces: list[str] = []  # file names, by the last archive_closed_days

    # --- the head ----------------------------------------------------------------------------
    def read_state(self) -> HistoryHead:
        """The committed head; rebuilt from the files (once) when missing or damaged."""
        head, problem = load_state(self.files)
        if head is not None:
            return head
        if self._rebuilt is not None:
            return self._rebuilt
        if problem != "missing":
            log.warning("history state %s is %s", self.files.state.name, problem)
        if size_of(self.files.rows) == 0 and size_of(self.files.snapshots) == 0:
            return HistoryHead()
        started = time.monotonic()
        self._rebuilt = rebuild_state(self.files, read_manifest(self.files))
        self.rebuild_s += time.monotonic() - started
        return self._rebuilt

    def repair(self, head: HistoryHead) -> HistoryHead:
        """Settle an interrupted switch, then cut uncommitted tails. Hold the lock."""
        head = settled(head, size_of(self.files.rows))
        cut_tail(self.files.rows, head.history_size)
        cut_tail(self.files.snapshots, head.snapshots_size)
        return head

    def prepare(self) -> HistoryHead:
        """Repair under the lock and return the committed head (no request made yet)."""
        ensure_subdir(self.dir)
        with locked(self.files.lock):
            before = self.read_state()
            head = self.repair(before)
            if self._rebuilt is not None or head != before:
                save_state(self.files, head)  # rebuilt once; later reads use the file
                self._rebuilt = None
            return head

    def archived_last_day(self) -> str | None:
        """The newest day with an archived piece: no snapshot may be committed into it."""
        return read_manifest(self.files).last_day

    # --- append ----------------------------------------------------------------------------
    def commit(self, commit: Commit) -> bool:
        """Append one snapshot exactly once; False when it was already committed.

        Raises:
            WriteError: the disk refused the append; the history is as it was.
            HistoryDamaged: the snapshot's day is already archived (the clock moved back).
        """
        ensure_subdir(self.dir)
        with locked(self.files.lock):
            head = self.repair(self.read_state())
            if commit.snapshot_id in head.recent_snapshot_ids or (
                head.last_ts is not None and commit.ts <= head.last_ts
            ):
                log.info("history: snapshot %s already committed; nothing appended", commit.ts)
                return False
            archived = self.archived_last_day()
            if archived is not None and commit.ts[:10] <= archived:
                raise HistoryDamaged(
                    f"snapshot {commit.ts} falls in {archived}, a day already archived: "
                    "the clock moved back; nothing was committed"
                )
            rows = redact(commit.rows)  # sizes below are of the bytes really written
            line = redact((dumps(commit.summary) + "\n").encode())
            try:
                _append(self.files.rows, rows, "history.mid_append")
                _append(self.files.snapshots, line, "snapshots.mid_append")
            except OSError as exc:
                self._rollback(head)
                raise WriteError(f"cannot append to the history: {exc.strerror}") from exc
            crash_point("history.before_commit")
            recent = (*head.recent_snapshot_ids, commit.snapshot_id)[-RECENT_IDS_KEPT:]
            new = head.replace(
                history_size=head.history_size + len(rows),
                snapshots_size=head.snapshots_size + len(line),
                snapshot_count=head.snapshot_count + 1,
                last_ts=commit.ts,
                last_snapshot_id=commit.snapshot_id,
                last_coin_count=commit.row_count,
                recent_snapshot_ids=recent,
                last_updated=commit.last_updated,
            )
            try:
                save_state(self.files, new)
            except WriteError:
                self._rollback(self.read_state())
                raise
            self._rebuilt = None
            crash_point("history.after_commit")
            return True

    def _rollback(self, head: HistoryHead) -> None:
        for path, size in (
            (self.files.rows, head.history_size),
            (self.files.snapshots, head.snapshots_size),
        ):
            if size_of(path) > size:
                with open(path, "r+b") as handle:
                    handle.truncate(size)

    # --- archives ---------------------------------------------------------------------------
    def archive_closed_days(self, budget_s: float | None = None) -> list[str]:
        """Move days that have ended (UTC) into verified Parquet pieces, within a time budget.

        Returns the days of the pieces archived by this call (their file names are in
        `archived_pieces`).
        """
        today = time.strftime("%Y-%m-%d", time.gmtime(now()))
        ensure_subdir(self.dir)
        with locked(self.files.lock):
            head = self.repair(self.read_state())
            ensure_archive_dir(self.files)
            first = self.plain_first_day(head)
            waiting = first is not None and first < today
            self.archived_pieces = []
            work = waiting or head.archived_bytes or head.pending_compaction
            if not (work or self.files.legacy_archives() or not read_manifest(self.files).clean):
                return []
            with open_picture(self.files.dir.parent) as picture:
                expected = picture.expected()
            budget = ARCHIVE_BUDGET_S - self.rebuild_s if budget_s is None else budget_s
            archiver = Archiver(self.files, head, expected)
            archiver.run(today, budget)
            self.archived_pieces = list(archiver.done)
            return list(dict.fromkeys(name[:10] for name in archiver.done))

    # --- reading ------------------------------------------------------------------------------
    def plain_first_day(self, head: HistoryHead) -> str | None:
        """The day of the first row still waiting in the plain file (None when empty)."""
        if head.archived_bytes >= head.history_size:
            return None
        with open(self.files.rows, "rb") as handle:
            handle.seek(head.archived_bytes)
            return ts_of(handle.read(30))[:10]

    def total_bytes(self) -> int:
        """Bytes of every file under history/ (Parquet archives, rows, cut-offs, state)."""
        if not self.dir.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.dir.rglob("*") if p.is_file())


def _append(path: Path, data: bytes, crash_name: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        half = len(data) // 2
        write_all(fd, data[:half])
        crash_point(crash_name)
        write_all(fd, data[half:])
        os.fsync(fd)
    finally:
        os.close(fd)
