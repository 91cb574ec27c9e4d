"""Backfilled points: the history's past from /tickers/{id}/historical, stored once per
(coin, time), each call committed as it lands (docs/design.md, "Backfilled points").

history/backfill/ holds, like the snapshot history, two append-only files and a commit point:

- `points.jsonl`: one line per point, `{"ts","id","price_usd","market_cap_usd",
  "volume_24h_usd"}` — the API's values as it sent them;
- `ranges.jsonl`: one line per answered call, `{"id","interval","start","end","points"}`,
  what was asked and answered (a coin whose data starts later has fewer points: not a gap);
- `.state.json`: the committed sizes of both, and the Parquet pieces the plain points were
  moved into (`archive/NNNNNN.parquet`), each with the hashes that prove it. Replacing it is
  the commit point of a call, and of a switch (a new piece, a dropped head).

A call's points and its range are appended, then the state replaced: a kill loses at most the
call in flight (its bytes are cut by the next writer), and points already stored for that coin
and time are left out, so none is stored twice.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import parse_iso, utc_iso
from ..errors import WriteError
from ..fsio import FILE_MODE, atomic_write_bytes, crash_point, ensure_subdir, locked, write_all
from ..jsonio import dumps
from ..plans import INTERVALS
from ..redact import redact
from .files import HISTORY_DIR, lines_with_offsets, size_of
from .repair import cut_tail

log = logging.getLogger(__name__)

BACKFILL_DIR = "backfill"
POINT_KEYS = ("price_usd", "market_cap_usd", "volume_24h_usd")


class PointsFiles:
    """The paths of one output directory's backfilled points."""

    def __init__(self, out_dir: Path) -> None:
        self.dir = out_dir / HISTORY_DIR / BACKFILL_DIR
        self.points = self.dir / "points.jsonl"
        self.ranges = self.dir / "ranges.jsonl"
        self.state = self.dir / ".state.json"
        self.lock = self.dir / ".backfill.lock"
        self.archive_dir = self.dir / "archive"

    def piece(self, name: str) -> Path:
        return self.archive_dir / name


@dataclass(frozen=True)
class Piece:
    """A Parquet file of points once plain, and the proofs that it holds them exactly."""

    file: str
    rows: int
    first_ts: str
    last_ts: str
    bytes: int
    file_sha256: str
    tail_sha256: str
    source_sha256: str
    source_bytes: int
    archived_at: str

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PointsHead:
    """The commit point of the backfilled points."""

    points_size: int = 0
    ranges_size: int = 0
    points: int = 0
    ranges: int = 0
    archived_bytes: int = 0  # head of points.jsonl already in pieces
    cutting: int = 0  # bytes being dropped from that head (a switch)
    pieces: tuple[Piece, ...] = ()
    # what refusals taught about the plan: class → seconds back the API serves
    windows: Mapping[str, int] = field(default_factory=dict)

    def replace(self, **changes: Any) -> PointsHead:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["pieces"] = [piece.to_json() for piece in self.pieces]
        data["windows"] = dict(self.windows)
        return {"version": 1, **data}

    @classmethod
    def from_json(cls, data: Any) -> PointsHead:
        """Raises ValueError naming what makes a state unusable."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        counts = ("points_size", "ranges_size", "points", "ranges", "archived_bytes", "cutting")
        for key in counts:
            if type(data.get(key, 0)) is not int or data.get(key, 0) < 0:
                raise ValueError(f"{key} is {data.get(key)!r}")
        try:
            pieces = tuple(Piece(**piece) for piece in data.get("pieces") or ())
            windows = {str(k): int(v) for k, v in (data.get("windows") or {}).items()}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"pieces or windows are malformed ({exc})") from None
        return cls(**{k: data.get(k, 0) for k in counts}, pieces=pieces, windows=windows)


def load_head(files: PointsFiles) -> PointsHead:
    """The committed head (an empty one when nothing was ever backfilled).

    Raises:
        ValueError: the state file is damaged.
    """
    try:
        data = json.loads(files.state.read_bytes())
    except FileNotFoundError:
        return PointsHead()
    except (OSError, RecursionError) as exc:
        raise ValueError(f"unreadable ({exc})") from exc
    return PointsHead.from_json(data)


def save_head(files: PointsFiles, head: PointsHead) -> None:
    atomic_write_bytes(files.state, (dumps(head.to_json()) + "\n").encode())


@dataclass(frozen=True)
class Range:
    """What one answered call covered: `step`-spaced times from `start` to `end`."""

    id: str
    interval: str
    step: int
    start: int
    end: int
    points: int

    def holds(self, ts: int) -> bool:
        return self.start <= ts <= self.end and ts % self.step == 0


def read_ranges(files: PointsFiles, start: int, limit: int) -> tuple[list[Range], int]:
    """The committed ranges from byte `start` on, oldest first, and the offset after them."""
    ranges, offset = [], start
    for end, line in lines_with_offsets(files.ranges, limit=limit, start=start):
        offset = end
        entry = json.loads(line)
        step = INTERVALS[entry["interval"]][0]
        ranges.append(
            Range(entry["id"], entry["interval"], step, int(parse_iso(entry["start"])),
                  int(parse_iso(entry["end"])), entry["points"])
        )  # fmt: skip
    return ranges, offset


class Coverage:
    """Which (coin, time) points are stored, by the ranges answered: a point is stored when a
    range of its coin holds its time."""

    def __init__(self, ranges: Iterable[Range] = (), size: int = 0) -> None:
        self.by_coin: dict[str, list[Range]] = {}
        self.size = size  # bytes of ranges.jsonl read so far
        for item in ranges:
            self.add(item)

    def add(self, item: Range) -> None:
        self.by_coin.setdefault(item.id, []).append(item)

    def catch_up(self, files: PointsFiles, head: PointsHead) -> None:
        """Add what other writers committed since this coverage was read."""
        ranges, self.size = read_ranges(files, self.size, head.ranges_size)
        for item in ranges:
            self.add(item)

    def holds(self, coin: str, ts: int) -> bool:
        return any(item.holds(ts) for item in self.by_coin.get(coin, ()))

    def covers(self, coin: str, step: int, start: int, end: int) -> bool:
        """Every `step`-spaced time of [start, end] was asked for already."""
        first = -(-start // step) * step
        return all(self.holds(coin, ts) for ts in range(first, end + 1, step))


@dataclass(frozen=True)
class Answer:
    """One call's answer, ready to commit: points as (epoch, price, market cap, volume)."""

    coin: str
    interval: str
    start: int
    end: int
    points: list[tuple[int, Any, Any, Any]]


