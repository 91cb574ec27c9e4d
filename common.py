"""The one import the scripts use: their profile type, the pipelines and the runner.

The logic lives in the `mcap` package; this module names what scripts may call.
"""

import signal
import sys


def _stop_early(signum: int, frame: object) -> None:
    # A signal during start-up (imports take a moment) ends the run quietly with the
    # contract's code; the runner installs its own handlers before any work starts.
    sys.exit(128 + signum)


for _signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(_signum, _stop_early)

from mcap.context import RunContext
from mcap.pipeline import collect_snapshot, fetch_catalogue
from mcap.report import (
    export_history,
    query_history,
    show_budget_plan,
    show_history_check,
    show_status,
)
from mcap.runner import run_main
from mcap.settings import INTERACTIVE_DEADLINE_S, ScriptProfile

__all__ = [
    "INTERACTIVE_DEADLINE_S",
    "RunContext",
    "ScriptProfile",
    "collect_snapshot",
    "export_history",
    "fetch_catalogue",
    "query_history",
    "run_main",
    "show_budget_plan",
    "show_history_check",
    "show_status",
]
