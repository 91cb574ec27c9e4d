"""`history/archive/manifest.jsonl`: the list of archived pieces, read strictly, appended whole.

One line per archived piece: a closed UTC day, or part of one when the day is large (see
archive.py). A piece holds whole snapshots, `first_ts` … `last_ts`; pieces follow each other
in time, so everything up to `archived_through` (the newest `last_ts`) is in Parquet and
nothing after it is. Lines of older versions name a whole day and no times.

Reading is strict (docs/design.md, "Archive protocol"): an unterminated last line is a torn
append (a crash or a full disk) and lists nothing; a complete line that is not a valid entry
is damage, and no reader answers over it. An older version appended after a torn line, gluing
two entries on one line; such a line is recognised and its second, whole entry kept.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..clock import compact_id, utc_iso
from ..errors import HistoryDamaged
from ..fsio import append_durably, atomic_write_bytes, fsync_dir
from ..jsonio import dumps
from .files import HistoryFiles

log = logging.getLogger(__name__)

PIECE_NAME = re.compile(r"(\d{4}-\d\d-\d\d)(?:\.(\d+))?\.parquet\Z")
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
_SHA = re.compile(r"[0-9a-f]{64}\Z")
ENTRY_START = b'{"day":'


def piece_name(day: str, part: int) -> str:
    """`2026-11-20.parquet` for a day's first (usually only) piece, `2026-11-20.1.parquet` …"""
    return f"{day}.parquet" if part == 0 else f"{day}.{part}.parquet"


@dataclass(frozen=True)
class ArchiveEntry:
    """One archived piece: which snapshots, which file, and the hashes that prove it."""

    day: str
    part: int
    file: str
    first_ts: str
    last_ts: str
    rows: int
    snapshots: int
    raw_rows: int
    bytes: int
    file_sha256: str
    tail_sha256: str | None  # SHA-256 of the file's last TAIL_BYTES: its Parquet footer
    source_sha256: str  # SHA-256 of the piece's history lines, in order
    source_bytes: int | None  # their length (None: older versions did not record it)
    source: str  # "plain" or a legacy archive's name
    archived_at: str

    def covers(self, ts: str) -> bool:
        return self.first_ts <= ts <= self.last_ts

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "part": self.part,
            "file": self.file,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "rows": self.rows,
            "snapshots": self.snapshots,
            "raw_rows": self.raw_rows,
            "bytes": self.bytes,
            "file_sha256": self.file_sha256,
            "tail_sha256": self.tail_sha256,
            "source_sha256": self.source_sha256,
            "source_bytes": self.source_bytes,
            "source": self.source,
            "archived_at": self.archived_at,
        }

    @classmethod
    def parse(cls, obj: Any) -> ArchiveEntry:
        """Raises ValueError naming what is wrong."""
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        day, name = obj.get("day"), obj.get("file")
        if not isinstance(name, str) or not (match := PIECE_NAME.match(name)):
            raise ValueError(f"file {name!r} is not an archive file name")
        part = obj.get("part", 0)
        if match.group(1) != day or type(part) is not int or piece_name(day, part) != name:
            raise ValueError(f"file {name!r} does not match day {day!r} part {part!r}")
        first = obj.get("first_ts", f"{day}T00:00:00Z")  # older versions: the whole day
        last = obj.get("last_ts", f"{day}T23:59:59Z")
        if not (_ts(first) and _ts(last) and first[:10] == day == last[:10] and first <= last):
            raise ValueError(f"first_ts/last_ts {first!r}/{last!r} are not times of {day}")
        counts = [obj.get(k) for k in ("rows", "snapshots", "raw_rows", "bytes")]
        if any(type(c) is not int or c < 0 for c in counts):
            raise ValueError("rows, snapshots, raw_rows or bytes is not a count")
        tail, length = obj.get("tail_sha256"), obj.get("source_bytes")
        if length is not None and (type(length) is not int or length < 0):
            raise ValueError("source_bytes is not a count")
        hashes = (obj.get("file_sha256"), obj.get("source_sha256"))
        if not all(isinstance(h, str) and _SHA.match(h) for h in hashes) or not (
            tail is None or (isinstance(tail, str) and _SHA.match(tail))
        ):
            raise ValueError("a SHA-256 is missing or malformed")
        return cls(
            day, part, name, first, last, *counts, hashes[0], tail, hashes[1], length,
            str(obj.get("source", "plain")), str(obj.get("archived_at", "")),
        )  # fmt: skip


