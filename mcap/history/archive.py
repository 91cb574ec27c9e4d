"""Closed days move out of the plain history into verified Parquet pieces, exactly once.

The archive protocol (docs/design.md): under the history lock, whichever collector appends
history takes the committed rows of days that have ended (UTC), in order, in pieces of whole
snapshots (a day, or part of a large one). Per piece:

1. its lines are staged (counted and hashed) and checked against snapshots.jsonl;
2. DuckDB converts them (`columnar.write_piece`), and the file is printed back in order: the
   SHA-256 of those lines must equal the source's, byte for byte;
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
from pathlib import Path

from ..clock import utc_iso
from ..errors import HistoryDamaged, WriteError
from ..fsio import (
    FILE_MODE,
    atomic_write_bytes,
    commit_temp,
    crash_point,
    discard_temp,
    ensure_subdir,
    locked,
)
from ..signals import GUARD
from . import columnar, cut
from .columnar import STANDARD_NUMERIC
from .cut import check_listed, cut_cost_s, drop_archived_head, drop_legacy, finish_legacy_compaction
from .files import SCHEMA_NAME, HistoryFiles
from .legacy import spooled_days
from .locks import switch_lock
from .manifest import (
    ArchiveEntry,
    append_entry,
    file_sha256,
    piece_name,
    read_manifest,
    repair_manifest,
    rewrite_manifest,
    tail_sha256,
)
from .pieces import Piece, pieces_of
from .points import POINT_KEYS, PointsFiles
from .state import HistoryHead, save_state

log = logging.getLogger(__name__)

ARCHIVE_BUDGET_S = 25.0  # no run spends longer here (with a rebuild: ≤ 30 s together)
SECONDS_PER_ROW = 5e-6  # measured: stage + convert + verify ≈ 5 s per million rows


def ensure_archive_dir(files: HistoryFiles) -> None:
    """archive/ with an empty manifest and a zero-row `schema.parquet`, and backfill/ with an
    empty points.jsonl and its own `archive/schema.parquet`, so the DuckDB recipe of
    docs/queries.md works from the first run."""
    files.archive_dir.mkdir(exist_ok=True)
    points = PointsFiles(files.dir.parent)
    ensure_subdir(points.dir)
    ensure_subdir(points.archive_dir)
    schemas = [(files.schema, STANDARD_NUMERIC), (points.piece(SCHEMA_NAME), POINT_KEYS)]
    for schema, numeric in schemas:
        if not schema.exists():
            tmp = schema.with_name(f".{schema.name}.tmp")
            with columnar.connect(files.dir) as con:
                columnar.write_empty(con, tmp, numeric)
            commit_temp(tmp, schema)
    if not files.manifest.exists():
        atomic_write_bytes(files.manifest, b"")
    if not points.points.exists():
        with locked(points.lock):
            points.points.touch(mode=FILE_MODE)


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
            self.head = finish_legacy_compaction(self.files, self.head)
        if self._legacy(today):
            self._plain(today)
        self._drop_archived_head()
        return self.head

    def _drop_archived_head(self) -> None:
        """The plain file's archived head goes, when the budget leaves room for the proof."""
        cost = cut_cost_s(self.head)
        if cost is None:
            return
        if self.done and time.monotonic() - self._started + cost > self._budget_s:
            log.info("archive: the plain file is cut in the next run (time budget)")
            return
        self.head = drop_archived_head(self.files, self.head, self.manifest)

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
        with switch_lock(self.files, cut.SWITCH_WAIT_S) as held:
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
            if elapsed + entry.bytes / cut.CUT_BYTES_PER_S > self._budget_s / 2:
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
        with switch_lock(self.files, cut.SWITCH_WAIT_S) as held:
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
            drop_legacy(self.files, legacy)  # every line of it is in Parquet now
        return True

    def _plain(self, today: str) -> None:
        head = self.head
        for piece in pieces_of(
            self.files.rows, head.archived_bytes, head.history_size, "plain", self.manifest, today
        ):
            GUARD.checkpoint()
            if piece.listed is not None:
                check_listed(piece)  # listed by a run killed before it moved on
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
            with switch_lock(self.files, cut.SWITCH_WAIT_S) as held:
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
