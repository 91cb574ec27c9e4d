"""The history: committed snapshots, their repair, archives, gaps and the checker.

Layers, bottom to top: files → state → repair → columnar → legacy → archive → store → gaps → check
→ export.
"""

from .check import CheckReport, check_history
from .export import TimeRange, export_lines
from .files import HISTORY_DIR, TARGET_NAMES, HistoryFiles
from .gaps import Gap, find_gaps, record_failed_run, record_missed_slots
from .store import Commit, Diff, HistoryStore, diff_snapshots

__all__ = [
    "HISTORY_DIR",
    "TARGET_NAMES",
    "CheckReport",
    "Commit",
    "Diff",
    "Gap",
    "TimeRange",
    "HistoryFiles",
    "HistoryStore",
    "check_history",
    "diff_snapshots",
    "export_lines",
    "find_gaps",
    "record_failed_run",
    "record_missed_slots",
]
