"""History rows ⇄ Parquet, exactly: every line can be printed back byte for byte.

One Parquet file (zstd) per archived day, sorted by (id, ts) so one coin's rows sit
together. Columns: `ts TIMESTAMP, id VARCHAR, rank INTEGER`, one DOUBLE per numeric field
(`price_usd`, `market_cap_usd`, …, `circulating_supply`), and three that make the round
trip exact:

- `layout`: the row's keys after ts and id, in order, each with its JSON type
  (`rank:i price_usd:f market_cap_usd:i …`; i int, f float, n null). Absent keys are
  absent, ints come back as ints, floats as the same double.
- `raw`: the original line, for the rare row the columns cannot carry exactly (an int
  beyond ±2^53, an unknown key, a rank outside 32 bits, a line our encoder would not
  write); its typed columns still hold the nearest values for queries.
- `ordd`: the line's position in its snapshot minus its rank (≈ 0, so nearly free);
  `ORDER BY ts, ordd + coalesce(rank, 0)` restores the file's order.

DuckDB is imported here only, so a run that archives nothing stays small and quick.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..jsonio import dumps

MAX_EXACT_INT = 2**53
INT32 = 2**31 - 1
FETCH_BATCH = 10_000
MEMORY_LIMIT = "200MB"
THREADS = 2
ZSTD_LEVEL = 9
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
NUMERIC_KEY = re.compile(
    r"(rank|circulating_supply|(price|market_cap|volume_24h|percent_change_24h)_[a-z]{3})\Z"
)
_KINDS = {int: "i", float: "f", type(None): "n"}
INTERNAL_COLUMNS = ("layout", "raw", "ordd")
SPILL_DIR = ".duckdb-spill"


@dataclass
class DayDigest:
    """What a day's source lines were: counted and hashed while they were converted."""

    rows: int = 0
    raw_rows: int = 0
    sha256: Any = field(default_factory=hashlib.sha256)
    snapshots: dict[str, int] = field(default_factory=dict)  # ts → rows
    numeric_columns: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _connect(work_dir: Path) -> Iterator[Any]:
    """A DuckDB connection with bounded memory; what a sort spills stays beside the history."""
    import duckdb  # only where archives are written or read

    spill = work_dir / SPILL_DIR  # never the cwd, which is $HOME under cron
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute(f"SET threads = {THREADS}")
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"SET temp_directory = '{_sql_text(str(spill))}'")
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def _record(line: bytes, position: int, digest: DayDigest) -> dict[str, Any]:
    """One history line as the normalised record DuckDB loads (and whether it is raw)."""
    text = line.decode("utf-8", "surrogateescape").rstrip("\n")
    try:
        row = json.loads(text)
    except ValueError:
        row = None
    if not isinstance(row, dict):
        raise ValueError(f"history line {digest.rows + 1} of the day is not a JSON object")
    ts, ident = row.get("ts"), row.get("id")
    keys = list(row)
    exact = keys[:2] == ["ts", "id"] and isinstance(ts, str) and isinstance(ident, str)
    exact = exact and _TS.match(ts) is not None
    record: dict[str, Any] = {"ts": ts if exact else None, "id": ident if exact else None}
    parts = []
    for key in keys[2:]:
        value, kind = row[key], _KINDS.get(type(row[key]))
        if kind is None or NUMERIC_KEY.match(key) is None:
            exact = False
            continue
        if key not in digest.numeric_columns and key != "rank":
            digest.numeric_columns.append(key)
        if key == "rank":
            fits = kind != "f" and (value is None or -INT32 <= value <= INT32)
            record["rank"] = value if fits else None
            exact = exact and fits
        else:
            record[key] = value
            exact = exact and (kind != "i" or -MAX_EXACT_INT <= value <= MAX_EXACT_INT)
        parts.append(f"{key}:{kind}")
    exact = exact and dumps(row) == text
    record["layout"] = " ".join(parts) if exact else None
    record["raw"] = None if exact else text
    record["ordd"] = position - (record.get("rank") or 0)
    if not exact:
        digest.raw_rows += 1
        record["ts"], record["id"] = _best_effort_ts(ts), ident if isinstance(ident, str) else ""
    return record


def _best_effort_ts(ts: Any) -> str:
    return ts if isinstance(ts, str) and _TS.match(ts) else "1970-01-01T00:00:00Z"


