"""The reader of record: one consistent, verified picture of an output directory's history.

Every view (--export-history, --query, --check-history, --status) and every internal reader
reads the history through a `Picture` (docs/design.md, "The reader of record"):

- It is taken under a shared flock on `history/` itself. The collectors take the exclusive
  lock only for a *switch* (moving a Parquet piece into place and listing it; dropping the
  archived head of the plain file; removing a converted legacy archive), so a picture is the
  history before or after a switch, never a mix. Nothing is created or written: the lock is
  on the directory, and a missing or damaged state is rebuilt in memory only.
- Each file it reads is opened while the lock is held and read through that descriptor, so a
  switch after the picture was taken cannot change what it reads.
- Plain files are read only up to their committed sizes; rows up to the manifest's
  `archived_through` come from Parquet only; archive/ files are read only when the manifest
  lists them (anything else there is reported, never read).
- `problems()` says what would make an answer untrue: a listed file missing, resized or
  changed, pieces that disagree with snapshots.jsonl, a torn or damaged manifest.
"""

from __future__ import annotations

import bisect
import fcntl
import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import HistoryDamaged, LocalStateError
from .files import (
    LEGACY_PREFIX,
    LEGACY_SUFFIX,
    MANIFEST_NAME,
    SCHEMA_NAME,
    HistoryFiles,
    legacy_month,
    lines_with_offsets,
    ts_of,
)
from .locks import lock_dir
from .manifest import PIECE_NAME, ArchiveEntry, Manifest, listed_file_problem, read_manifest
from .points import PointsFiles
from .points_reader import PointsPicture, open_points, refuse_problems
from .repair import rebuild_state
from .state import HistoryHead, load_state, settled
from .summaries import SnapshotRecord, committed_snapshots

LOCK_WAIT_S = 30.0  # a switch holds the lock for milliseconds; this is the worst case
TEMP_SUFFIX = ".tmp"


