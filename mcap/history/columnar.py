"""History rows ⇄ Parquet, exactly: every line can be printed back byte for byte.

One Parquet file (zstd) per archived piece, sorted by (id, ts) so one coin's rows sit
together. Columns: `ts TIMESTAMP, id VARCHAR, rank INTEGER`, one DOUBLE per numeric field
(`price_usd`, `market_cap_usd`, …, `circulating_supply`), and three that make the round
trip exact (docs/design.md, "Archive protocol"):

- `layout`: the row's keys after ts and id, in order, each with its JSON type
  (`rank:i price_usd:f market_cap_usd:i …`; i int, f float, n null). Absent keys are
  absent, ints come back as ints, floats as the same double.
- `raw`: the original line, for the rare row the columns cannot carry exactly (an int
  beyond ±2^53, a rank outside 32 bits, an unknown key, a line our encoder would not write);
  its typed columns still hold the nearest values for queries.
- `ordd`: the line's position in its snapshot minus its rank (≈ 0, so nearly free);
  `ORDER BY ts, ordd + coalesce(rank, 0)` restores the file's order.

All the work runs inside DuckDB: a line is regenerated in SQL from its columns (DuckDB prints
a DOUBLE exactly as Python's repr does, and `py_json_str` escapes text as Python's json
does), so converting, verifying and printing back cost no Python per row. DuckDB is
imported here only, so a run that archives nothing stays small and quick.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import parse_iso
from .files import ts_key, ts_of

MAX_EXACT_INT = 2**53
INT32 = 2**31 - 1
FETCH_BATCH = 10_000
# zstd 9 in row groups of 30,000 rows, not 122,880 (docs/design.md, "Archive protocol")
PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 9, ROW_GROUP_SIZE 30000"
THREADS = 2
SPILL_DIR = ".duckdb-spill"
NUMERIC_KEY = re.compile(
    r"(circulating_supply|(price|market_cap|volume_24h|percent_change_24h)_[a-z]{3})\Z"
)
STANDARD_NUMERIC = (
    "price_usd",
    "market_cap_usd",
    "volume_24h_usd",
    "percent_change_24h_usd",
    "circulating_supply",
)
INTERNAL_COLUMNS = ("layout", "raw", "ordd")
_TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# Python's json.dumps (ensure_ascii) for one character, and for a whole string: the common
# printable-ASCII case is a plain concatenation.
_MACROS = r"""
CREATE OR REPLACE TEMP MACRO py_json_char(c) AS CASE
  WHEN c = '"' THEN '\"' WHEN c = '\' THEN '\\'
  WHEN c = chr(10) THEN '\n' WHEN c = chr(13) THEN '\r' WHEN c = chr(9) THEN '\t'
  WHEN c = chr(8) THEN '\b' WHEN c = chr(12) THEN '\f'
  WHEN unicode(c) < 32 THEN printf('\u%04x', unicode(c))
  WHEN unicode(c) < 127 THEN c
  WHEN unicode(c) < 65536 THEN printf('\u%04x', unicode(c))
  ELSE printf('\u%04x\u%04x', 55296 + ((unicode(c) - 65536) >> 10),
              56320 + ((unicode(c) - 65536) & 1023))
END;
CREATE OR REPLACE TEMP MACRO py_json_str(s) AS '"' || CASE
  WHEN regexp_full_match(s, '[ !#-\[\]-~]*') THEN s
  ELSE array_to_string(list_transform(string_split(s, ''), lambda c: py_json_char(c)), '')
END || '"';
"""


def sql_text(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextlib.contextmanager
def connect(
    spill_dir: Path | None, memory_limit: str = "250MB", threads: int = THREADS
) -> Iterator[Any]:
    """A DuckDB connection with bounded memory and the line macros.

    What a sort spills goes to `spill_dir` (beside the history for a collector; a private
    temporary directory, removed afterwards, for a view), never to the working directory.
    """
    import duckdb  # only where archives are written or read

    private = spill_dir is None
    spill = Path(tempfile.mkdtemp(prefix="mcap-duckdb-")) if private else spill_dir / SPILL_DIR
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = {sql_text(memory_limit)}")
        con.execute(f"SET threads = {threads}")
        con.execute("SET preserve_insertion_order = false")
        # DuckDB draws a progress bar on stdout for a statement over 2 s, even into a pipe:
        # a cron run's output, or a view's answer, would get it.
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET temp_directory = {sql_text(str(spill))}")
        con.execute(_MACROS)
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def cursor(con: Any) -> Any:
    """Another cursor of `con` (its own result stream) with the line macros (temporary
    macros are per cursor)."""
    cur = con.cursor()
    cur.execute(_MACROS)
    return cur


# --- staging: the piece's lines, counted and hashed, each with its position -----------------


@dataclass
class Staged:
    """What a piece's source lines were, measured while they were staged for DuckDB."""

    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # ts → rows, in order
    numeric: list[str] = field(default_factory=list)  # numeric keys seen, in order
    sha256: str = ""

    @property
    def first_ts(self) -> str:
        return next(iter(self.counts))

    @property
    def last_ts(self) -> str:
        return next(reversed(self.counts))


