"""`--query`: one read-only SELECT over the views `history` and `totals`, streamed in bounded
memory, inside a DuckDB that can read the picture's files and nothing else.

`history`: one row per coin per snapshot — the listed Parquet pieces, then what legacy
archives and the plain file hold after `archived_through`, up to the last committed
snapshot. `totals`: one row per committed snapshot from snapshots.jsonl (the API's global
market cap and the collected coins' sum). Every file is named by its open descriptor
(`/proc/self/fd/N`): no path from --out-dir ever reaches DuckDB, so no glob, comma or quote in
it can widen what is read. Before the user's statement runs, the plain rows are counted per
snapshot against snapshots.jsonl, external access is switched off but for those files, and
the configuration is locked. docs/queries.md shows the equivalent recipe for any DuckDB.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from ..errors import ArchiveDamaged, UsageError
from ..formats import HISTORY_QUOTE_FIELDS
from . import columnar
from .columnar import NUMERIC_KEY, quoted, sql_text
from .reader import Picture

MEMORY_LIMIT = "300MB"
_TS = "'%Y-%m-%dT%H:%M:%SZ'"
_HISTORY_COLUMNS = ("ts", "id", "rank")


def single_select(sql: str) -> str:
    """The statement, when it is exactly one SELECT (DuckDB's own parser decides).

    Raises:
        UsageError: empty, several statements, or anything but a SELECT (exit 2).
    """
    import duckdb

    try:
        statements = duckdb.connect().extract_statements(sql)
    except duckdb.Error as exc:
        raise UsageError(f"--query is not valid SQL: {_first_line(exc)}") from None
    if len(statements) != 1:
        found = "nothing" if not statements else f"{len(statements)} statements"
        raise UsageError(f"--query takes exactly one SELECT statement, got {found}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise UsageError(
            f"--query runs only SELECT (or WITH … SELECT), not {kind.name}: it never changes files"
        )
    return sql


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def numeric_columns(picture: Picture, quotes: tuple[str, ...]) -> list[str]:
    """Numeric columns of the plain rows: the quotes asked for, and what the rows carry."""
    names = [f"{field}_{code.lower()}" for code in quotes for field in HISTORY_QUOTE_FIELDS]
    for line in _first_lines(picture):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        names += [key for key in row if NUMERIC_KEY.match(key) and key not in names]
    if "circulating_supply" not in names:
        names.append("circulating_supply")
    return names


def _first_lines(picture: Picture) -> Iterator[bytes]:
    for _, handle in picture.legacy:
        yield next(picture.legacy_lines(handle), b"")
    yield next(picture.plain_lines(), b"")


def _rows_sql(picture: Picture, path: str, numeric: list[str], gzip: bool) -> str:
    """Rows of a JSONL file (plain or legacy) after archived_through, up to the last snapshot."""
    columns = ", ".join(
        ["ts: 'VARCHAR'", "id: 'VARCHAR'", "rank: 'VARCHAR'"]
        + [f"{quoted(name)}: 'DOUBLE'" for name in numeric]
    )
    where = ["ts IS NOT NULL", f"ts <= {sql_text(picture.last_ts or '')}"]
    if picture.archived_through:
        where.append(f"ts > {sql_text(picture.archived_through)}")
    for month in picture.pending_months():
        where.append(f"NOT starts_with(ts, {sql_text(month)})")
    return (
        f"SELECT strptime(ts, {_TS}) AS ts, id, TRY_CAST(rank AS INTEGER) AS rank, "
        f"{', '.join(quoted(n) for n in numeric)} FROM read_json({sql_text(path)}, "
        f"format = 'newline_delimited', columns = {{{columns}}}, ignore_errors = true"
        + (", compression = 'gzip'" if gzip else "")
        + f") WHERE {' AND '.join(where)}"
    )


def _history_sql(picture: Picture, numeric: list[str]) -> tuple[str, str | None]:
    """(the `history` view's SELECT, the SELECT of its JSONL rows alone, if any)."""
    parts: list[str] = []
    files = [picture.fd_path(picture.archives[e.file]) for e in picture.manifest.entries]
    if files:
        listed = ", ".join(sql_text(path) for path in files)
        parts.append(
            f"SELECT * EXCLUDE (layout, raw, ordd) FROM read_parquet([{listed}], "
            "union_by_name = true)"
        )
    rows = [
        _rows_sql(picture, picture.fd_path(handle), numeric, gzip=True)
        for _, handle in picture.legacy
    ]
    if picture.plain is not None and picture.last_ts:
        rows.append(_rows_sql(picture, picture.fd_path(picture.plain), numeric, gzip=False))
    plain = " UNION ALL ".join(rows) if rows else None
    if plain:
        parts.append(plain)
    empty = ", ".join(
        ["CAST(NULL AS TIMESTAMP) AS ts", "CAST(NULL AS VARCHAR) AS id",
         "CAST(NULL AS INTEGER) AS rank"]
        + [f"CAST(NULL AS DOUBLE) AS {quoted(n)}" for n in numeric]
    )  # fmt: skip
    parts.append(f"SELECT {empty} WHERE false")  # the columns, whatever else is there
    snapshots = " UNION ALL BY NAME ".join(f"({part})" for part in parts)
    history = f"SELECT *, 'snapshot' AS source FROM ({snapshots})"
    points = _points_sql(picture)
    if points:
        history += f" UNION ALL BY NAME SELECT *, 'historical' AS source FROM ({points})"
    return history, plain


POINT_COLUMNS = ("price_usd", "market_cap_usd", "volume_24h_usd")


def _points_sql(picture: Picture) -> str | None:
    """The backfilled points: listed pieces, then the committed plain points."""
    points = picture.points
    if points is None or not points.count:
        return None
    parts = []
    numeric = ", ".join(POINT_COLUMNS)
    if points.pieces:
        listed = ", ".join(sql_text(picture.fd_path(h)) for h in points.pieces.values())
        parts.append(f"SELECT ts, id, {numeric} FROM read_parquet([{listed}])")
    if points.plain_count:
        parts.append(_plain_points_sql(picture))
    return " UNION ALL ".join(f"({part})" for part in parts)


def _plain_points_sql(picture: Picture) -> str:
    assert picture.points is not None
    path = sql_text(picture.fd_path(picture.points.plain_copy()))
    columns = ", ".join(
        ["ts: 'VARCHAR'", "id: 'VARCHAR'"] + [f"{c}: 'DOUBLE'" for c in POINT_COLUMNS]
    )
    return (
        f"SELECT strptime(ts, {_TS}) AS ts, id, {', '.join(POINT_COLUMNS)} FROM read_json("
        f"{path}, format = 'newline_delimited', columns = {{{columns}}}, ignore_errors = true) "
        "WHERE ts IS NOT NULL"
    )


def _snapshot_totals_sql(picture: Picture) -> str:
    if picture.snapshots_file is None or not picture.last_ts:
        return (
            "SELECT CAST(NULL AS TIMESTAMP) AS ts, CAST(NULL AS DOUBLE) AS market_cap_usd, "
            "CAST(NULL AS DOUBLE) AS coins_market_cap_usd, CAST(NULL AS INTEGER) AS coin_count "
            "WHERE false"
        )
    path = sql_text(picture.fd_path(picture.snapshots_file))
    return (
        f"SELECT strptime(ts, {_TS}) AS ts, market_cap_usd, coins_market_cap_usd, coin_count "
        f"FROM read_json({path}, format = 'newline_delimited', columns = {{ts: 'VARCHAR', "
        "market_cap_usd: 'DOUBLE', coins_market_cap_usd: 'DOUBLE', coin_count: 'INTEGER'}, "
        f"ignore_errors = true) WHERE ts IS NOT NULL AND ts <= {sql_text(picture.last_ts)}"
    )


def _totals_sql(picture: Picture) -> str:
    """One row per snapshot (the API's global market cap, source 'snapshot'); then one per
    backfilled time, derived: the sum over the coins backfilled at that time, with no global
    market cap (the API keeps no /global history), source 'historical'."""
    totals = f"SELECT *, 'snapshot' AS source FROM ({_snapshot_totals_sql(picture)})"
    points = _points_sql(picture)
    if points:
        totals += (
            " UNION ALL SELECT ts, CAST(NULL AS DOUBLE) AS market_cap_usd, "
            "sum(market_cap_usd) AS coins_market_cap_usd, CAST(count(*) AS INTEGER) AS "
            f"coin_count, 'historical' AS source FROM ({points}) GROUP BY ts"
        )
    return totals


def _check_rows(con: Any, picture: Picture, plain: str | None) -> None:
    """The JSONL rows DuckDB sees are exactly the committed ones, snapshot by snapshot."""
    wanted = {ts: n for ts, n in picture.expected().items() if not picture.in_parquet(ts)}
    for month in picture.pending_months():
        wanted = {ts: n for ts, n in wanted.items() if not ts.startswith(month)}
    found: dict[str, int] = {}
    if plain:
        query = f"SELECT strftime(ts, {_TS}), count(*) FROM ({plain}) GROUP BY ALL"
        found = dict(con.execute(query).fetchall())
    if found != wanted:
        odd = sorted(ts for ts in set(found) | set(wanted) if found.get(ts) != wanted.get(ts))
        raise ArchiveDamaged(
            f"the history cannot be read truthfully: snapshot {odd[0]} has "
            f"{found.get(odd[0], 0)} readable rows, snapshots.jsonl lists {wanted.get(odd[0], 0)}"
        )
    _check_points(con, picture)
    (totals,) = con.execute(f"SELECT count(*) FROM ({_snapshot_totals_sql(picture)})").fetchone()
    if totals != len(picture.snapshots):
        raise ArchiveDamaged(
            f"the history cannot be read truthfully: snapshots.jsonl has {totals} readable "
            f"committed lines, {len(picture.snapshots)} expected"
        )


def _check_points(con: Any, picture: Picture) -> None:
    """The plain points DuckDB reads are exactly the committed ones."""
    points = picture.points
    if points is None or not points.plain_count:
        return
    (found,) = con.execute(f"SELECT count(*) FROM ({_plain_points_sql(picture)})").fetchone()
    if found != points.plain_count:
        raise ArchiveDamaged(
            f"the history cannot be read truthfully: history/backfill/points.jsonl has {found} "
            f"readable committed points, its state lists {points.plain_count}"
        )


def run_query(picture: Picture, sql: str, quotes: tuple[str, ...] = ("USD",)) -> Iterator[list]:
    """Column names first, then the result in batches of rows.

    Raises:
        UsageError: not exactly one SELECT, or DuckDB refused it (2).
        ArchiveDamaged: the history cannot be read truthfully (74).
    """
    import duckdb

    single_select(sql)
    with history_views(picture, quotes) as con:
        try:
            cursor = con.execute(sql)
            yield [column[0] for column in cursor.description or []]
            while batch := cursor.fetchmany(columnar.FETCH_BATCH):
                yield batch
        except duckdb.Error as exc:
            raise _query_error(exc, picture) from None


@contextlib.contextmanager
def history_views(picture: Picture, quotes: tuple[str, ...] = ("USD",)) -> Iterator[Any]:
    """DuckDB with the views `history` and `totals` over the verified picture (else
    ArchiveDamaged, 74), reading its files only: what --query and --report read."""
    picture.require_trustworthy()
    numeric = numeric_columns(picture, quotes)
    history, plain = _history_sql(picture, numeric)
    with columnar.connect(None, memory_limit=MEMORY_LIMIT) as con:
        con.execute(f"CREATE TEMP VIEW history AS {history}")
        con.execute(f"CREATE TEMP VIEW totals AS {_totals_sql(picture)}")
        _check_rows(con, picture, plain)
        _lock_down(con, picture)
        yield con


def _query_error(exc: Exception, picture: Picture) -> Exception:
    """A DuckDB error as the user's mistake (2) or as an unreadable history file (74)."""
    import duckdb

    text = _first_line(exc)
    for path, name in picture.fd_names().items():
        text = text.replace(path, name)
    if isinstance(exc, duckdb.PermissionException):
        return UsageError(
            f"query refused: {text}",
            hint="--query reads the views `history` and `totals` only, and writes nothing",
        )
    if isinstance(exc, duckdb.IOException) or "/proc/self/fd/" in str(exc):
        return ArchiveDamaged(f"a history file could not be read while answering: {text}")
    return UsageError(
        f"query failed: {text}", hint="the views are `history` and `totals`; see docs/queries.md"
    )


def _lock_down(con: Any, picture: Picture) -> None:
    """From here on DuckDB reads the picture's files only and changes no setting."""
    handles = [picture.plain, picture.snapshots_file, *picture.archives.values()]
    handles += [handle for _, handle in picture.legacy]
    if picture.points is not None:
        handles += list(picture.points.handles().values())
    paths = ", ".join(sql_text(picture.fd_path(h)) for h in handles if h is not None)
    con.execute(f"SET allowed_paths = [{paths}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def user_recipe_sql(quotes: tuple[str, ...] = ("USD",)) -> str:
    """The same two views for any DuckDB client, run in the output directory (docs/queries.md).

    It reads the files as they are (an uncommitted tail included); --query reads only what
    was committed and verified.
    """
    numeric = [f"{field}_{code.lower()}" for code in quotes for field in HISTORY_QUOTE_FIELDS]
    numeric.append("circulating_supply")
    columns = ",\n                    ".join(
        ["ts: 'VARCHAR', id: 'VARCHAR', rank: 'VARCHAR'"]
        + [f"{name}: 'DOUBLE'" for name in numeric]
    )
    points = ", ".join(POINT_COLUMNS)
    return f"""SET VARIABLE archived = (
    SELECT {{'files': coalesce(list('history/archive/' || file ORDER BY file), []),
            'through': coalesce(max(coalesce(last_ts, day || 'T23:59:59Z')), '')}}
    FROM read_json('history/archive/manifest.jsonl', format = 'newline_delimited',
         columns = {{day: 'VARCHAR', file: 'VARCHAR', last_ts: 'VARCHAR'}}));

CREATE OR REPLACE VIEW backfilled AS
SELECT ts, id, {points}
FROM read_parquet('history/backfill/archive/*.parquet', union_by_name = true)
UNION ALL
SELECT strptime(ts, '%Y-%m-%dT%H:%M:%SZ') AS ts, id, {points}
FROM read_json('history/backfill/points.jsonl', format = 'newline_delimited',
     columns = {{ts: 'VARCHAR', id: 'VARCHAR', price_usd: 'DOUBLE',
                market_cap_usd: 'DOUBLE', volume_24h_usd: 'DOUBLE'}}, ignore_errors = true);

CREATE OR REPLACE VIEW history AS
SELECT *, 'snapshot' AS source FROM (
    SELECT * EXCLUDE (layout, raw, ordd)
    FROM read_parquet(['history/archive/schema.parquet'] || getvariable('archived').files,
                      union_by_name = true)
    UNION ALL BY NAME
    SELECT strptime(ts, '%Y-%m-%dT%H:%M:%SZ') AS ts, id, TRY_CAST(rank AS INTEGER) AS rank,
           {", ".join(numeric)}
    FROM read_json('history/market_cap_history.jsonl', format = 'newline_delimited',
         columns = {{{columns}}}, ignore_errors = true)
    WHERE ts > getvariable('archived').through)
UNION ALL BY NAME
SELECT *, 'historical' AS source FROM backfilled;

CREATE OR REPLACE VIEW totals AS
SELECT strptime(ts, '%Y-%m-%dT%H:%M:%SZ') AS ts, market_cap_usd, coins_market_cap_usd,
       coin_count, 'snapshot' AS source
FROM read_json('history/snapshots.jsonl', format = 'newline_delimited',
     columns = {{ts: 'VARCHAR', market_cap_usd: 'DOUBLE', coins_market_cap_usd: 'DOUBLE',
                coin_count: 'INTEGER'}}, ignore_errors = true)
WHERE ts IS NOT NULL
UNION ALL
SELECT ts, NULL, sum(market_cap_usd), CAST(count(*) AS INTEGER), 'historical'
FROM backfilled GROUP BY ts;"""
