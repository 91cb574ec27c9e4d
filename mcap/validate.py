"""Validation gate: nothing is written unless the payload passes (docs/design.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .errors import ApiDataError, ShrunkSnapshot

log = logging.getLogger(__name__)

TICKER_NUMBERS = ("circulating_supply", "total_supply", "max_supply", "beta_value")
TICKER_TEXTS = ("name", "symbol", "first_data_at", "last_updated")
# Numeric fields of a quote (docs/design.md, "API traps"); fields the API may add later pass.
QUOTE_NUMBERS = frozenset(
    "price volume_24h volume_24h_change_24h market_cap market_cap_change_24h "
    "percent_change_15m percent_change_30m percent_change_1h percent_change_6h "
    "percent_change_12h percent_change_24h percent_change_7d percent_change_30d "
    "percent_change_1y ath_price percent_from_price_ath".split()
)
GLOBAL_REQUIRED = ("market_cap_usd",)
GLOBAL_NUMBERS = (
    "market_cap_usd",
    "volume_24h_usd",
    "bitcoin_dominance_percentage",
    "cryptocurrencies_number",
    "market_cap_change_24h",
    "volume_24h_change_24h",
    "last_updated",
)
COIN_TEXTS = ("name", "symbol", "type")


@dataclass
class Validated:
    rows: list[dict[str, Any]]
    duplicates_dropped: int
    duplicate_ids: list[str]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_NUMERIC_TYPES = frozenset({int, float, type(None)})  # exact types: bool is not a number here


def _numeric_ok(value: Any) -> bool:
    """Numbers may be number, null or "" (docs/design.md, "API traps"); never other text."""
    return type(value) in _NUMERIC_TYPES or value == ""


def short(value: Any, size: int = 60) -> str:
    """repr() cut to a readable length: an error line must stay one short line."""
    text = repr(value)
    return text if len(text) <= size else text[: size - 1] + "…"


def _fail(what: str, index: int, row: Any, problem: str) -> ApiDataError:
    ident = row.get("id") if isinstance(row, dict) else None
    return ApiDataError(f"{what} row {index} ({short(ident)}): {problem}")


def _check_rank(what: str, index: int, row: dict[str, Any]) -> None:
    rank = row.get("rank")
    if rank is None or rank == "":
        return  # unranked, like rank 0
    if not _is_number(rank) or rank < 0 or rank != int(rank):
        raise _fail(what, index, row, f"rank {short(rank)} is not a non-negative integer")


def _check_texts(what: str, index: int, row: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in ("id", *keys):
        value = row.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _fail(what, index, row, f"{key} is {type(value).__name__}, expected text")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                # JSON can carry it escaped, but no UTF-8 file (CSV, coins_list.txt) can.
                raise _fail(
                    what, index, row, f"{key} holds a lone surrogate (not valid Unicode text)"
                ) from None


def _dedupe(what: str, payload: Any) -> Validated:
    """Check list-of-objects-with-id and drop repeated ids (first kept)."""
    if not isinstance(payload, list):
        raise ApiDataError(f"{what}: expected a JSON array, got {type(payload).__name__}")
    if not payload:
        raise ApiDataError(f"{what}: the API returned an empty list")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    for index, row in enumerate(payload):
        if not isinstance(row, dict):
            raise _fail(what, index, row, f"expected an object, got {type(row).__name__}")
        ident = row.get("id")
        if not isinstance(ident, str) or not ident.strip():
            raise _fail(what, index, row, "missing or empty string id")
        if ident in seen:
            duplicates.append(ident)
            continue
        seen.add(ident)
        rows.append(row)
    if duplicates:
        log.warning(
            "%s: dropped %d duplicate row(s), e.g. %s", what, len(duplicates), duplicates[:5]
        )
    return Validated(rows, len(duplicates), duplicates)


def validate_tickers(payload: Any, quotes: tuple[str, ...]) -> Validated:
    """Check /tickers: shape, ids, numbers; drop duplicate ids.

    Raises:
        ApiDataError: the payload cannot be used; nothing must be written.
    """
    result = _dedupe("/tickers", payload)
    missing = dict.fromkeys(quotes, 0)
    for index, row in enumerate(result.rows):
        _check_rank("/tickers", index, row)
        _check_texts("/tickers", index, row, TICKER_TEXTS)
        for key in TICKER_NUMBERS:
            if not _numeric_ok(row.get(key)):
                problem = f"{key} is {short(row.get(key))}, expected a number"
                raise _fail("/tickers", index, row, problem)
        row_quotes = row.get("quotes")
        if row_quotes is None:
            row_quotes = {}
        if not isinstance(row_quotes, dict):
            raise _fail("/tickers", index, row, "quotes is not an object")
        for code in quotes:
            quote = row_quotes.get(code)
            if quote is None:
                missing[code] += 1
                continue
            if not isinstance(quote, dict):
                raise _fail("/tickers", index, row, f"quotes.{code} is not an object")
            for key, value in quote.items():
                # Hot loop (12k rows × 17 fields): exact type test first, rare cases after.
                if type(value) not in _NUMERIC_TYPES and value != "" and key in QUOTE_NUMBERS:
                    raise _fail("/tickers", index, row, f"quotes.{code}.{key} is {short(value)}")
    for code, count in missing.items():
        if count * 2 > len(result.rows):
            raise ApiDataError(
                f"/tickers: quote {code} missing in {count} of {len(result.rows)} rows"
            )
    return result


def validate_global(payload: Any) -> dict[str, Any]:
    """Check /global: an object with a numeric market_cap_usd, the one figure a snapshot needs.

    Other fields are kept as the API gives them; a type change there (e.g. `last_updated`
    as RFC 3339 text) is logged, and never costs the /tickers payload already paid for.
    """
    if not isinstance(payload, dict):
        raise ApiDataError(f"/global: expected a JSON object, got {type(payload).__name__}")
    for key in GLOBAL_REQUIRED:
        if not _is_number(payload.get(key)):
            raise ApiDataError(f"/global: {key} is {short(payload.get(key))}, expected a number")
    for key in GLOBAL_NUMBERS:
        if key in payload and not _numeric_ok(payload[key]):
            log.warning("/global: %s is %s, not a number; kept as given", key, short(payload[key]))
    return payload


def validate_coins(payload: Any) -> Validated:
    """Check /coins: shape, ids, ranks, texts; drop duplicate ids."""
    result = _dedupe("/coins", payload)
    for index, row in enumerate(result.rows):
        _check_rank("/coins", index, row)
        _check_texts("/coins", index, row, COIN_TEXTS)
        active = row.get("is_active")
        if active is not None and not isinstance(active, bool):
            raise _fail("/coins", index, row, f"is_active is {active!r}, expected true/false")
    return result


def check_shrink(what: str, new_count: int, previous_count: int | None, accept: bool) -> None:
    """Refuse a payload with fewer than half the rows of the previous good one."""
    if previous_count and new_count * 2 < previous_count:
        message = f"{what}: only {new_count} rows, fewer than half of the previous {previous_count}"
        if not accept:
            raise ShrunkSnapshot(message)
        log.warning("%s; accepted because of --accept-shrink", message)


def rank_sort_key(row: dict[str, Any]) -> tuple[int, int, str]:
    """Ranked coins by rank, then unranked (0 or missing), ties by id."""
    rank = row.get("rank")
    if not rank:
        return (1, 0, row["id"])
    return (0, int(rank), row["id"])