def stage_lines(lines: Iterable[bytes], staging: Path) -> Staged:
    """Write `position-in-snapshot TAB line` for each line, hashing the lines as they were.

    Raises:
        HistoryDamaged: a line without a valid ts prefix.
    """
    staged = Staged()
    sha = hashlib.sha256()
    key, ts, position = b"", "", 0
    with open(staging, "wb", buffering=1 << 20) as out:
        write = out.write
        for line in lines:
            if ts_key(line) != key:
                if key:
                    staged.counts[ts] = position
                ts = ts_of(line)
                parse_iso(ts)  # once per snapshot: a valid time
                key, position = ts_key(line), 0
                _note_keys(line, staged.numeric)
            sha.update(line)
            write(b"%d\t" % position)
            write(line)
            position += 1
        if key:
            staged.counts[ts] = position
        out.flush()
        os.fsync(out.fileno())
    staged.rows = sum(staged.counts.values())
    staged.sha256 = sha.hexdigest()
    return staged


def _note_keys(line: bytes, numeric: list[str]) -> None:
    """The numeric keys of a snapshot's first line (rows of a snapshot share their quotes)."""
    try:
        row = json.loads(line)
    except ValueError:
        return
    if isinstance(row, dict):
        for key in row:
            if NUMERIC_KEY.match(key) and key not in numeric:
                numeric.append(key)
    if "circulating_supply" not in numeric:  # absent on the first coin, present on others
        numeric.append("circulating_supply")


# --- SQL for one line, from its values ------------------------------------------------------


def _value_sql(key: str, kind: str) -> str:
    """The JSON text of one value of a row, as Python's json.dumps writes it."""
    column = quoted(key)
    if kind == "n":
        return "'null'"
    if kind == "i":
        return f"CAST(TRY_CAST({column} AS BIGINT) AS VARCHAR)"
    return f"CAST({column} AS VARCHAR)"


def _line_start() -> str:
    return "'{\"ts\":\"' || strftime(ts, '%Y-%m-%dT%H:%M:%SZ') || '\",\"id\":' || py_json_str(id)"


def _layout_line_sql(layout: str) -> str:
    """The line of a row stored with `layout` (a fixed list of key:kind)."""
    parts = [_line_start()]
    for item in layout.split():
        key, _, kind = item.partition(":")
        parts.append(f"',{_json_key(key)}:' || {_value_sql(key, kind)}")
    return " || ".join(parts) + " || '}'"


def _json_key(key: str) -> str:
    return '"' + key + '"'  # numeric keys match NUMERIC_KEY (or are `rank`): plain ASCII


def line_sql(layouts: Iterable[str]) -> str:
    """A SQL expression printing each stored row back as its original line (no newline)."""
    cases = " ".join(f"WHEN {sql_text(lay)} THEN {_layout_line_sql(lay)}" for lay in layouts)
    return f"coalesce(raw, CASE layout {cases} END)" if cases else "raw"


def _kind_sql(value: str) -> str:
    return (
        f"CASE json_type({value}) WHEN 'NULL' THEN 'n' WHEN 'DOUBLE' THEN 'f' "
        f"WHEN 'BIGINT' THEN 'i' WHEN 'UBIGINT' THEN 'i' END"
    )


def _parsed_sql(staging: Path, numeric: list[str]) -> str:
    """Each staged line with its typed values and each key's kind (NULL: absent or odd)."""
    keys = ["rank", *numeric]
    paths = ", ".join(sql_text(f"$.{key}") for key in ["id", *keys])
    typed = ["json_extract_string(v[1], '$') AS id"]
    for index, key in enumerate(keys, start=2):
        kind = "INTEGER" if key == "rank" else "DOUBLE"
        typed.append(f"TRY_CAST(v[{index}] AS {kind}) AS {quoted(key)}")
        typed.append(f"{_kind_sql(f'v[{index}]')} AS {quoted('k_' + key)}")
    source = (
        f"read_csv({sql_text(str(staging))}, delim = '\t', quote = '', escape = '', "
        "header = false, auto_detect = false, columns = {'pos': 'BIGINT', 'line': 'VARCHAR'})"
    )
    return (
        f"SELECT pos, rtrim(line, chr(10)) AS line, "
        f"strptime(substr(line, 8, 20), '{_TS_FORMAT}') AS ts, {', '.join(typed)} "
        f"FROM (SELECT pos, line, json_extract(line, [{paths}]) AS v FROM {source})"
    )


