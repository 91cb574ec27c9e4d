"""Closed days move out of the plain history into verified Parquet pieces, exactly once.

The archive protocol (docs/design.md): under the history lock, whichever collector appends
history takes the committed rows of days that have ended (UTC), in order, in pieces of whole
snapshots (a day, or part of a large one). Per piece:

1. its lines are staged (counted and hashed) and checked against snapshots.jsonl;
2. DuckDB converts them (`columnar.write_piece`) and reads the file back: the sum of a hash
   of every (ts, position, line) must equal the source's, so the file prints back exactly;
3. a *switch*, under the readers' exclusive lock: the file is moved into place and its
   entry appended to the manifest (a torn manifest line is repaired first, never glued);
4. the state's `archived_bytes` moves past the piece (readers skip archived rows anyway).

Another switch later drops the archived head of the plain file, once every row in it is
verified present in a listed archive whose file is unchanged (plain bytes against the
piece's `source_sha256`, the file against its `file_sha256`). Each step is idempotent; a run
killed anywhere leaves what the next run needs to finish. A run spends at most
ARCHIVE_BUDGET_S here; a backlog drains over several runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..clock import utc_iso
from ..errors import HistoryDamaged, WriteError
from ..fsio import FILE_MODE, atomic_write_bytes, commit_temp, crash_point, discard_temp, fsync_dir
from ..signals import GUARD
from . import columnar
from .files import HistoryFiles, legacy_month, lines_with_offsets, snapshot_groups, ts_of
from .legacy import spooled_days
from .manifest import (
    ArchiveEntry,
    Manifest,
    append_entry,
    file_sha256,
    piece_name,
    read_manifest,
    repair_manifest,
    rewrite_manifest,
    tail_sha256,
)
from .reader import switch_lock
from .state import HistoryHead, save_state

log = logging.getLogger(__name__)

ARCHIVE_BUDGET_S = 25.0  # no run spends longer here (with a rebuild: ≤ 30 s together)
PIECE_ROWS = 1_000_000  # a paid day polled every 30 min (576,000 rows) is one piece
SECONDS_PER_ROW = 5e-6  # measured: stage + convert + verify ≈ 5 s per million rows
CUT_NOW_BYTES = 512 * 1024 * 1024  # copy at most this much to drop an archived head
CUT_BYTES_PER_S = 300e6  # hashing the head, copying and syncing the rest: a slow disk's pace
SWITCH_WAIT_S = 5.0  # how long a switch waits for readers before it waits for a later run


def ensure_archive_dir(files: HistoryFiles) -> None:
    """archive/ with an empty manifest and a zero-row `schema.parquet`, so the DuckDB recipe
    of docs/queries.md works from the first run."""
    files.archive_dir.mkdir(exist_ok=True)
    if not files.schema.exists():
        tmp = files.archive_dir / f".{files.schema.name}.tmp"
        with columnar.connect(files.dir) as con:
            columnar.write_empty(con, tmp)
        commit_temp(tmp, files.schema)
    if not files.manifest.exists():
        atomic_write_bytes(files.manifest, b"")


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


class Archiver:
    """One run's archive step (hold the history lock): pieces, switches, the head's cut."""

    def __init__(self, files: HistoryFiles, head: HistoryHead, expected: dict[str, int]) -> None:
        self.files = files
        self.head = head
        self.expected = expected  # ts → coin count of every committed snapshot
        self.manifest = read_manifest(files)
        self.done: list[str] = []
        self._started = time.monotonic()
        self._budget_s = ARCHIVE_BUDGET_S
        self._rows_done = 0
        self._busy_s = 0.0  # time spent converting, for this machine's rate now

    def run(self, today: str, budget_s: float = ARCHIVE_BUDGET_S) -> HistoryHead:
        """Archive closed days within the budget; returns the head as it now is."""
        self._budget_s = budget_s
        if not self._repair_manifest():
            return self.head
        self._upgrade_manifest()
        if self.head.pending_compaction:
            self._finish_legacy_compaction()
        if self._legacy(today):
            self._plain(today)
        self._drop_archived_head()
        return self.head

    # --- budget -----------------------------------------------------------------------------
    def _seconds_per_row(self) -> float:
        """The measured rate of this run (a busy machine is slower), never below the norm."""
        measured = self._busy_s / self._rows_done if self._rows_done else 0.0
        return max(SECONDS_PER_ROW, measured)

    def _room_for(self, rows: int) -> bool:
        elapsed = time.monotonic() - self._started
        need = 0.3 + rows * self._seconds_per_row()
        return not self.done or elapsed + need <= self._budget_s

    # --- the manifest -----------------------------------------------------------------------
    def _repair_manifest(self) -> bool:
        if self.manifest.clean:
            return True
        with switch_lock(self.files, SWITCH_WAIT_S) as held:
            if not held:
                log.info("archive: readers hold the history; the manifest repair waits")
                return False
            self.manifest = repair_manifest(self.files, self.manifest)
        return True

    def _upgrade_manifest(self) -> None:
        """Entries of older versions get the footer hash --query checks (each file verified
        whole first), so no query has to hash them whole again."""
        old = [e for e in self.manifest.entries if e.tail_sha256 is None]
        if not old:
            return
        upgraded: dict[str, ArchiveEntry] = {}
        for entry in old:
            elapsed = time.monotonic() - self._started
            if elapsed + entry.bytes / CUT_BYTES_PER_S > self._budget_s / 2:
                break  # the rest in later runs: archiving new days comes first
            path = self.files.archive_file(entry.file)
            try:
                with open(path, "rb") as handle:
                    if file_sha256(handle) != entry.file_sha256:
                        continue  # damaged: the views say so; never vouch for it
                    tail = tail_sha256(handle, os.fstat(handle.fileno()).st_size)
            except FileNotFoundError:
                continue
            upgraded[entry.file] = dataclasses.replace(entry, tail_sha256=tail)
        if not upgraded:
            return
        with switch_lock(self.files, SWITCH_WAIT_S) as held:
            if not held:
                return
            entries = tuple(upgraded.get(e.file, e) for e in read_manifest(self.files).entries)
            rewrite_manifest(self.files, entries)
        self.manifest = read_manifest(self.files)
        log.info("archive: %d manifest entries of an older version upgraded", len(upgraded))

    # --- sources ------------------------------------------------------------------------------
    def _legacy(self, today: str) -> bool:
        """Convert legacy monthly archives; False when the budget ran out on the way."""
        for legacy in self.files.legacy_archives():
            days = spooled_days(self.files, legacy, self.manifest.archived_through)
            try:
                for spool in days:
                    for piece in pieces_of(spool, 0, None, legacy.name, self.manifest, today):
                        if piece.listed is None and not self._archive(piece):
                            return False
            finally:
                days.close()
            self._drop_legacy(legacy)  # every line of it is in Parquet now
        return True

    def _plain(self, today: str) -> None:
        head = self.head
        for piece in pieces_of(
            self.files.rows, head.archived_bytes, head.history_size, "plain", self.manifest, today
        ):
            GUARD.checkpoint()
            if piece.listed is not None:
                self._check_listed(piece)  # listed by a run killed before it moved on
            elif not self._archive(piece):
                return
            self._advance(piece.end)

    def _advance(self, end: int) -> None:
        self.head = self.head.replace(archived_bytes=end)
        save_state(self.files, self.head)

    # --- one piece ------------------------------------------------------------------------
    def _archive(self, piece: Piece) -> bool:
        """Convert, verify, switch in one piece; False when it must wait for a later run."""
        GUARD.checkpoint()
        if not self._room_for(piece.rows):
            log.info("archive: %s … %s waits for the next run (time budget)", piece.first_ts,
                     piece.last_ts)  # fmt: skip
            return False
        started = time.monotonic()
        part = sum(1 for entry in self.manifest.entries if entry.day == piece.day)
        name = piece_name(piece.day, part)
        tmp = self.files.archive_dir / f".{name}.tmp"
        staging = self.files.dir / f".{name}.stage.tmp"
        try:
            staged = columnar.stage_lines(piece.lines(), staging)
            self._check_snapshots(piece, staged.counts)
            raw_rows = self._convert(staging, staged, tmp, piece)
            crash_point("archive.before_rename")
            os.chmod(tmp, FILE_MODE)
            entry = self._entry(piece, name, tmp, staged, raw_rows)
            with switch_lock(self.files, SWITCH_WAIT_S) as held:
                if not held:
                    log.info("archive: readers hold the history; %s waits", name)
                    return False
                commit_temp(tmp, self.files.archive_file(name))
                crash_point("archive.before_manifest")
                append_entry(self.files, entry)
        finally:
            discard_temp(tmp if tmp.exists() else None)
            staging.unlink(missing_ok=True)
        self.manifest = read_manifest(self.files)
        self.done.append(name)
        self._rows_done += piece.rows
        self._busy_s += time.monotonic() - started
        crash_point("archive.before_state")
        log.info(
            "archive: %s → %s (%d rows, %d bytes, %.1f B/row)",
            piece.day, name, entry.rows, entry.bytes, entry.bytes / max(1, entry.rows),
        )  # fmt: skip
        return True

    def _convert(self, staging: Path, staged: columnar.Staged, tmp: Path, piece: Piece) -> int:
        """Write the piece, then print it back in order: byte for byte the staged lines."""
        with columnar.connect(self.files.dir) as con:
            columnar.write_piece(con, staging, staged, tmp)
            digest = hashlib.sha256()
            for chunk in columnar.read_lines(con, str(tmp)):
                digest.update(chunk)
            (raw_rows,) = con.execute(
                f"SELECT count(raw) FROM read_parquet({columnar.sql_text(str(tmp))})"
            ).fetchone()
        if digest.hexdigest() != staged.sha256:
            raise WriteError(f"archive of {piece.day} did not read back identically; kept plain")
        return raw_rows

    def _entry(
        self, piece: Piece, name: str, tmp: Path, staged: columnar.Staged, raw_rows: int
    ) -> ArchiveEntry:
        size = tmp.stat().st_size
        with open(tmp, "rb") as handle:
            digest, tail = file_sha256(handle), tail_sha256(handle, size)
        part = int(name.split(".")[1]) if name.count(".") == 2 else 0
        return ArchiveEntry(
            piece.day, part, name, staged.first_ts, staged.last_ts, staged.rows,
            len(staged.counts), raw_rows, size, digest, tail, staged.sha256,
            piece.end - piece.start, piece.origin, utc_iso(),
        )  # fmt: skip

    def _check_snapshots(self, piece: Piece, found: dict[str, int]) -> None:
        """Every snapshot of the piece whole, and nothing that snapshots.jsonl does not list."""
        wanted = {ts: n for ts, n in self.expected.items() if piece.first_ts <= ts <= piece.last_ts}
        if found != wanted:
            odd = sorted(ts for ts in set(found) | set(wanted) if found.get(ts) != wanted.get(ts))
            raise HistoryDamaged(
                f"{piece.day} in {piece.origin} does not match snapshots.jsonl (first: "
                f"{odd[0]}: {found.get(odd[0])} rows, expected {wanted.get(odd[0])}); "
                "not archived"
            )

    def _check_listed(self, piece: Piece) -> None:
        """Plain rows a listed piece holds must be exactly its source."""
        entry = piece.listed
        assert entry is not None
        if piece.sha256() != entry.source_sha256:
            raise HistoryDamaged(
                f"plain rows {piece.first_ts} … {piece.last_ts} differ from archive/"
                f"{entry.file}, which should hold them; not cut"
            )

    # --- switches that remove files ---------------------------------------------------------
    def _drop_archived_head(self) -> None:
        """Drop the archived head of the plain file, once it is verified in the archives."""
        head = self.head
        keep = head.history_size - head.archived_bytes
        if not head.archived_bytes or keep > CUT_NOW_BYTES:
            return
        elapsed = time.monotonic() - self._started
        if (
            self.done
            and elapsed + (head.archived_bytes + 2 * keep) / CUT_BYTES_PER_S > self._budget_s
        ):
            log.info("archive: the plain file is cut in the next run (time budget)")
            return
        self._verify_archived_head()
        rows = self.files.rows
        tmp = rows.with_name(f".{rows.name}.cut.tmp")
        try:
            _copy_range(rows, head.archived_bytes, head.history_size, tmp)
            with switch_lock(self.files, SWITCH_WAIT_S) as held:
                if not held:
                    log.info("archive: readers hold the history; the plain file is cut later")
                    return
                save_state(self.files, head.replace(cutting=head.archived_bytes))
                crash_point("archive.before_cut")
                commit_temp(tmp, rows)
                self.head = head.replace(
                    history_size=head.history_size - head.archived_bytes, archived_bytes=0
                )
                save_state(self.files, self.head)
        finally:
            discard_temp(tmp if tmp.exists() else None)

    def _head_pieces(self) -> Iterator[Piece]:
        """The listed pieces the plain head [0, archived_bytes) holds, with their extents."""
        entries = [e for e in self.manifest.entries if e.source == "plain"]
        start, end = 0, self.head.archived_bytes
        while entries and start < end and entries[0].source_bytes is not None:
            entry = entries.pop(0)
            if entry.last_ts < self._first_plain_ts():
                continue  # cut from the plain file long ago
            stop = start + entry.source_bytes
            yield Piece(entry.day, "plain", self.files.rows, start, stop, entry.rows,
                        entry.first_ts, entry.last_ts, entry)  # fmt: skip
            start = stop
        if start < end:  # pieces of older versions: their extents are found line by line
            yield from pieces_of(self.files.rows, start, end, "plain", self.manifest, "9999")

    def _first_plain_ts(self) -> str:
        if not hasattr(self, "_first_ts"):
            with open(self.files.rows, "rb") as handle:
                self._first_ts = ts_of(handle.readline())
        return self._first_ts

    def _verify_archived_head(self) -> None:
        """Every row before `archived_bytes` is in a listed piece whose file is unchanged."""
        checked: set[str] = set()
        for piece in self._head_pieces():
            if piece.listed is None or piece.end > self.head.archived_bytes:
                raise HistoryDamaged(
                    f"plain rows {piece.first_ts} … {piece.last_ts} are before archived_bytes "
                    "but in no archive; not cut"
                )
            self._check_listed(piece)
            checked.add(piece.listed.file)
        for entry in self.manifest.entries:
            if entry.file in checked:
                with open(self.files.archive_file(entry.file), "rb") as handle:
                    if file_sha256(handle) != entry.file_sha256:
                        raise HistoryDamaged(f"archive/{entry.file} changed; the plain rows stay")

    def _drop_legacy(self, legacy: Path) -> None:
        with switch_lock(self.files, SWITCH_WAIT_S) as held:
            if not held:
                return
            legacy.unlink()
            fsync_dir(self.files.dir)
        log.info("archive: %s converted to daily Parquet files and removed", legacy.name)

    def _finish_legacy_compaction(self) -> None:
        """A monthly compaction an older version left half done: its verified .jsonl.gz holds
        the month, so the same lines at the head of the plain file are dropped, once they
        are proven identical (the daily conversion of the .jsonl.gz follows)."""
        head = self.head
        months = set(head.pending_compaction)
        keep_from = 0
        for end, line in lines_with_offsets(self.files.rows, limit=head.history_size):
            month = ts_of(line)[:7]
            if month not in months or not self._legacy_path(month).exists():
                break
            keep_from = end
        if keep_from and _gz_sha256(self._legacy_months(months)) == _range_sha256(
            self.files.rows, 0, keep_from
        ):
            self.head = head.replace(pending_compaction=(), archived_bytes=keep_from)
            save_state(self.files, self.head)
            self._drop_legacy_head(keep_from)
        else:
            self.head = head.replace(pending_compaction=())
            save_state(self.files, self.head)

    def _drop_legacy_head(self, end: int) -> None:
        head, rows = self.head, self.files.rows
        tmp = rows.with_name(f".{rows.name}.cut.tmp")
        try:
            _copy_range(rows, end, head.history_size, tmp)
            with switch_lock(self.files, SWITCH_WAIT_S) as held:
                if not held:
                    return
                save_state(self.files, head.replace(cutting=end))
                commit_temp(tmp, rows)
                self.head = head.replace(history_size=head.history_size - end, archived_bytes=0)
                save_state(self.files, self.head)
        finally:
            discard_temp(tmp if tmp.exists() else None)

    def _legacy_path(self, month: str) -> Path:
        return self.files.dir / f"market_cap_history-{month}.jsonl.gz"

    def _legacy_months(self, months: set[str]) -> list[Path]:
        return sorted(
            (p for p in self.files.legacy_archives() if legacy_month(p) in months),
            key=legacy_month,
        )


def _copy_range(path: Path, start: int, end: int, target: Path) -> None:
    with open(path, "rb") as src, open(target, "wb") as dst:
        src.seek(start)
        remaining = end - start
        while remaining > 0 and (block := src.read(min(remaining, 1 << 20))):
            dst.write(block)
            remaining -= len(block)
        dst.flush()
        os.fsync(dst.fileno())
    os.chmod(target, FILE_MODE)


def _range_sha256(path: Path, start: int, end: int) -> str:
    sha = hashlib.sha256()
    for _, line in lines_with_offsets(path, limit=end, start=start):
        sha.update(line)
    return sha.hexdigest()


def _gz_sha256(paths: list[Path]) -> str:
    import gzip

    sha = hashlib.sha256()
    for path in paths:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                sha.update(block)
    return sha.hexdigest()
