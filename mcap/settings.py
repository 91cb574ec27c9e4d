"""Settings: what each script is (its profile), and one run's Config from argv + environment.

Every default lives here once; a script's own defaults live in its ScriptProfile.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import urllib3

from .clock import time_bound

FREE_BASE_URL = "https://api.coinpaprika.com/v1"
PRO_BASE_URL = "https://api-pro.coinpaprika.com/v1"
FREE_MONTHLY_BUDGET = 20_000
FREE_PLAN_TICKER_CAP = 2_000
MAX_QUOTES = 3
DEFAULT_QUOTES = ("USD",)
# The 42 quote currencies /tickers accepts (coinpaprika-api.md §3.1).
ALLOWED_QUOTES = frozenset(
    "BTC ETH USD EUR PLN KRW GBP CAD JPY RUB TRY NZD AUD CHF UAH HKD SGD NGN PHP MXN BRL THB "
    "CLP CNY CZK DKK HUF IDR ILS INR MYR NOK PKR SEK TWD ZAR VND BOB COP PEN ARS ISK".split()
)
# One snapshot = one /tickers + one /global: /tickers has no pagination (the API's own
# reference), and paging a list that ignores `page` is what broke the earlier system.
CALLS_PER_SNAPSHOT = 2
API_REFRESH_MIN = 5  # the free plan's data refreshes about every 5 minutes
MB = 1_000_000
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0
RETRIES = 3
MAX_DOWNLOAD_MB = 64.0
MAX_BODY_MB = 128.0
EVERY_MIN = 30
MIN_COVERAGE = 90.0  # --status: percent of the last 24 h's slots that must hold a snapshot
MIN_KEY_LENGTH = 8
MIN_REQUEST_GAP_S = 0.25  # ≤ 4 req/s, well under the API's 10 req/s per IP
# 01 and 02 are run by hand: a hanging API must end them with 69 well within two minutes.
INTERACTIVE_DEADLINE_S = 100.0
SCHEDULED_DEADLINE_S = 1200.0
RUN_LOCK = ".collector.lock"


@dataclass(frozen=True)
class ScriptProfile:
    """What a script is and does around the shared pipeline, stated as data."""

    name: str
    description: str
    takes_quotes: bool = True  # a snapshot collector (02, 03, 04), not the catalogue (01)
    interactive: bool = False  # run by hand: retries on stderr, a two-minute deadline
    deadline_s: float = SCHEDULED_DEADLINE_S
    min_interval_min: float = 0.0
    archives_history: bool = False
    records_gaps: bool = False
    writes_stats: bool = True
    lock_name: str = RUN_LOCK
    has_budget_plan: bool = False  # 03 --plan
    has_health_checks: bool = False  # 04 --status / --check-history


@dataclass(frozen=True)
class Config:
    """Settings for one run, built once from argv and the environment."""

    profile: ScriptProfile
    out_dir: Path
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    quotes: tuple[str, ...] = DEFAULT_QUOTES
    quiet: bool = False
    verbose: bool = False
    accept_shrink: bool = False
    monthly_budget: int | None = FREE_MONTHLY_BUDGET
    min_interval_s: float = 0.0
    force: bool = False
    deadline_s: float = SCHEDULED_DEADLINE_S
    every_min: int = EVERY_MIN
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S
    max_download_bytes: int = int(MAX_DOWNLOAD_MB * MB)
    max_body_bytes: int = int(MAX_BODY_MB * MB)
    max_attempts: int = RETRIES + 1
    min_request_gap_s: float = MIN_REQUEST_GAP_S
    show_plan: bool = False
    # The one read-only view asked for (04): "status", "check-history", "export-history",
    # "query"; None for a collection run. Views lock, log and write nothing.
    view: str | None = None
    export_range: tuple[str, ...] = ()
    query: str | None = None
    min_coverage: float = MIN_COVERAGE

    @property
    def script(self) -> str:
        return self.profile.name

    @property
    def plan(self) -> str:
        return "paid" if self.api_key else "free"

    @property
    def read_only(self) -> bool:
        """A view (--status, --check-history, --export-history, --query): no lock, log, file
        or request."""
        return self.view is not None

    @classmethod
    def from_args(
        cls, profile: ScriptProfile, args: argparse.Namespace, environ: Mapping[str, str]
    ) -> Config:
        api_key = (environ.get("COINPAPRIKA_API_KEY") or "").strip() or None
        if api_key is not None:
            check_api_key(api_key)
        base_url = args.base_url or environ.get("COINPAPRIKA_BASE_URL")
        base_url = _base_url(base_url) if base_url else (PRO_BASE_URL if api_key else FREE_BASE_URL)
        budget = args.monthly_budget
        if budget is None and not api_key:
            budget = FREE_MONTHLY_BUDGET
        min_interval = getattr(args, "min_interval", None)
        if min_interval is None:
            min_interval = profile.min_interval_min
        return cls(
            profile=profile,
            out_dir=Path(args.out_dir).expanduser() if args.out_dir else Path.cwd(),
            base_url=base_url.rstrip("/"),
            api_key=api_key,
            quotes=getattr(args, "quotes", DEFAULT_QUOTES),
            quiet=args.quiet,
            verbose=args.verbose,
            accept_shrink=args.accept_shrink,
            monthly_budget=budget,
            min_interval_s=float(min_interval) * 60.0,
            force=args.force,
            deadline_s=float(args.deadline or profile.deadline_s),
            every_min=getattr(args, "every", EVERY_MIN),
            read_timeout_s=float(args.timeout),
            max_download_bytes=int(args.max_download_mb * MB),
            max_body_bytes=int(args.max_body_mb * MB),
            max_attempts=int(args.retries) + 1,
            show_plan=getattr(args, "plan", False),
            view=_view_of(args),
            export_range=tuple(getattr(args, "export_history", None) or ()),
            query=getattr(args, "query", None),
            min_coverage=getattr(args, "min_coverage", MIN_COVERAGE),
        )


VIEWS = ("status", "check-history", "export-history", "query")


def _view_of(args: argparse.Namespace) -> str | None:
    """The view an option asked for; an empty or blank argument still asks for it."""
    for view in VIEWS:
        value = getattr(args, view.replace("-", "_"), None)
        if value not in (None, False):
            return view
    return None


class ApiKeyError(ValueError):
    """COINPAPRIKA_API_KEY cannot be sent as an HTTP header value."""


def check_api_key(key: str) -> None:
    """Refuse a key requests would choke on (CR, LF, control or non-Latin-1 characters), or
    one too short to be a key (redacting it would mangle ordinary text).

    The message never contains the key itself.
    """
    if len(key) < MIN_KEY_LENGTH:
        raise ApiKeyError(
            f"COINPAPRIKA_API_KEY is {len(key)} character(s) long, too short to be a "
            f"CoinPaprika key (at least {MIN_KEY_LENGTH}); set it to the key exactly as your "
            "CoinPaprika account shows it, or unset it for the free plan"
        )
    bad = [c for c in key if ord(c) < 0x20 or ord(c) == 0x7F or ord(c) > 0xFF]
    if bad:
        kinds = sorted({"a line break" if c in "\r\n" else f"U+{ord(c):04X}" for c in bad})
        raise ApiKeyError(
            "COINPAPRIKA_API_KEY cannot be sent as an HTTP header: it contains "
            + ", ".join(kinds[:5])
            + "; set it to the key exactly as your CoinPaprika account shows it"
        )


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


def _number(cast: type[float] | type[int], text: str) -> float:
    try:
        value = cast(text)
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _positive_float(text: str) -> float:
    if not _number(float, text) > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return float(text)


def _non_negative_int(text: str) -> int:
    if _number(int, text) < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    if _non_negative_int(text) == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return int(text)


def _minutes(text: str) -> float:
    if not _number(float, text) >= 0:
        raise argparse.ArgumentTypeError("must be 0 or more minutes")
    return float(text)


def _time_bound(text: str) -> str:
    try:
        time_bound(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _percent(text: str) -> float:
    value = _number(float, text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be a percentage from 0 to 100: {text!r}")
    return float(value)


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad command lines get one clear stderr line and exit 2 (CONTRACT: one line per failure)."""

    def error(self, message: str) -> NoReturn:
        # The same prefix as every other error line: the script's name without ".py".
        self.exit(2, f"{self.prog.removesuffix('.py')}: error: {message} (see --help)\n")


