"""`--check-history`: every committed snapshot whole and present once, every archive intact.

Read through the reader of record. Archived pieces were proven identical to their lines when
they were archived (archive.py); here each listed file's SHA-256 is compared with the one
recorded then, and its row and snapshot counts with snapshots.jsonl. Legacy monthly
archives not yet converted, and the committed plain lines, are read line by line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HistoryDamaged
from ..jsonio import loads_strict
from .files import HISTORY_NAME, SNAPSHOTS_NAME, ts_of
from .gaps import Gap, find_gaps
from .points_check import PointsCheck, check_points
from .reader import Picture, open_picture

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
    points: PointsCheck | None = None  # the backfilled points, when there are any

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("… more problems not listed")


def check_history(out_dir: Path, every_min: int) -> CheckReport:
    """Verify the history of an output directory; read-only."""
    report = CheckReport()
    with open_picture(out_dir) as picture:
        _check(picture, report)
        if picture.points is not None and picture.points.head.ranges:
            report.points = check_points(picture.points, picture.fd_path)
            for problem in report.points.problems:
                report.problem(problem)
        report.gaps = find_gaps([record.ts for record in picture.snapshots], every_min)
    return report


def _check(picture: Picture, report: CheckReport) -> None:
    for problem in picture.problems(full=True) + picture.manifest.unfinished():
        report.problem(problem)
    report.notes += picture.warnings()
    if picture.state_problem == "missing" and picture.snapshots:
        report.notes.append("history state is missing; it was rebuilt in memory")
    if picture.plain_size > picture.head.history_size:
        report.notes.append(
            f"{picture.plain_size - picture.head.history_size} uncommitted byte(s) at the "
            "end of the history; the next run cuts them (kept in a .cut file)"
        )
    expected = picture.expected()
    report.snapshots = len(expected)
    for entry in picture.manifest.entries:
        report.files.append(f"archive/{entry.file}")
        report.rows += entry.rows
    seen: set[str] = set()
    try:
        for ts, ids in _snapshot_rows(picture, report):
            if ts in seen or picture.in_parquet(ts):
                report.problem(f"snapshot {ts} appears twice in the history")
            seen.add(ts)
            _check_snapshot(ts, ids, expected, report)
    except HistoryDamaged as exc:
        report.problem(str(exc))
    for ts in expected:
        if ts not in seen and not picture.in_parquet(ts):
            report.problem(f"snapshot {ts} is listed in {SNAPSHOTS_NAME} but has no rows")


def _snapshot_rows(picture: Picture, report: CheckReport) -> Iterator[tuple[str, list[str]]]:
    """(ts, ids) of each snapshot outside Parquet: legacy archives, then the plain file."""
    sources = [(path.name, picture.legacy_lines(handle)) for path, handle in picture.legacy]
    sources.append((HISTORY_NAME, picture.plain_lines()))
    for name, lines in sources:
        current: str | None = None
        ids: list[str] = []
        for line in lines:
            if name not in report.files:
                report.files.append(name)
            try:
                row = loads_strict(line)
                ident = row["id"]
                if not isinstance(ident, str) or row["ts"] != ts_of(line):
                    raise ValueError("ts or id of the wrong type")
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                report.problem(f"{name}: unreadable line after {report.rows} rows ({exc})")
                continue
            report.rows += 1
            if row["ts"] != current:
                if current is not None:
                    yield current, ids
                current, ids = row["ts"], []
            ids.append(ident)
        if current is not None:
            yield current, ids


def _check_snapshot(ts: str, ids: list[str], expected: dict[str, int], report: CheckReport) -> None:
    seen: set[str] = set()
    for ident in ids:
        if ident in seen:
            report.problem(f"({ts}, {ident}) appears twice")
        seen.add(ident)
    want = expected.get(ts)
    if want is None:
        report.problem(f"rows with ts {ts} have no line in {SNAPSHOTS_NAME}")
    elif want != len(seen):
        report.problem(f"snapshot {ts}: {len(seen)} rows, expected {want}")
