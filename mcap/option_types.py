"""What an option's text may be: each argparse type checks and converts one value, and says
in one line what is wrong (argparse turns it into exit 2)."""

from __future__ import annotations

import argparse

import urllib3

from .clock import time_bound
from .plans import GRID_INTERVALS, TIERS
from .settings import ALLOWED_QUOTES, MAX_QUOTES, MAX_RATE


def parse_quotes(text: str) -> tuple[str, ...]:
    """`USD,EUR,BTC` → ('USD', 'EUR', 'BTC'); argparse turns the error into exit 2."""
    codes: list[str] = []
    for raw in text.split(","):
        code = raw.strip().upper()
        if not code:
            continue
        if code not in ALLOWED_QUOTES:
            raise argparse.ArgumentTypeError(f"unsupported quote currency {raw.strip()!r}")
        if code not in codes:
            codes.append(code)
    if not codes:
        raise argparse.ArgumentTypeError("at least one quote currency is needed")
    if len(codes) > MAX_QUOTES:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_QUOTES} quotes per request, got {len(codes)}"
        )
    return tuple(codes)


def base_url_text(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"base URL must start with http:// or https://: {text!r}")
    try:
        host = urllib3.util.parse_url(text).host
    except ValueError as exc:  # urllib3's LocationParseError is a ValueError
        raise argparse.ArgumentTypeError(f"invalid base URL {text!r}: {exc}") from None
    if not host:
        raise argparse.ArgumentTypeError(f"base URL has no host: {text!r}")
    return text


def number(cast: type[float] | type[int], text: str) -> float:
    try:
        value = cast(text)
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def positive_float(text: str) -> float:
    if not number(float, text) > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return float(text)


def non_negative_int(text: str) -> int:
    if number(int, text) < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return int(text)


def positive_int(text: str) -> int:
    if non_negative_int(text) == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return int(text)


def minutes(text: str) -> float:
    if not number(float, text) >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more minutes")
    return float(text)


def time_text(text: str) -> str:
    try:
        time_bound(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def percent(text: str) -> float:
    value = number(float, text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be a percentage from 0 to 100: {text!r}")
    return float(value)


def request_rate(text: str) -> float:
    """--rate: requests a second, above 0 and at most the API's per-IP limit."""
    rate = number(float, text)
    if not 0 < rate <= MAX_RATE:
        raise argparse.ArgumentTypeError(
            f"must be above 0 and at most {MAX_RATE:g} (the API's limit per IP): {text!r}"
        )
    return float(rate)


def interval_text(text: str) -> str:
    if text not in GRID_INTERVALS:
        raise argparse.ArgumentTypeError(
            f"must be one of {', '.join(GRID_INTERVALS)}: {text!r} (coarser than daily: ask for "
            "1d, which costs the same calls)"
        )
    return text


def tier_text(text: str) -> str:
    if text.lower() not in TIERS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(TIERS)}: {text!r}")
    return text.lower()
