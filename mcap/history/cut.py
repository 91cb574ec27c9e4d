"""Switches that remove history bytes: the plain file's archived head, converted legacy
archives, a monthly compaction an older version left half done.

Each runs under the readers' exclusive lock (reader.switch_lock) and only after what it
removes is proven to be kept elsewhere (docs/design.md, "Archive protocol").
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

from ..errors import HistoryDamaged
from ..fsio import commit_temp, copy_range, crash_point, discard_temp, fsync_dir
from .files import HistoryFiles, legacy_month, lines_with_offsets, ts_of
from .locks import switch_lock
from .manifest import Manifest, file_sha256
from .pieces import Piece, pieces_of
from .state import HistoryHead, save_state

log = logging.getLogger(__name__)

CUT_NOW_BYTES = 512 * 1024 * 1024  # copy at most this much to drop an archived head
CUT_BYTES_PER_S = 300e6  # hashing the head, copying and syncing the rest: a slow disk's pace
SWITCH_WAIT_S = 5.0  # how long a switch waits for readers before it waits for a later run


def cut_cost_s(head: HistoryHead) -> float | None:
    """Seconds dropping the archived head would take, or None when there is nothing to drop
    now (nothing archived, or the rest too large to copy in one run)."""
    keep = head.history_size - head.archived_bytes
    if not head.archived_bytes or keep > CUT_NOW_BYTES:
        return None
    return (head.archived_bytes + 2 * keep) / CUT_BYTES_PER_S


def drop_archived_head(files: HistoryFiles, head: HistoryHead, manifest: Manifest) -> HistoryHead:
    """Drop the archived head of the plain file, once it is verified in the archives.

    Raises:
        HistoryDamaged: a row of the head is not proven to be in a listed, unchanged piece.
    """
    verify_archived_head(files, head, manifest)
    tmp = files.rows.with_name(f".{files.rows.name}.cut.tmp")
    try:
        copy_range(files.rows, head.archived_bytes, head.history_size, tmp)
        with switch_lock(files, SWITCH_WAIT_S) as held:
            if not held:
                log.info("archive: readers hold the history; the plain file is cut later")
                return head
            save_state(files, head.replace(cutting=head.archived_bytes))
            crash_point("archive.before_cut")
            commit_temp(tmp, files.rows)
            head = head.replace(
                history_size=head.history_size - head.archived_bytes, archived_bytes=0
            )
            save_state(files, head)
            return head
    finally:
        discard_temp(tmp if tmp.exists() else None)


def _head_pieces(files: HistoryFiles, head: HistoryHead, manifest: Manifest) -> Iterator[Piece]:
    """The listed pieces the plain head [0, archived_bytes) holds, with their extents."""
    entries = [e for e in manifest.entries if e.source == "plain"]
    start, end = 0, head.archived_bytes
    with open(files.rows, "rb") as handle:
        first = ts_of(handle.readline())
    while entries and start < end and entries[0].source_bytes is not None:
        entry = entries.pop(0)
        if entry.last_ts < first:
            continue  # cut from the plain file long ago
        stop = start + entry.source_bytes
        yield Piece(entry.day, "plain", files.rows, start, stop, entry.rows,
                    entry.first_ts, entry.last_ts, entry)  # fmt: skip
        start = stop
    if start < end:  # pieces of older versions: their extents are found line by line
        yield from pieces_of(files.rows, start, end, "plain", manifest, "9999")


def verify_archived_head(files: HistoryFiles, head: HistoryHead, manifest: Manifest) -> None:
    """Every row before `archived_bytes` is in a listed piece whose file is unchanged."""
    checked: set[str] = set()
    for piece in _head_pieces(files, head, manifest):
        if piece.listed is None or piece.end > head.archived_bytes:
            raise HistoryDamaged(
                f"plain rows {piece.first_ts} … {piece.last_ts} are before archived_bytes "
                "but in no archive; not cut"
            )
        check_listed(piece)
        checked.add(piece.listed.file)
    for entry in manifest.entries:
        if entry.file in checked:
            with open(files.archive_file(entry.file), "rb") as handle:
                if file_sha256(handle) != entry.file_sha256:
                    raise HistoryDamaged(f"archive/{entry.file} changed; the plain rows stay")


def check_listed(piece: Piece) -> None:
    """Plain rows a listed piece holds must be exactly its source."""
    entry = piece.listed
    assert entry is not None
    if piece.sha256() != entry.source_sha256:
        raise HistoryDamaged(
            f"plain rows {piece.first_ts} … {piece.last_ts} differ from archive/"
            f"{entry.file}, which should hold them; not cut"
        )


def drop_legacy(files: HistoryFiles, legacy: Path) -> None:
    """A legacy archive whose every line is in Parquet now goes."""
    with switch_lock(files, SWITCH_WAIT_S) as held:
        if not held:
            return
        legacy.unlink()
        fsync_dir(files.dir)
    log.info("archive: %s converted to daily Parquet files and removed", legacy.name)


def finish_legacy_compaction(files: HistoryFiles, head: HistoryHead) -> HistoryHead:
    """A monthly compaction an older version left half done: its verified .jsonl.gz holds
    the month, so the same lines at the head of the plain file are dropped, once they are
    proven identical (the daily conversion of the .jsonl.gz follows)."""
    months = set(head.pending_compaction)
    keep_from = 0
    for end, line in lines_with_offsets(files.rows, limit=head.history_size):
        month = ts_of(line)[:7]
        if month not in months or not _legacy_path(files, month).exists():
            break
        keep_from = end
    legacy = sorted(
        (p for p in files.legacy_archives() if legacy_month(p) in months), key=legacy_month
    )
    if not keep_from or _gz_sha256(legacy) != _range_sha256(files.rows, 0, keep_from):
        head = head.replace(pending_compaction=())
        save_state(files, head)
        return head
    head = head.replace(pending_compaction=(), archived_bytes=keep_from)
    save_state(files, head)
    tmp = files.rows.with_name(f".{files.rows.name}.cut.tmp")
    try:
        copy_range(files.rows, keep_from, head.history_size, tmp)
        with switch_lock(files, SWITCH_WAIT_S) as held:
            if not held:
                return head
            save_state(files, head.replace(cutting=keep_from))
            commit_temp(tmp, files.rows)
            head = head.replace(history_size=head.history_size - keep_from, archived_bytes=0)
            save_state(files, head)
            return head
    finally:
        discard_temp(tmp if tmp.exists() else None)


def _legacy_path(files: HistoryFiles, month: str) -> Path:
    return files.dir / f"market_cap_history-{month}.jsonl.gz"


def _range_sha256(path: Path, start: int, end: int) -> str:
    sha = hashlib.sha256()
    for _, line in lines_with_offsets(path, limit=end, start=start):
        sha.update(line)
    return sha.hexdigest()


def _gz_sha256(paths: list[Path]) -> str:
    sha = hashlib.sha256()
    for path in paths:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                sha.update(block)
    return sha.hexdigest()
