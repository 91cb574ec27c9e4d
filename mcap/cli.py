"""The command line: one argparse surface for every script, built from its profile and the
view registry, and the Config it yields (settings.py holds Config and the defaults).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .clock import time_bound
from .context import Environment
from .historical_options import add_historical_options, backfill_request
from .hook_options import add_hook_options, hook_targets
from .option_types import (
    base_url_text,
    minutes,
    non_negative_int,
    parse_quotes,
    percent,
    positive_float,
    positive_int,
    time_text,
)
from .settings import (
    DEFAULT_QUOTES,
    EVERY_MIN,
    FREE_BASE_URL,
    FREE_MONTHLY_BUDGET,
    MAX_BODY_MB,
    MAX_DOWNLOAD_MB,
    MAX_QUOTES,
    MB,
    MIN_COVERAGE,
    PRO_BASE_URL,
    READ_TIMEOUT_S,
    RETRIES,
    ApiKeyError,
    Config,
    ScriptProfile,
    check_api_key,
)
from .views import BY_NAME, VIEWS


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad command lines get one clear stderr line and exit 2; help and errors go to the run's
    Environment."""

    def __init__(self, *args: Any, env: Environment, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env = env

    def _print_message(self, message: str, file: Any = None) -> None:
        if not message:
            return
        if file is None or file is sys.stdout:
            self.env.write(message.encode())
            self.env.flush()
        else:
            self.env.stderr.write(message)
            self.env.stderr.flush()

    def error(self, message: str) -> NoReturn:
        # The same prefix as every other error line: the script's name without ".py".
        self.exit(2, f"{self.prog.removesuffix('.py')}: error: {message} (see --help)\n")


def build_parser(profile: ScriptProfile, env: Environment) -> argparse.ArgumentParser:
    """The options every script shares, plus what its profile says it does."""
    parser = OneLineErrorParser(prog=f"{profile.name}.py", description=profile.description, env=env)
    _add_common_options(parser, profile)
    if profile.takes_quotes:
        _add_collector_options(parser, profile)
    if profile.backfills or profile.repairs_gaps:
        add_historical_options(parser, profile)
    if profile.hooks:
        add_hook_options(parser)
    _add_view_options(parser, profile)
    return parser


def _add_common_options(parser: argparse.ArgumentParser, profile: ScriptProfile) -> None:
    add = parser.add_argument
    add("--out-dir", metavar="DIR", help="where all files are written (default: cwd)")
    add(
        "--base-url",
        type=base_url_text,
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
    _add_limits(add)
    add(
        "--deadline",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help=f"overall deadline for the run, retries and waits included "
        f"(default {profile.deadline_s:g})",
    )
    add(
        "--monthly-budget",
        type=non_negative_int,
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


def _add_limits(add: Any) -> None:
    add(
        "--timeout",
        type=positive_float,
        default=READ_TIMEOUT_S,
        metavar="SECONDS",
        help=f"read timeout per request (default {READ_TIMEOUT_S:g}; connect: 10)",
    )
    add(
        "--max-download-mb",
        type=positive_float,
        default=MAX_DOWNLOAD_MB,
        metavar="MB",
        help=f"refuse a response larger than this on the wire (default {MAX_DOWNLOAD_MB:g})",
    )
    add(
        "--max-body-mb",
        type=positive_float,
        default=MAX_BODY_MB,
        metavar="MB",
        help=f"refuse a body larger than this once decompressed (default {MAX_BODY_MB:g})",
    )
    add(
        "--retries",
        type=non_negative_int,
        default=RETRIES,
        metavar="N",
        help=f"retries per request for 429/5xx/network errors (default {RETRIES})",
    )


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
        type=minutes,
        default=None,
        metavar="MINUTES",
        help="skip without any request when the last snapshot is younger than this "
        f"(default {profile.min_interval_min:g}; 0 disables)",
    )
    add(
        "--every",
        type=positive_int,
        default=EVERY_MIN,
        metavar="MINUTES",
        help=f"the cron cadence, used for budget planning and gap detection (default {EVERY_MIN})",
    )


EXPORT_SOURCES = ("snapshot", "historical")
# Views whose arguments are times, checked as they are parsed.
VIEW_TYPES = frozenset({"export-history"})


def _add_view_options(parser: argparse.ArgumentParser, profile: ScriptProfile) -> None:
    """One option per view the profile offers, as the registry declares it."""
    for view in VIEWS:
        if view.name not in profile.views:
            continue
        if view.metavar is None:
            parser.add_argument(f"--{view.name}", action="store_true", help=view.help)
            continue
        parser.add_argument(
            f"--{view.name}",
            type=time_text if view.name in VIEW_TYPES else str,
            nargs=view.nargs,
            metavar=view.metavar,
            help=view.help,
        )
    if "export-history" in profile.views:
        parser.add_argument(
            "--source",
            choices=EXPORT_SOURCES,
            default=EXPORT_SOURCES[0],
            help="--export-history's lines: snapshot (default, the /tickers rows) or "
            "historical (backfilled points, by time then id)",
        )
    if "report" in profile.views:
        for bound, meaning in (("from", "first"), ("to", "last")):
            parser.add_argument(
                f"--{bound}",
                dest=f"report_{bound}",
                type=time_text,
                metavar="FROM" if bound == "from" else "TO",
                help=f"--report: the range's {meaning} day (YYYY-MM-DD) or UTC time "
                f"(default: the history's {meaning})",
            )
    if "status" in profile.views:
        parser.add_argument(
            "--min-coverage",
            type=percent,
            default=MIN_COVERAGE,
            metavar="PERCENT",
            help="--status is unhealthy when fewer of the last 24 h's slots hold a snapshot "
            f"(default {MIN_COVERAGE:g})",
        )


def parse_config(
    profile: ScriptProfile,
    argv: Sequence[str] | None,
    environ: Mapping[str, str] | None = None,
    env: Environment | None = None,
) -> Config:
    """Parse argv and build the run's Config.

    Raises:
        SystemExit: a bad command line (2, one line on stderr) or --help (0).
    """
    parser = build_parser(profile, env or Environment.of_process())
    args = parser.parse_args(argv)
    bounds = getattr(args, "export_history", None) or ()
    if len(bounds) > 2:
        parser.error("--export-history takes FROM and at most one TO")
    if len(bounds) == 2 and time_bound(bounds[0]) > time_bound(bounds[1], end_of_day=True):
        parser.error(f"--export-history: FROM {bounds[0]} is after TO {bounds[1]}")
    _check_report_range(parser, args)
    asked = [name for name in profile.views if _asked(args, name)]
    if len(asked) > 1:
        parser.error(f"--{asked[0]} and --{asked[1]} cannot be combined: one view at a time")
    try:
        return config_from_args(profile, args, os.environ if environ is None else environ)
    except (ApiKeyError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))


def _check_report_range(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--from/--to go with --report, FROM no later than TO (as --export-history's)."""
    low, high = getattr(args, "report_from", None), getattr(args, "report_to", None)
    if (low or high) and getattr(args, "report", None) is None:
        parser.error("--from and --to limit --report's range; give --report FILE.html too")
    if low and high and time_bound(low) > time_bound(high, end_of_day=True):
        parser.error(f"--report: --from {low} is after --to {high}")


def _asked(args: argparse.Namespace, view: str) -> bool:
    """An empty or blank argument still asks for the view (and is refused there)."""
    return getattr(args, view.replace("-", "_"), None) not in (None, False)


def config_from_args(
    profile: ScriptProfile, args: argparse.Namespace, environ: Mapping[str, str]
) -> Config:
    api_key = (environ.get("COINPAPRIKA_API_KEY") or "").strip() or None
    if api_key is not None:
        check_api_key(api_key)
    base_url = args.base_url or environ.get("COINPAPRIKA_BASE_URL")
    base_url = base_url_text(base_url) if base_url else (PRO_BASE_URL if api_key else FREE_BASE_URL)
    budget = args.monthly_budget
    if budget is None and not api_key:
        budget = FREE_MONTHLY_BUDGET
    min_interval = getattr(args, "min_interval", None)
    if min_interval is None:
        min_interval = profile.min_interval_min
    view = next((name for name in profile.views if _asked(args, name)), None)
    ping_url, metrics_file = hook_targets(args, environ) if profile.hooks else (None, None)
    return Config(
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
        view=view,
        read_only=view is not None and not BY_NAME[view].logs,
        export_range=tuple(getattr(args, "export_history", None) or ()),
        export_source=getattr(args, "source", EXPORT_SOURCES[0]),
        query=getattr(args, "query", None),
        report_file=getattr(args, "report", None),
        report_range=(getattr(args, "report_from", None), getattr(args, "report_to", None)),
        min_coverage=getattr(args, "min_coverage", MIN_COVERAGE),
        tier=getattr(args, "tier", None),
        repair=profile.repairs_gaps and not getattr(args, "no_repair", False),
        backfill=backfill_request(args) if profile.backfills else None,
        ping_url=ping_url,
        metrics_file=metrics_file,
    )
