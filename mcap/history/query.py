"""The DuckDB recipe over the whole history: Parquet archives plus the plain tail, as views.

`history`: one row per coin per snapshot, every archived day and the current plain file
(plain rows of a day that is already archived are skipped, so a day is never counted twice,
even in the instant between a day's archive and the plain file's cut). `totals`: one row
per snapshot from snapshots.jsonl (the API's global market cap and the collected coins'
sum), which stays small for years. Paths are relative: run it in the output directory.
docs/queries.md shows the same SQL (a test keeps them equal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..formats import HISTORY_QUOTE_FIELDS

ARCHIVE_GLOB = "history/archive/*.parquet"


def history_view_sql(quotes: tuple[str, ...] = ("USD",)) -> str:
    """CREATE VIEW history … for the given quote currencies."""
    numeric = [f"{field}_{code.lower()}" for code in quotes for field in HISTORY_QUOTE_FIELDS]
    numeric.append("circulating_supply")
    columns = ",\n                ".join(
        ["ts: 'VARCHAR', id: 'VARCHAR', rank: 'VARCHAR'"]
        + [f"{name}: 'DOUBLE'" for name in numeric]
    )
    return f"""CREATE OR REPLACE VIEW history AS
SELECT * EXCLUDE (layout, raw, ordd)
FROM read_parquet('{ARCHIVE_GLOB}', union_by_name = true)
UNION ALL BY NAME
SELECT strptime(ts, '%Y-%m-%dT%H:%M:%SZ') AS ts, id, TRY_CAST(rank AS INTEGER) AS rank,
       {", ".join(numeric)}
FROM read_json('history/market_cap_history.jsonl', format = 'newline_delimited',
     columns = {{{columns}}})
WHERE ts > (SELECT coalesce(max(day), '0000-00-00') || 'T24'
            FROM (SELECT nullif(regexp_extract(file, '([0-9-]{{10}})\\.parquet$', 1), '') AS day
                  FROM glob('{ARCHIVE_GLOB}')));"""


TOTALS_VIEW_SQL = """CREATE OR REPLACE VIEW totals AS
SELECT strptime(ts, '%Y-%m-%dT%H:%M:%SZ') AS ts, market_cap_usd, coins_market_cap_usd, coin_count
FROM read_json('history/snapshots.jsonl', format = 'newline_delimited',
     columns = {ts: 'VARCHAR', market_cap_usd: 'DOUBLE', coins_market_cap_usd: 'DOUBLE',
                coin_count: 'INTEGER'});"""


def run_query(out_dir: Path, sql: str, quotes: tuple[str, ...] = ("USD",)) -> tuple[list, list]:
    """(column names, rows) of `sql` over the views, in the output directory `out_dir`."""
    import duckdb  # only where archives are queried

    con = duckdb.connect()
    try:
        con.execute(f"SET file_search_path = '{str(out_dir).replace(chr(39), chr(39) * 2)}'")
        con.execute(history_view_sql(quotes))
        con.execute(TOTALS_VIEW_SQL)
        cursor = con.execute(sql)
        names = [column[0] for column in cursor.description or []]
        rows: list[Any] = cursor.fetchall()
        return names, rows
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"query failed: {first}",
            hint="the views are `history` and `totals`; see docs/queries.md "
            "(a directory with no history yet has nothing to query)",
        ) from None
    finally:
        con.close()