def build_parser(profile: ScriptProfile) -> argparse.ArgumentParser:
    """The options every script shares, plus what its profile says it does."""
    parser = OneLineErrorParser(prog=f"{profile.name}.py", description=profile.description)
    add = parser.add_argument
    add("--out-dir", metavar="DIR", help="where all files are written (default: cwd)")
    add(
        "--base-url",
        type=_base_url,
        metavar="URL",
        help=f"API root (env COINPAPRIKA_BASE_URL; default {FREE_BASE_URL}, "
        f"or {PRO_BASE_URL} when COINPAPRIKA_API_KEY is set)",
    )
    add("--quiet", action="store_true", help="no output on stdout; errors on stderr")
    add("--verbose", action="store_true", help="log lines and tracebacks on stderr")
    add(
        "--accept-shrink",
        action="store_true",
        help="accept a payload with fewer than half the rows of the previous one",
    )
    add(
        "--timeout",
        type=_positive_float,
        default=READ_TIMEOUT_S,
        metavar="SECONDS",
        help=f"read timeout per request (default {READ_TIMEOUT_S:g}; connect: 10)",
    )
    add(
        "--max-download-mb",
        type=_positive_float,
        default=MAX_DOWNLOAD_MB,
        metavar="MB",
        help=f"refuse a response larger than this on the wire (default {MAX_DOWNLOAD_MB:g})",
    )
    add(
        "--max-body-mb",
        type=_positive_float,
        default=MAX_BODY_MB,
        metavar="MB",
        help=f"refuse a body larger than this once decompressed (default {MAX_BODY_MB:g})",
    )
    add(
        "--retries",
        type=_non_negative_int,
        default=RETRIES,
        metavar="N",
        help=f"retries per request for 429/5xx/network errors (default {RETRIES})",
    )
    add(
        "--deadline",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help=f"overall deadline for the run, retries and waits included "
        f"(default {profile.deadline_s:g})",
    )
    add(
        "--monthly-budget",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help=f"API calls allowed per calendar month, UTC (default {FREE_MONTHLY_BUDGET} "
        "without an API key, unlimited with one)",
    )
    add(
        "--force",
        action="store_true",
        help='ignore a "blocked until" mark left by a quota 402 (the budget still applies)',
    )
    if profile.takes_quotes:
        _add_collector_options(parser, profile)
    return parser