def write_day(lines: Iterable[bytes], target: Path, work_dir: Path) -> DayDigest:
    """Convert one day's lines into `target` (Parquet, zstd), hashing them on the way.

    The Parquet file is written under a temporary name in `work_dir`; the caller verifies
    it (`read_lines`) before moving it into place.
    """
    digest = DayDigest()
    staging = work_dir / f".{target.name}.ndjson.tmp"
    positions: dict[str, int] = {}
    try:
        with open(staging, "w", encoding="ascii") as out:
            for line in lines:
                digest.sha256.update(line)
                ts = _peek_ts(line)
                position = positions.get(ts, 0)
                positions[ts] = position + 1
                out.write(dumps(_record(line, position, digest)) + "\n")
                digest.rows += 1
        digest.snapshots = positions
        _copy_to_parquet(staging, target, digest.numeric_columns, work_dir)
    finally:
        staging.unlink(missing_ok=True)
    return digest


def _peek_ts(line: bytes) -> str:
    return line[7:27].decode("ascii", "replace") if line.startswith(b'{"ts":"') else ""


def _copy_to_parquet(staging: Path, target: Path, numeric: list[str], work_dir: Path) -> None:
    types = {"ts": "TIMESTAMP", "id": "VARCHAR", "rank": "INTEGER"}
    types |= dict.fromkeys(numeric, "DOUBLE")
    types |= {"layout": "VARCHAR", "raw": "VARCHAR", "ordd": "INTEGER"}
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in types.items())
    with _connect(work_dir) as con:
        con.execute(
            f"COPY (SELECT * FROM read_json('{_sql_text(str(staging))}', "
            f"format = 'newline_delimited', columns = {{{columns}}}, "
            "timestampformat = '%Y-%m-%dT%H:%M:%SZ') ORDER BY id, ts) "
            f"TO '{_sql_text(str(target))}' "
            f"(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {ZSTD_LEVEL})"
        )
    with open(target, "rb") as handle:
        os.fsync(handle.fileno())


def read_lines(path: Path, work_dir: Path) -> Iterator[bytes]:
    """The archived day's lines, byte for byte as they were in the plain history."""
    with _connect(work_dir) as con:
        source = f"read_parquet('{_sql_text(str(path))}')"
        names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        numeric = [n for n in names if n not in ("ts", "id", "rank", *INTERNAL_COLUMNS)]
        select = ", ".join(
            ["strftime(ts, '%Y-%m-%dT%H:%M:%SZ')", "id", "rank", *map(_quoted, numeric)]
            + ["layout", "raw"]
        )
        cursor = con.execute(f"SELECT {select} FROM {source} ORDER BY ts, ordd + coalesce(rank, 0)")
        index = {"rank": 2} | {name: 3 + i for i, name in enumerate(numeric)}
        plans: dict[str, list[tuple[str, int, str]]] = {}
        while batch := cursor.fetchmany(FETCH_BATCH):
            for row in batch:
                yield _line(row, index, plans)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _line(row: tuple, index: dict[str, int], plans: dict[str, list[tuple[str, int, str]]]) -> bytes:
    raw, layout = row[-1], row[-2]
    if raw is not None:
        return (raw + "\n").encode("utf-8", "surrogateescape")
    plan = plans.get(layout)
    if plan is None:
        plan = plans[layout] = [
            (key, index[key], kind) for key, _, kind in (p.partition(":") for p in layout.split())
        ]
    record: dict[str, Any] = {"ts": row[0], "id": row[1]}
    for key, at, kind in plan:
        value = row[at]
        record[key] = None if kind == "n" else int(value) if kind == "i" else value
    return (dumps(record) + "\n").encode()


def write_empty(target: Path, work_dir: Path) -> None:
    """A zero-row file with the standard columns, so the archive glob always matches."""
    columns = ", ".join(
        [
            "CAST(NULL AS TIMESTAMP) AS ts",
            "CAST(NULL AS VARCHAR) AS id",
            "CAST(NULL AS INTEGER) AS rank",
            *(
                f"CAST(NULL AS DOUBLE) AS {name}"
                for name in (
                    "price_usd",
                    "market_cap_usd",
                    "volume_24h_usd",
                    "percent_change_24h_usd",
                    "circulating_supply",
                )
            ),
            "CAST(NULL AS VARCHAR) AS layout",
            "CAST(NULL AS VARCHAR) AS raw",
            "CAST(NULL AS INTEGER) AS ordd",
        ]
    )
    with _connect(work_dir) as con:
        con.execute(
            f"COPY (SELECT {columns} WHERE false) TO '{_sql_text(str(target))}' (FORMAT parquet)"
        )