def _row_layout_sql(keys: list[str]) -> str:
    return (
        "ltrim("
        + " || ".join(
            f"CASE WHEN {quoted('k_' + k)} IS NULL THEN '' ELSE ' {k}:' || {quoted('k_' + k)} END"
            for k in keys
        )
        + ")"
    )


def _row_line_sql(keys: list[str]) -> str:
    """The line a parsed row would print back as (by each key's kind in this row)."""
    parts = [_line_start()]
    for key in keys:
        kind = quoted("k_" + key)
        values = " ".join(
            f"WHEN '{k}' THEN ',{_json_key(key)}:' || {_value_sql(key, k)}" for k in "ifn"
        )
        parts.append(f"CASE WHEN {kind} IS NULL THEN '' ELSE CASE {kind} {values} END END")
    return " || ".join(parts) + " || '}'"


def _exact_sql(keys: list[str]) -> str:
    """Whether a parsed row can be stored as columns + layout: it fits them, and printed back
    from them it is its line."""
    limits = [f"{quoted('k_rank')} IS DISTINCT FROM 'f'", "id IS NOT NULL"]
    limits.append(f"(rank IS NOT NULL OR {quoted('k_rank')} IS DISTINCT FROM 'i')")
    for key in keys[1:]:
        column, kind = quoted(key), quoted("k_" + key)
        limits.append(f"({kind} IS DISTINCT FROM 'i' OR abs({column}) <= {MAX_EXACT_INT})")
    limits.append(f"coalesce({_row_line_sql(keys)} = line, false)")
    return " AND ".join(limits)


def write_piece(con: Any, staging: Path, staged: Staged, target: Path) -> None:
    """Convert a staged piece into `target` (Parquet, zstd), sorted by (id, ts).

    A row is stored as columns + layout only when it prints back as its line (checked here,
    row by row); any other row keeps its line in `raw`.
    """
    keys = ["rank", *staged.numeric]
    numeric = ", ".join(quoted(k) for k in staged.numeric)
    parsed = _parsed_sql(staging, staged.numeric)
    con.execute(
        f"""COPY (
  SELECT ts, id, rank, {numeric},
         CASE WHEN exact THEN {_row_layout_sql(keys)} END AS layout,
         CASE WHEN exact THEN NULL ELSE line END AS raw,
         CAST(pos - coalesce(rank, 0) AS INTEGER) AS ordd
  FROM (SELECT *, {_exact_sql(keys)} AS exact FROM ({parsed}))
  ORDER BY id, ts
) TO {sql_text(str(target))} ({PARQUET_OPTIONS})"""
    )
    with open(target, "rb") as handle:
        os.fsync(handle.fileno())


def layouts_of(con: Any, path: str) -> list[str]:
    rows = con.execute(
        f"SELECT DISTINCT layout FROM read_parquet({sql_text(path)}) WHERE layout IS NOT NULL"
    ).fetchall()
    return sorted(row[0] for row in rows)


def read_lines(
    con: Any, path: str, span: tuple[str, str] | None = None, batch: int = FETCH_BATCH
) -> Iterator[bytes]:
    """The piece's lines (those with `ts` in `span`, inclusive), byte for byte as they were
    in the plain history, in order, in chunks."""
    line = line_sql(layouts_of(con, path))
    where = ""
    if span is not None:
        where = (
            f"WHERE ts BETWEEN strptime({sql_text(span[0])}, '{_TS_FORMAT}') "
            f"AND strptime({sql_text(span[1])}, '{_TS_FORMAT}') "
        )
    cursor = con.execute(
        f"SELECT {line} || chr(10) FROM read_parquet({sql_text(path)}) {where}"
        "ORDER BY ts, ordd + coalesce(rank, 0)"
    )
    while rows := cursor.fetchmany(batch):
        yield "".join(row[0] for row in rows).encode("utf-8", "surrogateescape")


def write_empty(con: Any, target: Path, numeric: Iterable[str] = STANDARD_NUMERIC) -> None:
    """A zero-row file with the standard columns, for a DuckDB glob over archive/."""
    columns = ", ".join(
        ["CAST(NULL AS TIMESTAMP) AS ts", "CAST(NULL AS VARCHAR) AS id",
         "CAST(NULL AS INTEGER) AS rank"]
        + [f"CAST(NULL AS DOUBLE) AS {name}" for name in numeric]
        + ["CAST(NULL AS VARCHAR) AS layout", "CAST(NULL AS VARCHAR) AS raw",
           "CAST(NULL AS INTEGER) AS ordd"]
    )  # fmt: skip
    con.execute(f"COPY (SELECT {columns} WHERE false) TO {sql_text(str(target))} (FORMAT parquet)")