def _add_collector_options(parser: argparse.ArgumentParser, profile: ScriptProfile) -> None:
    add = parser.add_argument
    add(
        "--quotes",
        type=parse_quotes,
        default=DEFAULT_QUOTES,
        metavar="USD[,EUR,BTC]",
        help=f"quote currencies, at most {MAX_QUOTES} (default USD)",
    )
    add(
        "--min-interval",
        type=_minutes,
        default=None,
        metavar="MINUTES",
        help="skip without any request when the last snapshot is younger than this "
        f"(default {profile.min_interval_min:g}; 0 disables)",
    )
    add(
        "--every",
        type=_positive_int,
        default=EVERY_MIN,
        metavar="MINUTES",
        help=f"the cron cadence, used for budget planning and gap detection (default {EVERY_MIN})",
    )
    if profile.has_budget_plan:
        add(
            "--plan",
            action="store_true",
            help="print the month's budget maths for --every and exit, without any request",
        )
    if profile.has_health_checks:
        add(
            "--status",
            action="store_true",
            help="print health (last run, last snapshot, gaps, budget, disk); exit 1 if unhealthy",
        )
        add(
            "--check-history",
            action="store_true",
            help="verify the history files; exit 65 on any problem",
        )
        add(
            "--export-history",
            type=_time_bound,
            nargs="+",
            metavar=("FROM", "TO"),
            help="print the history lines with FROM <= ts <= TO (YYYY-MM-DD or a full UTC "
            "time; TO defaults to FROM) exactly as they were committed, archives included",
        )
        add(
            "--query",
            metavar="SQL",
            help="run one DuckDB SELECT over the views `history` (archives + plain tail) and "
            "`totals` (one row per snapshot); prints CSV",
        )
        add(
            "--min-coverage",
            type=_percent,
            default=MIN_COVERAGE,
            metavar="PERCENT",
            help="--status is unhealthy when fewer of the last 24 h's slots hold a snapshot "
            f"(default {MIN_COVERAGE:g})",
        )


def parse_config(
    profile: ScriptProfile, argv: Sequence[str] | None, environ: Mapping[str, str] | None = None
) -> Config:
    """Parse argv (argparse exits 2 on bad input) and build the run's Config."""
    parser = build_parser(profile)
    args = parser.parse_args(argv)
    bounds = getattr(args, "export_history", None) or ()
    if len(bounds) > 2:
        parser.error("--export-history takes FROM and at most one TO")
    if len(bounds) == 2 and time_bound(bounds[0]) > time_bound(bounds[1], end_of_day=True):
        parser.error(f"--export-history: FROM {bounds[0]} is after TO {bounds[1]}")
    views = [
        view for view in VIEWS if getattr(args, view.replace("-", "_"), None) not in (None, False)
    ]
    if len(views) > 1:
        parser.error(f"--{views[0]} and --{views[1]} cannot be combined: one view at a time")
    try:
        return Config.from_args(profile, args, os.environ if environ is None else environ)
    except (ApiKeyError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))