def _ts(value: Any) -> bool:
    return isinstance(value, str) and _TS.match(value) is not None


@dataclass(frozen=True)
class Manifest:
    """The manifest as read: its valid entries, and what is wrong with the rest."""

    entries: tuple[ArchiveEntry, ...] = ()
    size: int = 0  # bytes of complete lines
    torn: int = 0  # bytes of an unterminated last line: an append that did not finish
    damaged: tuple[str, ...] = ()  # complete lines that are not entries
    glued: int = 0  # lines an older version glued onto a torn one (their entry is kept)

    @functools.cached_property
    def archived_through(self) -> str | None:
        """The newest archived snapshot time: older rows are read from Parquet only (asked
        once per plain line by a reader: computed once)."""
        return max((e.last_ts for e in self.entries), default=None)

    @property
    def last_day(self) -> str | None:
        return max((e.day for e in self.entries), default=None)

    @property
    def clean(self) -> bool:
        return not (self.torn or self.damaged or self.glued)

    def covering(self, ts: str) -> ArchiveEntry | None:
        return next((e for e in self.entries if e.covers(ts)), None)

    def damage(self) -> list[str]:
        """Complete lines that are not entries: no reader answers over them."""
        return [f"archive/manifest.jsonl: {text}" for text in self.damaged]

    def unfinished(self) -> list[str]:
        """What a crash or an older version left, which lists nothing wrong (readers answer;
        --status and --check-history report it; the next collector run repairs it)."""
        found = []
        if self.torn:
            found.append(
                f"archive/manifest.jsonl ends in a torn line ({self.torn} bytes: a crash or a "
                "full disk while archiving); the next collector run repairs it"
            )
        if self.glued:
            found.append(
                f"archive/manifest.jsonl has {self.glued} line(s) glued onto a torn one by an "
                "older version; the next collector run rewrites it"
            )
        return found


def read_manifest(files: HistoryFiles, data: bytes | None = None) -> Manifest:
    """The manifest of a history, strictly parsed (missing: empty)."""
    if data is None:
        try:
            data = files.manifest.read_bytes()
        except FileNotFoundError:
            return Manifest()
    complete = data.rfind(b"\n") + 1
    entries: dict[str, ArchiveEntry] = {}
    damaged: list[str] = []
    glued = 0
    for number, line in enumerate(data[:complete].split(b"\n")[:-1], 1):
        entry, was_glued, problem = _parse_line(line)
        glued += was_glued
        if problem:
            damaged.append(f"line {number} is damaged ({problem})")
        elif entry is not None:
            known = entries.get(entry.file)
            if known is not None and known != entry and known.file_sha256 != entry.file_sha256:
                damaged.append(f"line {number} lists {entry.file} again, differently")
            entries[entry.file] = entry
    ordered = tuple(sorted(entries.values(), key=lambda e: e.first_ts))
    for before, after in zip(ordered, ordered[1:], strict=False):
        if after.first_ts <= before.last_ts:
            damaged.append(f"{before.file} and {after.file} overlap in time")
    return Manifest(ordered, complete, len(data) - complete, tuple(damaged), glued)


def _parse_line(line: bytes) -> tuple[ArchiveEntry | None, bool, str | None]:
    """(entry, glued, problem) of one complete manifest line."""
    try:
        return ArchiveEntry.parse(json.loads(line)), False, None
    except (ValueError, RecursionError) as exc:
        problem = str(exc)[:120]
    glue = line.rfind(ENTRY_START)
    if glue > 0:  # an older version's append after a torn line: keep the whole entry
        try:
            return ArchiveEntry.parse(json.loads(line[glue:])), True, None
        except (ValueError, RecursionError):
            pass  # not a glued entry either: the line is damaged
    return None, False, problem


