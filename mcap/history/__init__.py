"""The history: committed snapshots, their repair, archives, gaps, the reader and the checker.

Layers, bottom to top: files → state → manifest → repair → locks → summaries →
points_ranges → points → points_reader → reader → columnar → points_archive → legacy →
pieces → cut → archive → store → gaps → points_check → check → export → query. The points_*
modules hold the backfilled points
(history/backfill/), kept apart from the snapshots and read by the same reader.
"""

from .check import CheckReport, check_history
from .export import TimeRange, export_lines, export_points
from .files import HISTORY_DIR, TARGET_NAMES, HistoryFiles
from .gaps import Gap, find_gaps, record_failed_run, record_missed_slots
from .reader import Picture, open_picture
from .state import HistoryHead
from .store import Commit, HistoryStore

__all__ = [
    "HISTORY_DIR",
    "TARGET_NAMES",
    "CheckReport",
    "Commit",
    "Gap",
    "HistoryFiles",
    "HistoryHead",
    "HistoryStore",
    "Picture",
    "TimeRange",
    "check_history",
    "export_lines",
    "export_points",
    "find_gaps",
    "open_picture",
    "record_failed_run",
    "record_missed_slots",
]