def point_line(coin: str, ts: str, price: Any, cap: Any, volume: Any) -> bytes:
    row = {"ts": ts, "id": coin, "price_usd": price, "market_cap_usd": cap,
           "volume_24h_usd": volume}  # fmt: skip
    return (dumps(row) + "\n").encode()


class PointsStore:
    """history/backfill/ as the writers use it (05, and 03/04's gap repair)."""

    def __init__(self, out_dir: Path) -> None:
        self.files = PointsFiles(out_dir)
        self.plain_points = 0  # points not in Parquet yet, as of the last commit

    def open(self) -> tuple[PointsHead, Coverage]:
        """Repair to the commit point (under the store's lock); the head and what is covered.

        Raises:
            HistoryDamaged: a file is shorter than committed; WriteError: the disk refused.
        """
        ensure_subdir(self.files.dir)
        with locked(self.files.lock):
            head = self._repair(self._head())
            ranges, size = read_ranges(self.files, 0, head.ranges_size)
            self._note(head)
            return head, Coverage(ranges, size)

    def refresh(self) -> PointsHead:
        """The committed head now (after an archive step), without repairing anything."""
        with locked(self.files.lock):
            head = self._head()
            self._note(head)
            return head

    def _note(self, head: PointsHead) -> None:
        self.plain_points = head.points - sum(piece.rows for piece in head.pieces)

    @staticmethod
    def windows(head: PointsHead, tier: str) -> dict[str, int]:
        """What refusals taught about `tier`'s windows: class → seconds back."""
        prefix = f"{tier}/"
        return {k[len(prefix) :]: v for k, v in head.windows.items() if k.startswith(prefix)}

    def _head(self) -> PointsHead:
        try:
            return load_head(self.files)
        except ValueError as exc:
            raise WriteError(
                f"{self.files.state} is damaged ({exc}); nothing was backfilled",
                hint="restore history/backfill/ from a backup, or move it away to start over",
            ) from None

    def _repair(self, head: PointsHead) -> PointsHead:
        return repair_head(self.files, head)

    def commit(self, answer: Answer, coverage: Coverage) -> int:
        """Append one answered call exactly once; returns the points newly stored.

        Points a range already holds (an earlier call, a finer or coarser interval, another
        run) are left out. `coverage` is brought up to date under the lock first.

        Raises:
            WriteError: the disk refused; nothing of this call is committed.
        """
        step = INTERVALS[answer.interval][0]
        with locked(self.files.lock):
            head = self._repair(self._head())
            coverage.catch_up(self.files, head)
            seen: set[int] = set()
            lines = []
            for ts, price, cap, volume in answer.points:
                if ts in seen or coverage.holds(answer.coin, ts):
                    continue
                seen.add(ts)
                lines.append(point_line(answer.coin, utc_iso(ts), price, cap, volume))
            data = redact(b"".join(lines))
            item = Range(answer.coin, answer.interval, step, answer.start, answer.end, len(lines))
            entry = {"id": item.id, "interval": item.interval, "start": utc_iso(item.start),
                     "end": utc_iso(item.end), "points": item.points}  # fmt: skip
            line = redact((dumps(entry) + "\n").encode())
            try:
                _append(self.files.points, data)
                crash_point("backfill.mid_commit")
                _append(self.files.ranges, line)
                head = head.replace(
                    points_size=head.points_size + len(data),
                    ranges_size=head.ranges_size + len(line),
                    points=head.points + len(lines),
                    ranges=head.ranges + 1,
                )
                save_head(self.files, head)
            except OSError as exc:
                raise WriteError(f"cannot store backfilled points: {exc.strerror}") from exc
            coverage.add(item)
            coverage.size = head.ranges_size
            self._note(head)
            return len(lines)

    def learn_window(self, tier: str, cls: str, seconds: int) -> None:
        """Remember how far back a class reaches on a tier (a refusal said so)."""
        with locked(self.files.lock):
            head = self._repair(self._head())
            windows = {**head.windows, f"{tier}/{cls}": seconds}
            save_head(self.files, head.replace(windows=windows))


def repair_head(files: PointsFiles, head: PointsHead) -> PointsHead:
    """Back to the commit point (hold the store's lock): a switch killed mid-cut is settled
    by the file's size, and bytes past the committed sizes are cut."""
    if head.cutting:
        size = size_of(files.points)
        if size == head.points_size - head.cutting:
            head = head.replace(points_size=size, archived_bytes=0, cutting=0)
        else:
            head = head.replace(cutting=0)  # not cut: archived_bytes says what to skip
        save_head(files, head)
    cut_tail(files.points, head.points_size)
    cut_tail(files.ranges, head.ranges_size)
    return head


def _append(path: Path, data: bytes) -> None:
    if not data:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
