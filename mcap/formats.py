"""Serialising one snapshot: JSON, JSONL, CSV and the compact history lines (docs/files.md)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any

from .jsonio import dumps

QUOTE_CSV_FIELDS = (
    "price",
    "market_cap",
    "volume_24h",
    "percent_change_1h",
    "percent_change_24h",
    "percent_change_7d",
)
HISTORY_QUOTE_FIELDS = ("price", "market_cap", "volume_24h", "percent_change_24h")
TAIL_CSV_FIELDS = ("circulating_supply", "total_supply", "max_supply", "last_updated")
# Every line break a spreadsheet or `wc -l` could see (docs/files.md, the CSV).
LINE_BREAKS = str.maketrans({"\r": " ", "\n": " ", "\x85": " ", "\u2028": " ", "\u2029": " "})
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_BREAK_RE = re.compile("[\r\n\x85\u2028\u2029]")


def flatten_line_breaks(text: str) -> str:
    """Each line break (CRLF counts as one) becomes one space."""
    return text.replace("\r\n", " ").translate(LINE_BREAKS)


def safe_text_cell(value: Any) -> str:
    """Flatten line breaks and defuse spreadsheet formulas in a text cell."""
    if value is None:
        return ""
    text = str(value)
    if text and not text.startswith(FORMULA_START) and not _BREAK_RE.search(text):
        return text  # the common case, kept cheap: 12k rows × 4 text cells
    flat = flatten_line_breaks(text)
    if text.startswith(FORMULA_START) or flat.startswith(FORMULA_START):
        return "'" + flat
    return flat


def number_cell(value: Any) -> Any:
    """Numbers as the API gave them; null and "" become an empty cell."""
    return value if type(value) in (int, float) else ""


def csv_header(quotes: Iterable[str]) -> list[str]:
    header = ["collected_at", "id", "name", "symbol", "rank"]
    for code in quotes:
        header += [f"{field}_{code.lower()}" for field in QUOTE_CSV_FIELDS]
    return header + list(TAIL_CSV_FIELDS)


def csv_bytes(coins: list[dict[str, Any]], quotes: tuple[str, ...], collected_at: str) -> bytes:
    """RFC 4180 CSV: header + one row per coin; `wc -l` = rows + 1."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(csv_header(quotes))
    for coin in coins:
        row_quotes = coin.get("quotes") or {}
        row: list[Any] = [
            collected_at,
            safe_text_cell(coin["id"]),
            safe_text_cell(coin.get("name")),
            safe_text_cell(coin.get("symbol")),
            number_cell(coin.get("rank")),
        ]
        for code in quotes:
            get = (row_quotes.get(code) or {}).get
            row += [number_cell(get(field)) for field in QUOTE_CSV_FIELDS]
        row += [number_cell(coin.get(field)) for field in TAIL_CSV_FIELDS[:3]]
        row.append(safe_text_cell(coin.get("last_updated")))
        writer.writerow(row)
    return buffer.getvalue().encode("utf-8")


def encode_coins(coins: list[dict[str, Any]]) -> list[str]:
    """Each coin's JSON once; the JSON document and the JSONL lines are built from it."""
    return [dumps(coin) for coin in coins]


def snapshot_json_bytes(header: dict[str, Any], encoded_coins: list[str]) -> bytes:
    head = dumps({**header, "coin_count": len(encoded_coins)})
    return (head[:-1] + ',"coins":[' + ",".join(encoded_coins) + "]}\n").encode()


def snapshot_jsonl_bytes(encoded_coins: list[str], collected_at: str) -> bytes:
    stamp = ',"collected_at":' + dumps(collected_at) + "}\n"
    return "".join(coin[:-1] + stamp for coin in encoded_coins).encode()


def _clean_number(value: Any) -> Any:
    return None if value == "" else value


def history_row(coin: dict[str, Any], ts: str, quotes: tuple[str, ...]) -> dict[str, Any]:
    """One compact history line: ts, id, rank, a few figures per quote, supply if given."""
    row: dict[str, Any] = {"ts": ts, "id": coin["id"], "rank": _clean_number(coin.get("rank"))}
    row_quotes = coin.get("quotes") or {}
    for code in quotes:
        quote = row_quotes.get(code) or {}
        suffix = code.lower()
        for field in HISTORY_QUOTE_FIELDS:
            row[f"{field}_{suffix}"] = _clean_number(quote.get(field))
    supply = _clean_number(coin.get("circulating_supply"))
    if supply is not None:
        row["circulating_supply"] = supply
    return row


def history_bytes(coins: list[dict[str, Any]], ts: str, quotes: tuple[str, ...]) -> bytes:
    return "".join(dumps(history_row(coin, ts, quotes)) + "\n" for coin in coins).encode()