@dataclass
class Picture:
    """The history as committed at one instant, with its files open. Use it as a context."""

    files: HistoryFiles
    head: HistoryHead = field(default_factory=HistoryHead)
    state_problem: str | None = None  # why the state was rebuilt in memory, if it was
    manifest: Manifest = field(default_factory=Manifest)
    snapshots: tuple[SnapshotRecord, ...] = ()
    snapshot_problems: list[str] = field(default_factory=list)
    plain: BinaryIO | None = None
    plain_size: int = 0
    snapshots_file: BinaryIO | None = None
    archives: dict[str, BinaryIO] = field(default_factory=dict)
    legacy: list[tuple[Path, BinaryIO]] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)  # unknown files in archive/
    unlisted: list[str] = field(default_factory=list)  # piece files the manifest does not list
    lock_fd: int | None = None  # the shared lock, held until close()
    points: PointsPicture | None = None  # the backfilled points (history/backfill/)

    def __enter__(self) -> Picture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        handles = [self.plain, self.snapshots_file, *self.archives.values()]
        handles += [handle for _, handle in self.legacy]
        for handle in handles:
            if handle is not None:
                handle.close()
        self.archives, self.legacy, self.plain, self.snapshots_file = {}, [], None, None
        if self.points is not None:
            self.points.close()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    # --- what is committed -----------------------------------------------------------------
    @property
    def archived_through(self) -> str | None:
        return self.manifest.archived_through

    @property
    def first_ts(self) -> str | None:
        return self.snapshots[0].ts if self.snapshots else None

    @property
    def last_ts(self) -> str | None:
        return self.snapshots[-1].ts if self.snapshots else None

    def expected(self) -> dict[str, int]:
        """ts → coin count of every committed snapshot."""
        return {record.ts: record.coin_count for record in self.snapshots}

    def pending_months(self) -> list[str]:
        """Months an older version moved into a .jsonl.gz without cutting them from the plain
        file: read from the .jsonl.gz only."""
        legacy = {legacy_month(path) for path, _ in self.legacy}
        return [month for month in self.head.pending_compaction if month in legacy]

    def in_parquet(self, ts: str) -> bool:
        """Whether a snapshot's rows are read from Parquet (else from a legacy or plain file)."""
        through = self.archived_through
        return through is not None and ts <= through

    def fd_names(self) -> dict[str, str]:
        """The descriptor path of each open file → its name under history/, for messages."""
        named = {f"archive/{name}": handle for name, handle in self.archives.items()}
        named |= {path.name: handle for path, handle in self.legacy}
        named |= {self.files.rows.name: self.plain, self.files.snapshots.name: self.snapshots_file}
        if self.points is not None:
            named |= self.points.handles()
        paths = {self.fd_path(h): f"history/{name}" for name, h in named.items() if h is not None}
        return dict(sorted(paths.items(), key=lambda item: -len(item[0])))  # fd/12 before fd/1

    @staticmethod
    def fd_path(handle: BinaryIO) -> str:
        """A path to an open file that names no glob and follows no later rename."""
        return f"/proc/self/fd/{handle.fileno()}"

    # --- lines ----------------------------------------------------------------------------
    def plain_lines(self) -> Iterator[bytes]:
        """Committed lines of the plain file not in Parquet, in order, byte for byte."""
        if self.plain is None:
            return
        head, pending = self.head, tuple(self.pending_months())
        for _, line in lines_with_offsets(
            None, limit=head.history_size, start=head.archived_bytes, handle=self.plain
        ):
            ts = ts_of(line)
            if not self.in_parquet(ts) and not ts.startswith(pending or ("\0",)):
                yield line

    def legacy_lines(self, handle: BinaryIO) -> Iterator[bytes]:
        """Lines of a legacy monthly archive not in Parquet yet, in order."""
        handle.seek(0)
        try:
            with gzip.open(handle, "rb") as lines:
                for line in lines:
                    if not self.in_parquet(ts_of(line)):
                        yield line
        except (OSError, EOFError) as exc:
            raise HistoryDamaged(f"legacy archive is damaged: {exc}") from exc

    # --- verification -----------------------------------------------------------------------
    def coverage_problems(self) -> list[str]:
        """Pieces against snapshots.jsonl, and the plain file against its committed size."""
        found = self.manifest.damage() + list(self.snapshot_problems)
        if self.state_problem and self.state_problem != "missing":
            found.append(f"history state {self.state_problem}; rebuilt in memory")
        if self.plain_size < self.head.history_size:
            found.append(
                f"{self.files.rows.name} is {self.plain_size} bytes, shorter than the "
                f"{self.head.history_size} committed: it was truncated outside the collector"
            )
        times = [record.ts for record in self.snapshots]  # committed in order
        placed = [0] * (len(times) + 1)  # +1 at an entry's first snapshot, -1 after its last
        for entry in self.manifest.entries:
            lo, hi = (
                bisect.bisect_left(times, entry.first_ts),
                bisect.bisect_right(times, entry.last_ts),
            )
            inside = self.snapshots[lo:hi]
            placed[lo] += 1
            placed[hi] -= 1
            rows = sum(r.coin_count for r in inside)
            if len(inside) != entry.snapshots or rows != entry.rows:
                found.append(
                    f"archive/{entry.file} holds {entry.rows} rows of {entry.snapshots} "
                    f"snapshots, snapshots.jsonl lists {rows} rows of {len(inside)} there"
                    + (" (a snapshot was committed into an archived day)" if rows > entry.rows
                       else "")
                )  # fmt: skip
        unplaced, depth = 0, 0
        for index, ts in enumerate(times):
            depth += placed[index]
            if depth == 0 and self.in_parquet(ts):
                unplaced += 1
        if unplaced:
            found.append(
                f"{unplaced} committed snapshot(s) before {self.archived_through} are in no "
                "archive piece"
            )
        return found

    def file_problem(self, entry: ArchiveEntry, full: bool = False) -> str | None:
        """What is wrong with a listed file: missing, resized, changed (tail or whole)."""
        handle = self.archives.get(entry.file)
        return listed_file_problem(handle, f"archive/{entry.file}", entry, "manifest", full)

    def problems(self, full: bool = False) -> list[str]:
        """Everything that would make an answer over this picture untrue."""
        found = self.coverage_problems()
        for entry in self.manifest.entries:
            problem = self.file_problem(entry, full)
            if problem:
                found.append(problem)
        if self.points is not None:
            found += self.points.problems(full)
        return found

    def require_trustworthy(self, full: bool = False) -> None:
        """Raises ArchiveDamaged (74) with the first problem, so no view answers over it."""
        refuse_problems(self.problems(full))

    def warnings(self) -> list[str]:
        """Files in archive/ that no reader reads (reported, never counted)."""
        return [
            f"archive/{name} is not listed in the manifest (an archive step was interrupted: "
            "the next run redoes it); it is not read"
            for name in self.unlisted
        ] + [f"archive/{name} is not an archive file; it is not read" for name in self.strays]


