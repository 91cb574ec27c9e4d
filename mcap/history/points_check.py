"""`--check-history` for the backfilled points: every piece unchanged, every plain point
readable, the counts of the state, the pieces and ranges.jsonl in agreement, and no
(coin, time) stored twice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from ..jsonio import loads_strict
from . import columnar
from .columnar import sql_text
from .points import POINT_KEYS
from .points_ranges import read_ranges
from .points_reader import PointsPicture

MEMORY_LIMIT = "300MB"
POINT_FIELDS = ["ts", "id", *POINT_KEYS]


@dataclass(frozen=True)
class PointsCheck:
    """What the check found: counts for the summary line, and problems."""

    points: int
    coins: int
    pieces: int
    plain: int
    problems: tuple[str, ...]


def check_points(points: PointsPicture, fd_path: Callable[[BinaryIO], str]) -> PointsCheck:
    """Verify the picture's backfilled points (`fd_path`: Picture.fd_path); the files'
    own problems are the picture's (`Picture.problems`), not repeated here."""
    problems: list[str] = []
    head = points.head
    plain = _plain_count(points, problems)
    if plain != points.plain_count:
        problems.append(
            f"history/backfill/points.jsonl holds {plain} committed points, the state lists "
            f"{points.plain_count} beside its pieces"
        )
    ranges, _ = (
        read_ranges(points.files.ranges, 0, head.ranges_size) if head.ranges_size else ([], 0)
    )
    if len(ranges) != head.ranges or sum(r.points for r in ranges) != head.points:
        problems.append(
            f"history/backfill/ranges.jsonl lists {sum(r.points for r in ranges)} points in "
            f"{len(ranges)} calls, the state {head.points} in {head.ranges}"
        )
    coins = len({r.id for r in ranges})
    if head.points and not problems and not points.problems():
        problems += _stored_twice(points, fd_path)
    return PointsCheck(head.points, coins, len(head.pieces), plain, tuple(problems))


def _plain_count(points: PointsPicture, problems: list[str]) -> int:
    """The plain points, each parsed strictly as a point."""
    count = 0
    for line in points.plain_lines():
        try:
            row = loads_strict(line)
            key = (row["ts"], row["id"])
            if not all(isinstance(part, str) for part in key) or list(row) != POINT_FIELDS:
                raise ValueError("not a point's keys")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            problems.append(f"history/backfill/points.jsonl: unreadable point ({exc})")
            continue
        count += 1
    return count


def _stored_twice(points: PointsPicture, fd_path: Callable[[BinaryIO], str]) -> list[str]:
    """A (coin, time) stored twice: in one piece, two pieces, a piece and the plain points."""
    parts = []
    if points.pieces:
        paths = ", ".join(sql_text(fd_path(h)) for h in points.pieces.values())
        parts.append(f"SELECT id, ts FROM read_parquet([{paths}])")
    if points.plain_count:
        path = sql_text(fd_path(points.plain_copy()))
        parts.append(
            f"SELECT id, strptime(ts, '%Y-%m-%dT%H:%M:%SZ') AS ts FROM read_json({path}, "
            "format = 'newline_delimited', columns = {ts: 'VARCHAR', id: 'VARCHAR'})"
        )
    with columnar.connect(None, memory_limit=MEMORY_LIMIT) as con:
        twice = con.execute(
            f"SELECT id, strftime(ts, '%Y-%m-%dT%H:%M:%SZ') FROM ({' UNION ALL '.join(parts)}) "
            "GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
        ).fetchall()
    if twice:
        return [f"backfilled point ({twice[0][1]}, {twice[0][0]}) is stored twice"]
    return []
