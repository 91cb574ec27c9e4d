"""The history store: all-or-nothing, idempotent appends with a sidecar commit point.

Protocol (reliability.md §2.3, variant B): under an flock, bytes past the committed sizes
recorded in `history/.state.json` are a torn or uncommitted tail — they are copied to a
`.cut-<utc>` file and truncated. A batch is appended with one write + fsync, then the state
file is replaced atomically: that replace is the commit point. Appending never re-reads the
history, so it costs the same with one snapshot stored or ten thousand.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CollectorError, ExitCode, WriteError
from .fsio import (
    FILE_MODE,
    append_durably,
    atomic_write_bytes,
    commit_temp,
    crash_point,
    discard_temp,
    ensure_subdir,
    locked,
    write_all,
)
from .ledger import parse_iso
from .logsetup import utc_iso
from .redact import redact
from .snapshot import dumps

log = logging.getLogger(__name__)

HISTORY_DIR = "history"
HISTORY_NAME = "market_cap_history.jsonl"
SNAPSHOTS_NAME = "snapshots.jsonl"
GAPS_NAME = "gaps.jsonl"
STATE_NAME = ".state.json"
LOCK_NAME = ".history.lock"
STATE_VERSION = 1
RECENT_IDS_KEPT = 500
ARCHIVE_PATTERN = "market_cap_history-*.jsonl.gz"


class HistoryDamaged(CollectorError):
    """The history no longer matches its commit record: changed outside the collector."""

    exit_code = ExitCode.IO_ERROR
    hint = "run `04_production_collector.py --check-history`; see README 'Repairing history'"


def empty_state() -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "history_size": 0,
        "snapshots_size": 0,
        "snapshot_count": 0,
        "last_ts": None,
        "last_snapshot_id": None,
        "last_coin_count": None,
        "recent_snapshot_ids": [],
        "last_updated": {},
        "pending_compaction": [],
    }


_STATE_COUNTS = ("history_size", "snapshots_size", "snapshot_count")


def _state_problem(state: Any) -> str | None:
    """What makes a state read from disk unusable, or None."""
    if not isinstance(state, dict):
        return "not a JSON object"
    for key in _STATE_COUNTS:
        if type(state.get(key)) is not int or state[key] < 0:
            return f"{key} is {state.get(key)!r}"
    for key in ("last_ts", "last_snapshot_id"):
        if not isinstance(state.get(key), str | None):
            return f"{key} is {state.get(key)!r}"
    if state["last_ts"] is not None:
        try:
            parse_iso(state["last_ts"])
        except ValueError:
            return f"last_ts is {state['last_ts']!r}"
    if not isinstance(state.get("last_coin_count"), int | None):
        return "last_coin_count is not a count"
    if not isinstance(state.get("recent_snapshot_ids"), list):
        return "recent_snapshot_ids is not a list"
    if not isinstance(state.get("last_updated"), dict):
        return "last_updated is not an object"
    pending = state.get("pending_compaction")
    if not isinstance(pending, list) or not all(isinstance(m, str) for m in pending):
        return "pending_compaction is not a list of months"
    return None


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


class HistoryStore:
    """history/ in an output directory: the rows, the per-snapshot lines and their state."""

    def __init__(self, out_dir: Path) -> None:
        self.dir = out_dir / HISTORY_DIR
        self.rows_path = self.dir / HISTORY_NAME
        self.snapshots_path = self.dir / SNAPSHOTS_NAME
        self.gaps_path = self.dir / GAPS_NAME
        self.state_path = self.dir / STATE_NAME
        self.lock_path = self.dir / LOCK_NAME
        self.rebuilt = False  # read_state had to rebuild the state from the files

    # --- state -------------------------------------------------------------------------
    def read_state(self) -> dict[str, Any]:
        """The committed state; rebuilt from the files when the state file is missing or damaged."""
        try:
            state = empty_state() | json.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            state = None
        except (OSError, ValueError, RecursionError, TypeError) as exc:
            log.warning("history state %s is unreadable (%s)", self.state_path.name, exc)
            state = None
        else:
            problem = _state_problem(state)
            if problem is None:
                return state
            log.warning("history state %s is damaged: %s", self.state_path.name, problem)
        self.rebuilt = True
        if _size(self.rows_path) == 0 and _size(self.snapshots_path) == 0:
            return empty_state()
        return self._rebuild_state()

    def _write_state(self, state: dict[str, Any]) -> None:
        body = dumps(state) + "\n"
        atomic_write_bytes(self.state_path, body.encode())

    def _rebuild_state(self) -> dict[str, Any]:
        """Recover the commit point from the files themselves (state file lost or new).

        A snapshot counts as committed when its line in snapshots.jsonl is readable and its
        rows are all there (in the plain file, or in an archive of its month); the first one
        that fails ends the committed prefix, and everything after it is cut on repair.
        """
        log.warning("history state missing or damaged: rebuilding it from %s", self.dir)
        entries: list[tuple[int, dict[str, Any]]] = []
        for offset_end, line in _lines_with_offsets(self.snapshots_path):
            try:
                entry = json.loads(line)
                ts, count = str(entry["ts"]), int(entry["coin_count"])
                parse_iso(ts)
            except (ValueError, KeyError, TypeError, RecursionError):
                break
            entries.append(
                (
                    offset_end,
                    {"ts": ts, "coin_count": count, "snapshot_id": entry.get("snapshot_id")},
                )
            )
        counts = {entry["ts"]: entry["coin_count"] for _, entry in entries}
        # Memory stays bounded whatever the file's size: only the newest whole group's ids.
        complete: dict[str, int] = {}
        last_ids: tuple[str | None, list[str]] = (None, [])
        group_ts, group_ids = None, []
        for offset_end, line in _lines_with_offsets(self.rows_path):
            try:
                row = json.loads(line)
                ts, ident = row["ts"], row["id"]
            except (ValueError, KeyError, TypeError, RecursionError):
                break
            if ts != group_ts:
                group_ts, group_ids = ts, []
            group_ids.append(ident)
            if counts.get(ts) == len(group_ids):
                complete[ts] = offset_end
                last_ids = (ts, group_ids)
        archived = {
            p.name[len("market_cap_history-") : -len(".jsonl.gz")]
            for p in self.dir.glob(ARCHIVE_PATTERN)
        }
        state = empty_state()
        committed: list[tuple[int, dict[str, Any]]] = []
        for offset_end, entry in entries:
            if entry["ts"] in complete:
                state["history_size"] = complete[entry["ts"]]
            elif entry["ts"][:7] not in archived:
                break
            committed.append((offset_end, entry))
        if committed:
            last = committed[-1][1]
            state.update(
                snapshots_size=committed[-1][0],
                snapshot_count=len(committed),
                last_ts=last["ts"],
                last_snapshot_id=last.get("snapshot_id"),
                last_coin_count=last["coin_count"],
                recent_snapshot_ids=[e.get("snapshot_id") for _, e in committed][-RECENT_IDS_KEPT:],
                # last_updated unknown (None): the next snapshot counts as changed.
                last_updated=dict.fromkeys(last_ids[1] if last_ids[0] == last["ts"] else []),
            )
        return state

    # --- repair --------------------------------------------------------------------------
    def _cut_tail(self, path: Path, committed: int) -> int:
        size = _size(path)
        if size < committed:
            raise HistoryDamaged(
                f"{path.name} is {size} bytes but {committed} bytes were committed: "
                "it was truncated or replaced outside the collector"
            )
        if size == committed:
            return 0
        cut_path = path.with_name(f"{path.name}.cut-{utc_iso().replace(':', '')}")
        with open(path, "rb") as src, open(cut_path, "ab") as dst:
            src.seek(committed)
            shutil.copyfileobj(src, dst)
            dst.flush()
            os.fsync(dst.fileno())
        with open(path, "r+b") as handle:
            handle.truncate(committed)
            os.fsync(handle.fileno())
        log.warning(
            "history repair: cut %d uncommitted byte(s) from %s (kept in %s)",
            size - committed,
            path.name,
            cut_path.name,
        )
        return size - committed

    def repair(self, state: dict[str, Any]) -> int:
        """Finish an interrupted compaction, then cut uncommitted tails. Hold the lock."""
        if state.get("pending_compaction"):
            self._finish_compaction(state)
        cut = self._cut_tail(self.rows_path, state["history_size"])
        cut += self._cut_tail(self.snapshots_path, state["snapshots_size"])
        return cut

    # --- append -------------------------------------------------------------------------
    def prepare(self) -> dict[str, Any]:
        """Repair under the lock and return the committed state (no request made yet)."""
        ensure_subdir(self.dir)
        with locked(self.lock_path):
            state = self.read_state()
            self.repair(state)
            if self.rebuilt:
                self._write_state(state)  # rebuilt once; later reads in this run use it
                self.rebuilt = False
            return state

    @staticmethod
    def diff(state: dict[str, Any], last_updated: dict[str, Any]) -> Diff:
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

    def commit(self, commit: Commit) -> bool:
        """Append one snapshot exactly once; False when it was already committed.

        Raises:
            WriteError: the disk refused the append; the history is as it was.
        """
        ensure_subdir(self.dir)
        with locked(self.lock_path):
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
                self._append(self.rows_path, rows, "history.mid_append")
                self._append(self.snapshots_path, line, "snapshots.mid_append")
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
                self._write_state(state)
            except WriteError:
                self._rollback(self.read_state())
                raise
            crash_point("history.after_commit")
            return True

    @staticmethod
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

    def _rollback(self, state: dict[str, Any]) -> None:
        for path, size in (
            (self.rows_path, state["history_size"]),
            (self.snapshots_path, state["snapshots_size"]),
        ):
            if _size(path) > size:
                with open(path, "r+b") as handle:
                    handle.truncate(size)

    # --- monthly archives -----------------------------------------------------------------
    def compact_closed_months(self, now: float | None = None) -> list[str]:
        """Move rows of closed months to `market_cap_history-YYYY-MM.jsonl.gz`, exactly once."""
        current = time.strftime("%Y-%m", time.gmtime(time.time() if now is None else now))
        ensure_subdir(self.dir)
        with locked(self.lock_path):
            state = self.read_state()
            self.repair(state)
            months = self._closed_months(current, state["history_size"])
            if not months:
                return []
            state["pending_compaction"] = months
            self._write_state(state)
            self._finish_compaction(state)
            return months

    def _closed_months(self, current: str, committed: int) -> list[str]:
        months: list[str] = []
        for _, line in _lines_with_offsets(self.rows_path, limit=committed):
            month = _row_month(line)
            if month >= current:
                break
            if month not in months:
                months.append(month)
        return months

    def _finish_compaction(self, state: dict[str, Any]) -> None:
        """Idempotent: archive each pending month, then drop those rows from the plain file.

        Rows are in time order, so closed months are a prefix of the plain file. A crash at
        any point leaves `pending_compaction` set and the next locked run finishes the job.
        """
        months = set(state["pending_compaction"])
        ranges: dict[str, list[int]] = {}
        keep_from = 0
        for offset_end, line in _lines_with_offsets(self.rows_path, limit=state["history_size"]):
            month = _row_month(line)
            if month not in months:
                break
            ranges.setdefault(month, [keep_from, offset_end])[1] = offset_end
            keep_from = offset_end
        for month, (start, end) in ranges.items():
            self._write_archive(month, start, end)
        if keep_from:
            tmp = self.rows_path.with_name(f".{HISTORY_NAME}.compact.tmp")
            with open(self.rows_path, "rb") as src, open(tmp, "wb") as dst:
                src.seek(keep_from)
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            os.chmod(tmp, FILE_MODE)
            crash_point("compaction.before_replace")
            commit_temp(tmp, self.rows_path)
            state["history_size"] -= keep_from
        else:
            # Crashed after the plain file was rewritten: it holds exactly the committed rows.
            state["history_size"] = _size(self.rows_path)
        state["pending_compaction"] = []
        self._write_state(state)
        for month, (start, end) in ranges.items():
            log.info("history: archived %d byte(s) of %s rows", end - start, month)

    def _write_archive(self, month: str, start: int, end: int) -> None:
        """Stream rows [start, end) into a gzip archive, verified before it is renamed in."""
        path = self.dir / f"market_cap_history-{month}.jsonl.gz"
        expected = _range_digest(self.rows_path, start, end)
        if path.exists():
            if _gzip_digest(path) == expected:
                return  # written by an interrupted earlier compaction
            raise HistoryDamaged(f"{path.name} exists with different rows; refusing to overwrite")
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(self.rows_path, "rb") as src, open(tmp, "wb") as raw:
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
                    src.seek(start)
                    remaining = end - start
                    while remaining:
                        block = src.read(min(remaining, 1 << 20))
                        gz.write(block)
                        remaining -= len(block)
                raw.flush()
                os.fsync(raw.fileno())
            os.chmod(tmp, FILE_MODE)
            if _gzip_digest(tmp) != expected:
                raise WriteError(f"verification of {path.name} failed")
            crash_point("compaction.before_archive_rename")
            commit_temp(tmp, path)
        except OSError as exc:
            raise WriteError(f"cannot write {path.name}: {exc.strerror}") from exc
        finally:
            discard_temp(tmp if tmp.exists() else None)

    # --- gaps -------------------------------------------------------------------------------
    def record_gap(self, record: dict[str, Any]) -> None:
        """Append one line to history/gaps.jsonl (missed slots, failed runs)."""
        ensure_subdir(self.dir)
        with locked(self.lock_path):
            append_durably(self.gaps_path, (dumps(record) + "\n").encode())

    def recent_gap_records(self, limit: int = 500) -> list[dict[str, Any]]:
        """The newest readable records of gaps.jsonl (damaged lines are skipped)."""
        try:
            lines = self.gaps_path.read_bytes().split(b"\n")[-limit - 1 :]
        except FileNotFoundError:
            return []
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def total_bytes(self) -> int:
        """Bytes of every file in history/ (archives, rows, cut-offs, state)."""
        if not self.dir.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file())

    def snapshot_entries(self) -> list[dict[str, Any]]:
        """Committed lines of snapshots.jsonl (small: one line per snapshot)."""
        state = self.read_state()
        entries = []
        for _, line in _lines_with_offsets(self.snapshots_path, limit=state["snapshots_size"]):
            try:
                entry = json.loads(line)
                parse_iso(entry["ts"])
            except (ValueError, KeyError, TypeError, RecursionError):
                continue  # a damaged line: --check-history names it
            entries.append(entry)
        return entries


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, found {type(value).__name__}")
    return value


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _row_month(line: bytes) -> str:
    # Rows are written with "ts" first: {"ts":"YYYY-MM-…  → bytes 7..14 are the month.
    if line.startswith(b'{"ts":"'):
        return line[7:14].decode("ascii", "replace")
    try:
        return str(json.loads(line)["ts"])[:7]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise HistoryDamaged(f"{HISTORY_NAME} holds an unreadable committed line ({exc})") from exc


def _lines_with_offsets(path: Path, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Complete lines (split on b'\\n' only) with the byte offset just after each."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        offset = 0
        for line in handle:
            if not line.endswith(b"\n"):
                return
            offset += len(line)
            if limit is not None and offset > limit:
                return
            yield offset, line


def iter_history_lines(history_dir: Path) -> Iterator[tuple[str, bytes]]:
    """Every history line: monthly archives in order, then the plain file."""
    for archive in sorted(history_dir.glob(ARCHIVE_PATTERN)):
        try:
            with gzip.open(archive, "rb") as handle:
                for line in handle:
                    yield archive.name, line
        except (OSError, EOFError, zlib.error) as exc:
            raise HistoryDamaged(f"archive {archive.name} is damaged: {exc}") from exc
    plain = history_dir / HISTORY_NAME
    if plain.exists():
        with open(plain, "rb") as handle:
            for line in handle:
                yield plain.name, line


def find_gaps(timestamps: list[str], every_min: int) -> list[dict[str, Any]]:
    """Intervals between consecutive snapshots longer than 1.5 cadences."""
    gaps = []
    step = every_min * 60
    for before, after in zip(timestamps, timestamps[1:], strict=False):
        delta = parse_iso(after) - parse_iso(before)
        if delta > 1.5 * step:
            gaps.append({"from": before, "to": after, "missing_slots": int(delta // step) - 1})
    return gaps


def _range_digest(path: Path, start: int, end: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(start)
        remaining = end - start
        while remaining:
            block = handle.read(min(remaining, 1 << 20))
            if not block:
                break
            sha.update(block)
            remaining -= len(block)
    return sha.hexdigest()


def _gzip_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with gzip.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def digest_file(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


@dataclass
class CheckReport:
    """What `--check-history` found."""

    rows: int = 0
    snapshots: int = 0
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)
        elif len(self.problems) == 50:
            self.problems.append("… more problems not listed")


def check_history(out_dir: Path, every_min: int) -> CheckReport:
    """Every line parses, every committed snapshot is whole and once, no (ts, id) twice."""
    from .api import parse_json_strict  # local: api is the heavier import

    store = HistoryStore(out_dir)
    report = CheckReport()
    try:
        state = store.read_state()
    except HistoryDamaged as exc:
        report.problem(str(exc))
        return report
    plain_size = _size(store.rows_path)
    if plain_size < state["history_size"]:
        report.problem(
            f"{HISTORY_NAME} is shorter ({plain_size}) than committed ({state['history_size']})"
        )
    elif plain_size > state["history_size"]:
        report.notes.append(
            f"{plain_size - state['history_size']} uncommitted byte(s) at the "
            "end of the history; the next run cuts them (kept in a .cut file)"
        )
    expected: dict[str, int] = {}
    for _, line in _lines_with_offsets(store.snapshots_path, limit=state["snapshots_size"]):
        try:
            entry = parse_json_strict(line)
            ts, count = _text(entry["ts"]), int(entry["coin_count"])
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            report.problem(f"{SNAPSHOTS_NAME}: unreadable line ({exc})")
            continue
        if ts in expected:
            report.problem(f"{SNAPSHOTS_NAME}: snapshot {ts} listed twice")
        expected[ts] = count
    report.snapshots = len(expected)
    seen_ts: dict[str, int] = {}
    group_ts: str | None = None
    group_ids: set[str] = set()

    def close_group() -> None:
        if group_ts is None:
            return
        seen_ts[group_ts] = len(group_ids)
        want = expected.get(group_ts)
        if want is None:
            report.problem(f"rows with ts {group_ts} have no line in {SNAPSHOTS_NAME}")
        elif want != len(group_ids):
            report.problem(f"snapshot {group_ts}: {len(group_ids)} rows, expected {want}")

    plain_read = 0
    try:
        for name, line in iter_history_lines(store.dir):
            if name == HISTORY_NAME:
                plain_read += len(line)
                if plain_read > state["history_size"]:
                    break  # uncommitted tail: not part of the history yet
            if name not in report.files:
                report.files.append(name)
            try:
                row = parse_json_strict(line)
                ts, ident = _text(row["ts"]), _text(row["id"])
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                report.problem(f"{name}: unreadable line after {report.rows} rows ({exc})")
                continue
            report.rows += 1
            if ts != group_ts:
                close_group()
                if ts in seen_ts:
                    report.problem(f"snapshot {ts} appears twice in the history")
                group_ts, group_ids = ts, set()
            if ident in group_ids:
                report.problem(f"({ts}, {ident}) appears twice")
            group_ids.add(ident)
    except HistoryDamaged as exc:
        report.problem(str(exc))
    close_group()
    for ts in expected:
        if ts not in seen_ts:
            report.problem(f"snapshot {ts} is listed in {SNAPSHOTS_NAME} but has no rows")
    report.gaps = find_gaps(sorted(expected), every_min)
    return report
