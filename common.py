"""The one import the scripts use: configuration, client, writers, history and runners.

The logic lives in the small `mcap` package; this module names what scripts may call.
"""

import signal
import sys


def _stop_early(signum: int, frame: object) -> None:
    # A signal during start-up (imports take a moment) ends the run quietly with the
    # contract's code; the runner installs its own handlers before any work starts.
    sys.exit(128 + signum)


for _signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(_signum, _stop_early)

from mcap.api import ApiClient, Deadline, fetch_paginated, parse_json_strict
from mcap.collect import (
    collect_snapshot,
    fetch_coin_catalogue,
    show_budget_plan,
)
from mcap.config import (
    SCRIPT_COINS,
    SCRIPT_FREE_TIER,
    SCRIPT_PRODUCTION,
    SCRIPT_SNAPSHOT,
    Config,
    build_parser,
)
from mcap.errors import (
    ApiUnavailable,
    AuthOrPlanError,
    BadApiData,
    Busy,
    CollectorError,
    ExitCode,
    OutputDirError,
    WriteError,
)
from mcap.fsio import atomic_write_bytes
from mcap.history import HistoryStore, check_history
from mcap.ledger import RequestLedger
from mcap.runner import RunContext, run_main
from mcap.status import run_check_history, show_status

__all__ = [
    "ApiClient",
    "ApiUnavailable",
    "AuthOrPlanError",
    "BadApiData",
    "Busy",
    "CollectorError",
    "Config",
    "Deadline",
    "ExitCode",
    "HistoryStore",
    "OutputDirError",
    "RequestLedger",
    "RunContext",
    "SCRIPT_COINS",
    "SCRIPT_FREE_TIER",
    "SCRIPT_PRODUCTION",
    "SCRIPT_SNAPSHOT",
    "WriteError",
    "atomic_write_bytes",
    "build_parser",
    "check_history",
    "collect_snapshot",
    "fetch_coin_catalogue",
    "fetch_paginated",
    "parse_json_strict",
    "run_check_history",
    "run_main",
    "show_budget_plan",
    "show_status",
]