def open_picture(out_dir: Path) -> Picture:
    """Take the picture of `out_dir`'s history (an empty one when there is none).

    The shared lock is held until the picture is closed, so no switch happens while a view
    reads (a collector postpones its switch instead).

    Raises:
        LocalStateError: a collector held the readers' lock for LOCK_WAIT_S (74).
    """
    files = HistoryFiles(out_dir)
    picture = Picture(files)
    if not files.dir.is_dir():
        return picture
    picture.lock_fd = lock_dir(files.dir, fcntl.LOCK_SH, LOCK_WAIT_S)
    if picture.lock_fd is None:
        raise LocalStateError(f"{files.dir} stayed locked by a collector for {LOCK_WAIT_S:g}s")
    try:
        _fill(picture)
    except BaseException:
        picture.close()
        raise
    return picture


def _fill(picture: Picture) -> None:
    files = picture.files
    head, problem = load_state(files)
    manifest = read_manifest(files)  # after the head: a listed piece is never read as plain
    if head is None:
        head = rebuild_state(files, manifest) if _has_rows(files) else HistoryHead()
    picture.state_problem = problem
    picture.manifest = manifest
    picture.plain = _open(files.rows)
    if picture.plain is not None:
        picture.plain_size = os.fstat(picture.plain.fileno()).st_size
    picture.head = settled(head, picture.plain_size)
    picture.snapshots_file = _open(files.snapshots)
    picture.snapshots, picture.snapshot_problems = committed_snapshots(
        picture.snapshots_file, picture.head.snapshots_size
    )
    for entry in manifest.entries:
        handle = _open(files.archive_file(entry.file))
        if handle is not None:
            picture.archives[entry.file] = handle
    for name in sorted(os.listdir(files.dir)):
        if name.startswith(LEGACY_PREFIX) and name.endswith(LEGACY_SUFFIX):
            handle = _open(files.dir / name)
            if handle is not None:
                picture.legacy.append((files.dir / name, handle))
    picture.legacy.sort(key=lambda item: legacy_month(item[0]))
    _sort_archive_dir(picture)
    picture.points = open_points(PointsFiles(files.dir.parent))


def _has_rows(files: HistoryFiles) -> bool:
    return any(p.exists() and p.stat().st_size for p in (files.rows, files.snapshots))


def _open(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise LocalStateError(f"{path} is a directory, not a history file") from exc


def _sort_archive_dir(picture: Picture) -> None:
    """Unknown files in archive/ are reported, never read."""
    try:
        names = os.listdir(picture.files.archive_dir)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        picture.strays.append("(archive is not a directory)")
        return
    listed = {entry.file for entry in picture.manifest.entries}
    for name in sorted(names):
        if name in listed or name in (MANIFEST_NAME, SCHEMA_NAME):
            continue
        if name.startswith(f"{MANIFEST_NAME}.cut-") or (
            name.startswith(".") and name.endswith(TEMP_SUFFIX)
        ):
            continue  # a repaired torn line; a collector's file in progress
        (picture.unlisted if PIECE_NAME.match(name) else picture.strays).append(name)
