"""The one import the scripts use: their profile type, the pipelines and the runner.

The logic lives in the `mcap` package; this module names what scripts may call.
"""

import os
import signal


def _stop_early(signum: int, frame: object) -> None:
    # Until the runner installs its own handlers, a signal ends the process at once with
    # the contract's code: nothing has been written yet, and an exception raised during an
    # import could land in a callback where Python prints it and carries on.
    os._exit(128 + signum)


for _signum in (signal.SIGTERM, signal.SIGINT):  # first, before the slower imports below
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
