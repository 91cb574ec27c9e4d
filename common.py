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

from mcap.catalogue import fetch_catalogue
from mcap.collect import collect_snapshot
from mcap.context import Environment
from mcap.fill import backfill_history
from mcap.runner import run_main
from mcap.settings import BACKFILL_LOCK, BACKFILL_STATS_FILE, INTERACTIVE_DEADLINE_S, ScriptProfile

__all__ = [
    "BACKFILL_LOCK",
    "BACKFILL_STATS_FILE",
    "INTERACTIVE_DEADLINE_S",
    "Environment",
    "ScriptProfile",
    "backfill_history",
    "collect_snapshot",
    "fetch_catalogue",
    "run_main",
]
