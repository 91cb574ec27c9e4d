"""Command line and settings shared by the four scripts (CONTRACT.md "Running")."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import urllib3

FREE_BASE_URL = "https://api.coinpaprika.com/v1"
PRO_BASE_URL = "https://api-pro.coinpaprika.com/v1"
FREE_MONTHLY_BUDGET = 20_000
FREE_PLAN_TICKER_CAP = 2_000
MAX_QUOTES = 3
MB = 1_000_000
DEFAULT_READ_TIMEOUT_S = 30.0
# 01 and 02 are run by hand: a hanging API must end them with 69 well within two minutes.
INTERACTIVE_DEADLINE_S = 100.0
SCHEDULED_DEADLINE_S = 1200.0
DEFAULT_MAX_DOWNLOAD_MB = 64
DEFAULT_MAX_BODY_MB = 128
# The 42 quote currencies /tickers accepts (coinpaprika-api.md §3.1).
ALLOWED_QUOTES = frozenset(
    "BTC ETH USD EUR PLN KRW GBP CAD JPY RUB TRY NZD AUD CHF UAH HKD SGD NGN PHP MXN BRL THB "
    "CLP CNY CZK DKK HUF IDR ILS INR MYR NOK PKR SEK TWD ZAR VND BOB COP PEN ARS ISK".split()
)

SCRIPT_COINS = "01_fetch_all_coins_list"
SCRIPT_SNAPSHOT = "02_fetch_all_market_caps"
SCRIPT_FREE_TIER = "03_optimized_free_tier_collector"
SCRIPT_PRODUCTION = "04_production_collector"
COLLECTOR_SCRIPTS = (SCRIPT_SNAPSHOT, SCRIPT_FREE_TIER, SCRIPT_PRODUCTION)


@dataclass(frozen=True)
class Config:
    """Settings for one run, built once from argv and the environment."""

    script: str
    out_dir: Path
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    quotes: tuple[str, ...] = ("USD",)
    quiet: bool = False
    verbose: bool = False
    accept_shrink: bool = False
    monthly_budget: int | None = FREE_MONTHLY_BUDGET
    min_interval_s: float = 0.0
    force: bool = False
    deadline_s: float = 1200.0
    every_min: int = 30
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    max_download_bytes: int = 64 * MB
    max_body_bytes: int = 128 * MB
    max_attempts: int = 4
    min_request_gap_s: float = 0.25  # ≤ 4 req/s, well under the API's 10 req/s per IP
    show_plan: bool = False
    status: bool = False
    check_history: bool = False

    @property
    def plan(self) -> str:
        return "paid" if self.api_key else "free"

    @classmethod
    def from_args(cls, script: str, args: argparse.Namespace, environ: Mapping[str, str]) -> Config:
        api_key = (environ.get("COINPAPRIKA_API_KEY") or "").strip() or None
        if api_key is not None:
            check_api_key(api_key)
        base_url = args.base_url or environ.get("COINPAPRIKA_BASE_URL")
        base_url = _base_url(base_url) if base_url else (PRO_BASE_URL if api_key else FREE_BASE_URL)
        budget = getattr(args, "monthly_budget", None)
        if budget is None and not api_key:
            budget = FREE_MONTHLY_BUDGET
        min_interval = getattr(args, "min_interval", None)
        if min_interval is None:
            min_interval = 0.0 if script == SCRIPT_SNAPSHOT else 5.0
        return cls(
            script=script,
            out_dir=Path(args.out_dir).expanduser() if args.out_dir else Path.cwd(),
            base_url=base_url.rstrip("/"),
            api_key=api_key,
            quotes=getattr(args, "quotes", ("USD",)),
            quiet=args.quiet,
            verbose=args.verbose,
            accept_shrink=args.accept_shrink,
            monthly_budget=budget,
            min_interval_s=float(min_interval) * 60.0,
            force=getattr(args, "force", False),
            deadline_s=float(args.deadline or default_deadline(script)),
            every_min=getattr(args, "every", 30),
            read_timeout_s=float(args.timeout),
            max_download_bytes=int(args.max_download_mb * MB),
            max_body_bytes=int(args.max_body_mb * MB),
            max_attempts=int(args.retries) + 1,
            show_plan=getattr(args, "plan", False),
            status=getattr(args, "status", False),
            check_history=getattr(args, "check_history", False),
        )


def default_deadline(script: str) -> float:
    interactive = script in (SCRIPT_COINS, SCRIPT_SNAPSHOT)
    return INTERACTIVE_DEADLINE_S if interactive else SCHEDULED_DEADLINE_S


class ApiKeyError(ValueError):
    """COINPAPRIKA_API_KEY cannot be sent as an HTTP header value."""


def check_api_key(key: str) -> None:
    """Refuse a key requests would choke on (CR, LF, control or non-Latin-1 characters).

    The message never contains the key itself.
    """
    bad = [c for c in key if ord(c) < 0x20 or ord(c) == 0x7F or ord(c) > 0xFF]
    if bad:
        kinds = sorted({"a line break" if c in "\r\n" else f"U+{ord(c):04X}" for c in bad})
        raise ApiKeyError(
            "COINPAPRIKA_API_KEY cannot be sent as an HTTP header: it contains "
            + ", ".join(kinds[:5])
            + "; set it to the key exactly as your CoinPaprika account shows it"
        )


def parse_quotes(text: str) -> tuple[str, ...]:
    """`USD,EUR,BTC` → ('USD', 'EUR', 'BTC'); argparse turns the ValueError into exit 2."""
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


def _base_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"base URL must start with http:// or https://: {text!r}")
    try:
        host = urllib3.util.parse_url(text).host
    except ValueError as exc:  # urllib3's LocationParseError is a ValueError
        raise argparse.ArgumentTypeError(f"invalid base URL {text!r}: {exc}") from None
    if not host:
        raise argparse.ArgumentTypeError(f"base URL has no host: {text!r}")
    return text


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad command lines get one clear stderr line and exit 2 (CONTRACT: one line per failure)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(script: str, description: str) -> argparse.ArgumentParser:
    """The options every script shares, plus the collector / free-tier / production extras."""
    parser = OneLineErrorParser(prog=f"{script}.py", description=description)
    parser.add_argument(
        "--out-dir", metavar="DIR", help="where all files are written (default: cwd)"
    )
    parser.add_argument(
        "--base-url",
        type=_base_url,
        metavar="URL",
        help=f"API root (env COINPAPRIKA_BASE_URL; default {FREE_BASE_URL}, "
        f"or {PRO_BASE_URL} when COINPAPRIKA_API_KEY is set)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no output on stdout; errors on stderr"
    )
    parser.add_argument("--verbose", action="store_true", help="log lines and tracebacks on stderr")
    parser.add_argument(
        "--accept-shrink",
        action="store_true",
        help="accept a payload with fewer than half the rows of the previous one",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_READ_TIMEOUT_S,
        metavar="SECONDS",
        help=f"read timeout per request (default {DEFAULT_READ_TIMEOUT_S:g}; connect: 10)",
    )
    parser.add_argument(
        "--max-download-mb",
        type=_positive_float,
        default=DEFAULT_MAX_DOWNLOAD_MB,
        metavar="MB",
        help=f"refuse a response larger than this on the wire (default {DEFAULT_MAX_DOWNLOAD_MB})",
    )
    parser.add_argument(
        "--max-body-mb",
        type=_positive_float,
        default=DEFAULT_MAX_BODY_MB,
        metavar="MB",
        help=f"refuse a body larger than this once decompressed (default {DEFAULT_MAX_BODY_MB})",
    )
    parser.add_argument(
        "--retries",
        type=_non_negative_int,
        default=3,
        metavar="N",
        help="retries per request for 429/5xx/network errors (default 3)",
    )
    parser.add_argument(
        "--deadline",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="overall deadline for the run, retries and waits included "
        f"(default {default_deadline(script):g})",
    )
    parser.add_argument(
        "--monthly-budget",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="API calls allowed per calendar month, UTC (default 20000 without an API key, "
        "unlimited with one)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help='ignore a "blocked until" mark left by a quota 402 (the budget still applies)',
    )
    if script == SCRIPT_COINS:
        return parser
    parser.add_argument(
        "--quotes",
        type=parse_quotes,
        default=("USD",),
        metavar="USD[,EUR,BTC]",
        help="quote currencies, at most 3 (default USD)",
    )
    parser.add_argument(
        "--min-interval",
        type=float,
        default=None,
        metavar="MINUTES",
        help="skip without any request when the last snapshot is younger than this "
        f"(default {'0' if script == SCRIPT_SNAPSHOT else '5'}; 0 disables)",
    )
    parser.add_argument(
        "--every",
        type=_positive_int,
        default=30,
        metavar="MINUTES",
        help="the cron cadence, used for budget planning and gap detection (default 30)",
    )
    if script == SCRIPT_FREE_TIER:
        parser.add_argument(
            "--plan",
            action="store_true",
            help="print the month's budget maths for --every and exit, without any request",
        )
    if script == SCRIPT_PRODUCTION:
        parser.add_argument(
            "--status",
            action="store_true",
            help="print health (last run, last snapshot, gaps, budget, disk); exit 1 if unhealthy",
        )
        parser.add_argument(
            "--check-history",
            action="store_true",
            help="verify the history files; exit 65 on any problem",
        )
    return parser


def parse_config(
    script: str, description: str, argv: Sequence[str] | None, environ: Mapping[str, str] | None
) -> Config:
    """Parse argv (argparse exits 2 on bad input) and build the run's Config."""
    parser = build_parser(script, description)
    args = parser.parse_args(argv)
    if getattr(args, "min_interval", None) is not None and not args.min_interval >= 0:
        parser.error("--min-interval must be 0 or more minutes")
    try:
        return Config.from_args(script, args, os.environ if environ is None else environ)
    except (ApiKeyError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))
