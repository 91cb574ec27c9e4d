"""`--check-history`: every committed snapshot whole and present once, every archive intact.

Archived days were proven identical to their lines when they were archived (archive.py);
here each Parquet file's SHA-256 is compared with the one recorded then (a flipped byte
shows), and its row and snapshot counts with snapshots.jsonl. The plain file, and legacy
monthly archives not yet converted, are read line by line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HistoryDamaged
from ..jsonio import loads_strict
from .archive import file_sha256
from .files import (
    HISTORY_NAME,
    SNAPSHOTS_NAME,
    HistoryFiles,
    lines_with_offsets,
    read_manifest,
    size_of,
    snapshot_groups,
)
from .gaps import Gap, find_gaps
from .legacy import legacy_lines
from .store import HistoryStore

MAX_PROBLEMS = 50


@dataclass
class CheckReport:
    """What `--check-history` found."""

    rows: int = 0
    snapshots: int = 0
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("… more problems not listed")


def _fields(line: bytes, key: str, kind: type) -> tuple[str, Any] | str:
    """(ts, the value of `key`) of a strict JSON line, or what is wrong with it."""
    try:
        obj = loads_strict(line)
        ts, value = obj["ts"], obj[key]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if not isinstance(ts, str) or type(value) is not kind:
        return f"ts or {key} of the wrong type"
    return ts, value


def check_history(out_dir: Path, every_min: int) -> CheckReport:
    """Verify the history of an output directory; read-only."""
    store = HistoryStore(out_dir)
    report = CheckReport()
    try:
        state = store.read_state()
    except HistoryDamaged as exc:
        report.problem(str(exc))
        return report
    plain_size = size_of(store.files.rows)
    if plain_size < state["history_size"]:
        report.problem(
            f"{HISTORY_NAME} is shorter ({plain_size}) than committed ({state['history_size']})"
        )
    elif plain_size > state["history_size"]:
        report.notes.append(
            f"{plain_size - state['history_size']} uncommitted byte(s) at the "
            "end of the history; the next run cuts them (kept in a .cut file)"
        )
    expected = _expected_counts(store, state, report)
    report.snapshots = len(expected)
    archived = _check_archives(store.files, expected, report)
    seen: set[str] = set()
    try:
        for group in snapshot_groups(_row_keys(store, state, archived, report)):
            if group.ts in seen or group.ts[:10] in archived:
                report.problem(f"snapshot {group.ts} appears twice in the history")
            seen.add(group.ts)
            _check_group(group.ts, group.ids, expected, report)
    except HistoryDamaged as exc:
        report.problem(str(exc))
    for ts in expected:
        if ts not in seen and ts[:10] not in archived:
            report.problem(f"snapshot {ts} is listed in {SNAPSHOTS_NAME} but has no rows")
    report.gaps = find_gaps(sorted(expected), every_min)
    return report


def _expected_counts(
    store: HistoryStore, state: dict[str, Any], report: CheckReport
) -> dict[str, int]:
    expected: dict[str, int] = {}
    committed = state["snapshots_size"]
    for _, line in lines_with_offsets(store.files.snapshots, limit=committed):
        fields = _fields(line, "coin_count", int)
        if isinstance(fields, str):
            report.problem(f"{SNAPSHOTS_NAME}: unreadable line ({fields})")
            continue
        ts, count = fields
        if ts in expected:
            report.problem(f"{SNAPSHOTS_NAME}: snapshot {ts} listed twice")
        expected[ts] = count
    return expected


def _check_archives(files: HistoryFiles, expected: dict[str, int], report: CheckReport) -> set[str]:
    """Days whose Parquet file is listed, intact (SHA-256) and as large as snapshots.jsonl says."""
    manifest = read_manifest(files)
    by_day: dict[str, list[int]] = {}
    for ts, count in expected.items():
        by_day.setdefault(ts[:10], []).append(count)
    days: set[str] = set()
    for day, entry in sorted(manifest.items()):
        path = files.archive_dir / str(entry.get("file"))
        days.add(day)
        report.files.append(f"archive/{path.name}")
        want = by_day.get(day, [])
        report.rows += int(entry.get("rows") or 0)
        if not path.is_file():
            report.problem(f"archive of {day} is listed but {path.name} is missing")
        elif file_sha256(path) != entry.get("file_sha256"):
            report.problem(f"archive/{path.name} changed since it was verified (SHA-256 differs)")
        if entry.get("rows") != sum(want) or entry.get("snapshots") != len(want):
            report.problem(
                f"archive of {day}: {entry.get('rows')} rows in {entry.get('snapshots')} "
                f"snapshots, {SNAPSHOTS_NAME} lists {sum(want)} in {len(want)}"
            )
    for path in files.archive_dir.glob("????-??-??.parquet"):
        if path.stem not in manifest:
            report.notes.append(f"archive/{path.name} is not listed yet; the next run checks it")
    return days


def _row_keys(
    store: HistoryStore, state: dict[str, Any], archived: set[str], report: CheckReport
) -> Iterator[tuple[str, str, int]]:
    """(ts, id, 0) of every committed row not in Parquet: legacy archives, then the plain file."""

    def lines() -> Iterator[tuple[str, bytes]]:
        for legacy in store.files.legacy_archives():
            for line in legacy_lines(legacy, archived):
                yield legacy.name, line
        committed, start = state["history_size"], state["archived_bytes"]
        for _, line in lines_with_offsets(store.files.rows, limit=committed, start=start):
            yield HISTORY_NAME, line

    for name, line in lines():
        if name not in report.files:
            report.files.append(name)
        fields = _fields(line, "id", str)
        if isinstance(fields, str):
            report.problem(f"{name}: unreadable line after {report.rows} rows ({fields})")
            continue
        report.rows += 1
        yield fields[0], fields[1], 0


def _check_group(ts: str, ids: list[str], expected: dict[str, int], report: CheckReport) -> None:
    unique = set(ids)
    for ident in _repeated(ids):
        report.problem(f"({ts}, {ident}) appears twice")
    want = expected.get(ts)
    if want is None:
        report.problem(f"rows with ts {ts} have no line in {SNAPSHOTS_NAME}")
    elif want != len(unique):
        report.problem(f"snapshot {ts}: {len(unique)} rows, expected {want}")


def _repeated(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in ids if i in seen or seen.add(i)]
