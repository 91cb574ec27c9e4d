"""The history store: all-or-nothing, idempotent appends with a sidecar commit point.

Protocol (reliability.md §2.3, variant B): under an flock, bytes past the committed sizes
recorded in `history/.state.json` are a torn or uncommitted tail — they are copied to a
`.cut-<utc>` file and truncated. A batch is appended with one write + fsync, then the state
file is replaced atomically: that replace is the commit point. Appending never re-reads the
history, so it costs the same with one snapshot stored or ten thousand.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import now, parse_iso
from ..errors import WriteError
from ..fsio import FILE_MODE, crash_point, ensure_subdir, locked, write_all
from ..jsonio import dumps
from ..redact import redact
from .archive import (
    archive_closed_days,
    ensure_archive_dir,
    finish_cut,
    finish_legacy_compaction,
)
from .files import HistoryFiles, lines_with_offsets, size_of
from .repair import cut_tail, rebuild_state
from .state import RECENT_IDS_KEPT, empty_state, load_state, save_state

log = logging.getLogger(__name__)


@dataclass
class Commit:
    """What one snapshot adds to the history."""

    ts: str
    snapshot_id: str
    rows: bytes
    row_count: int
    last_updated: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Diff:
    appeared: list[str]
    disappeared: list[str]
    changed: int
    previous_ts: str | None


def diff_snapshots(state: dict[str, Any], last_updated: dict[str, Any]) -> Diff:
    """Coins that appeared, disappeared or changed since the last committed snapshot.

    A coin counts as unchanged only when both snapshots carry the same `last_updated`
    text; a missing, null or empty one always counts as changed.
    """
    previous: dict[str, Any] = state.get("last_updated") or {}
    if state.get("last_ts") is None:
        return Diff([], [], len(last_updated), None)
    appeared = [i for i in last_updated if i not in previous]
    disappeared = [i for i in previous if i not in last_updated]
    changed = sum(
        1
        for i, stamp in last_updated.items()
        if not (isinstance(stamp, str) and stamp and previous.get(i) == stamp)
    )
    return Diff(appeared, disappeared, changed, state.get("last_ts"))


class HistoryStore:
    """history/ in an output directory: the rows, the per-snapshot lines and their state."""

    def __init__(self, out_dir: Path) -> None:
        self.files = HistoryFiles(out_dir)
        self.dir = self.files.dir
        self._rebuilt: dict[str, Any] | None = None  # a state rebuilt once, not yet saved

    # --- state ---------------------------------------------------------------------------
    def read_state(self) -> dict[str, Any]:
        """The committed state; rebuilt from the files (once) when missing or damaged."""
        state, problem = load_state(self.files)
        if state is not None:
            return state
        if self._rebuilt is not None:
            return dict(self._rebuilt)
        if problem != "missing":
            log.warning("history state %s is %s", self.files.state.name, problem)
        if size_of(self.files.rows) == 0 and size_of(self.files.snapshots) == 0:
            return empty_state()
        self._rebuilt = rebuild_state(self.files)
        return dict(self._rebuilt)

    def repair(self, state: dict[str, Any]) -> int:
        """Finish an interrupted archive step, then cut uncommitted tails. Hold the lock."""
        if state["pending_compaction"]:
            finish_legacy_compaction(self.files, state)
        if state["cutting"]:
            finish_cut(self.files, state)
        cut = cut_tail(self.files.rows, state["history_size"])
        cut += cut_tail(self.files.snapshots, state["snapshots_size"])
        return cut

    def prepare(self) -> dict[str, Any]:
        """Repair under the lock and return the committed state (no request made yet)."""
        ensure_subdir(self.dir)
        with locked(self.files.lock):
            state = self.read_state()
            self.repair(state)
            if self._rebuilt is not None:
                save_state(self.files, state)  # rebuilt once; later reads use the file
                self._rebuilt = None
            return state

    # --- append ----------------------------------------------------------------------------
    def commit(self, commit: Commit) -> bool:
        """Append one snapshot exactly once; False when it was already committed.

        Raises:
            WriteError: the disk refused the append; the history is as it was.
        """
        ensure_subdir(self.dir)
        with locked(self.files.lock):
            state = self.read_state()
            self.repair(state)
            if commit.snapshot_id in state["recent_snapshot_ids"] or (
                state["last_ts"] is not None and commit.ts <= state["last_ts"]
            ):
                log.info("history: snapshot %s already committed; nothing appended", commit.ts)
                return False
            rows = redact(commit.rows)  # sizes below are of the bytes really written
            line = redact((dumps(commit.summary) + "\n").encode())
            try:
                _append(self.files.rows, rows, "history.mid_append")
                _append(self.files.snapshots, line, "snapshots.mid_append")
            except OSError as exc:
                self._rollback(state)
                raise WriteError(f"cannot append to the history: {exc.strerror}") from exc
            crash_point("history.before_commit")
            recent = (state["recent_snapshot_ids"] + [commit.snapshot_id])[-RECENT_IDS_KEPT:]
            state.update(
                history_size=state["history_size"] + len(rows),
                snapshots_size=state["snapshots_size"] + len(line),
                snapshot_count=state["snapshot_count"] + 1,
                last_ts=commit.ts,
                last_snapshot_id=commit.snapshot_id,
                last_coin_count=commit.row_count,
                recent_snapshot_ids=recent,
                last_updated=commit.last_updated,
            )
            try:
                save_state(self.files, state)
            except WriteError:
                self._rollback(self.read_state())
                raise
            self._rebuilt = None
            crash_point("history.after_commit")
            return True

    def _rollback(self, state: dict[str, Any]) -> None:
        for path, size in (
            (self.files.rows, state["history_size"]),
            (self.files.snapshots, state["snapshots_size"]),
        ):
            if size_of(path) > size:
                with open(path, "r+b") as handle:
                    handle.truncate(size)

    # --- archives ---------------------------------------------------------------------------
    def archive_closed_days(self, budget_s: float | None = None) -> list[str]:
        """Move days that have ended (UTC) into verified Parquet archives, within a time budget."""
        today = time.strftime("%Y-%m-%d", time.gmtime(now()))
        ensure_subdir(self.dir)
        with locked(self.files.lock):
            state = self.read_state()
            self.repair(state)
            ensure_archive_dir(self.files)
            first = self.plain_first_day(state)
            if not self.files.legacy_archives() and (first is None or first >= today):
                return []
            expected = {e["ts"]: int(e["coin_count"]) for e in self.snapshot_entries(state)}
            kwargs = {} if budget_s is None else {"budget_s": budget_s}
            return archive_closed_days(self.files, state, expected, today, **kwargs)

    # --- reading ------------------------------------------------------------------------------
    def snapshot_entries(self, state: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Committed, readable lines of snapshots.jsonl (small: one line per snapshot)."""
        state = self.read_state() if state is None else state
        entries = []
        for _, line in lines_with_offsets(self.files.snapshots, limit=state["snapshots_size"]):
            try:
                entry = json.loads(line)
                parse_iso(entry["ts"])
            except (ValueError, KeyError, TypeError, RecursionError):
                continue  # a damaged line: --check-history names it
            entries.append(entry)
        return entries

    def plain_first_day(self, state: dict[str, Any]) -> str | None:
        """The day of the first row still waiting in the plain file (None when empty)."""
        if state["archived_bytes"] >= state["history_size"]:
            return None
        with open(self.files.rows, "rb") as handle:
            handle.seek(state["archived_bytes"])
            head = handle.read(17)
        return head[7:17].decode("ascii", "replace")

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
