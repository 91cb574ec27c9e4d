"""Settings: what each script is (its profile), one run's Config, and every default once.

The command line that builds a Config lives in cli.py; a script's own defaults live in its
ScriptProfile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FREE_BASE_URL = "https://api.coinpaprika.com/v1"
PRO_BASE_URL = "https://api-pro.coinpaprika.com/v1"
FREE_MONTHLY_BUDGET = 20_000
FREE_PLAN_TICKER_CAP = 2_000
MAX_QUOTES = 3
DEFAULT_QUOTES = ("USD",)
# The 42 quote currencies /tickers accepts (docs/design.md, "API traps").
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
BACKFILL_LOCK = ".backfill_run.lock"  # 05 runs beside the cron job, never blocking it
STATS_FILE = "latest_stats.json"
BACKFILL_STATS_FILE = "backfill_stats.json"
BACKFILL_RATE = 5.0  # requests a second: half the API's per-IP limit
MAX_RATE = 10.0
REPAIR_RATE = 4.0  # gap repair's pace: room for a backfill running beside it
REPAIR_SECONDS = 60.0


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
    stats_name: str = STATS_FILE
    views: tuple[str, ...] = ()  # the read-only views it offers (views.VIEWS)
    backfills: bool = False  # 05: the history's past from /tickers/{id}/historical
    repairs_gaps: bool = False  # 03, 04: missed slots refilled after a commit
    hooks: bool = False  # 03, 04, 05: --ping-url and --metrics-file (hooks.py)


@dataclass(frozen=True)
class BackfillRequest:
    """What 05 was asked to fill (docs/backfill.md)."""

    interval: str = "1d"
    days: float | None = None  # None: as far back as the plan's window for the interval
    coins: str | None = None  # None: the latest snapshot's coins; top:N, ids, catalogue
    max_calls: int | None = None
    rate: float = BACKFILL_RATE


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
    # The view asked for (views.VIEWS by name), or None for the script's own job.
    view: str | None = None
    # A view that creates, locks, logs and writes nothing (all but 03 --plan).
    read_only: bool = False
    export_range: tuple[str, ...] = ()
    export_source: str = "snapshot"  # --export-history's rows: snapshot or historical
    query: str | None = None
    report_file: str | None = None  # --report FILE.html
    report_range: tuple[str | None, str | None] = (None, None)  # --from, --to
    min_coverage: float = MIN_COVERAGE
    tier: str | None = None  # the plan's tier for the historical windows (--tier)
    repair: bool = True  # 03/04: refill missed slots after a commit (--no-repair)
    backfill: BackfillRequest | None = None  # 05 only
    ping_url: str | None = None  # --ping-url or COLLECTOR_PING_URL (03, 04, 05)
    metrics_file: Path | None = None  # --metrics-file (03, 04, 05)

    @property
    def script(self) -> str:
        return self.profile.name

    @property
    def plan(self) -> str:
        return "paid" if self.api_key else "free"

    @property
    def plan_tier(self) -> str:
        """The tier whose historical windows apply: --tier, else free without a key and the
        smallest paid tier with one (a refusal narrows it further)."""
        return self.tier or ("starter" if self.api_key else "free")


class ApiKeyError(ValueError):
    """COINPAPRIKA_API_KEY cannot be used."""


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