def repair_manifest(files: HistoryFiles, manifest: Manifest) -> Manifest:
    """Before an append: a torn tail is cut (kept in a .cut file), glued lines rewritten.

    Hold the history lock and the readers' switch lock. Returns the manifest as it now is.

    Raises:
        HistoryDamaged: a complete line is damaged; nothing is appended over it.
    """
    if manifest.damaged:
        raise HistoryDamaged(
            f"{manifest.damage()[0]}; nothing more is archived until it is fixed",
            hint="restore history/archive/manifest.jsonl from a backup "
            "(docs/operations.md, 'Repairing history')",
        )
    if manifest.clean:
        return manifest
    data = files.manifest.read_bytes()
    if manifest.torn:
        cut = files.manifest.with_name(f"{files.manifest.name}.cut-{compact_id(utc_iso())}")
        atomic_write_bytes(cut, data[manifest.size :])
        log.warning("archive: cut a torn manifest line (%d bytes, kept in %s)", manifest.torn,
                    cut.name)  # fmt: skip
    body = b"".join((dumps(e.to_json()) + "\n").encode() for e in manifest.entries)
    if manifest.glued or body != data[: manifest.size]:
        atomic_write_bytes(files.manifest, body)
    else:
        with open(files.manifest, "r+b") as handle:
            handle.truncate(manifest.size)
            os.fsync(handle.fileno())
        fsync_dir(files.archive_dir)
    return read_manifest(files)


def append_entry(files: HistoryFiles, entry: ArchiveEntry) -> None:
    """One whole line, durably (the caller repaired the manifest and holds the locks)."""
    append_durably(files.manifest, (dumps(entry.to_json()) + "\n").encode())


def rewrite_manifest(files: HistoryFiles, entries: tuple[ArchiveEntry, ...]) -> None:
    """Replace the manifest atomically (upgrading older entries); hold the locks."""
    body = b"".join((dumps(e.to_json()) + "\n").encode() for e in entries)
    atomic_write_bytes(files.manifest, body)


# --- the proofs an entry records -----------------------------------------------------------

TAIL_BYTES = 64 * 1024  # a Parquet file's footer (schema, row groups, statistics) sits here
HASH_BLOCK = 1 << 20


def file_sha256(handle: BinaryIO) -> str:
    """SHA-256 of a whole open file (read from its start, in blocks)."""
    sha = hashlib.sha256()
    handle.seek(0)
    while block := handle.read(HASH_BLOCK):
        sha.update(block)
    return sha.hexdigest()


def tail_sha256(handle: BinaryIO, size: int) -> str:
    """SHA-256 of the last TAIL_BYTES of an open file of `size` bytes: its identity."""
    handle.seek(max(0, size - TAIL_BYTES))
    return hashlib.sha256(handle.read(TAIL_BYTES)).hexdigest()


def listed_file_problem(
    handle: BinaryIO | None, name: str, recorded: ArchiveEntry | Any, lister: str, full: bool
) -> str | None:
    """What is wrong with a file a manifest or a state lists (`recorded` has its `bytes`,
    `tail_sha256` and `file_sha256`): missing, resized, or changed (footer, or whole)."""
    if handle is None:
        return f"{name} is listed in the {lister} but missing"
    size = os.fstat(handle.fileno()).st_size
    if size != recorded.bytes:
        return f"{name} is {size} bytes, the {lister} records {recorded.bytes}"
    if not full and recorded.tail_sha256 is not None:
        if tail_sha256(handle, size) != recorded.tail_sha256:
            return f"{name} is not the file that was archived (footer differs)"
        return None
    if file_sha256(handle) != recorded.file_sha256:
        return f"{name} changed since it was verified (SHA-256 differs)"
    return None
