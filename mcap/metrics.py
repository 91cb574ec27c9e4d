"""--metrics-file: a run's outcome and its out-dir's health as a Prometheus textfile, for
node_exporter's textfile collector, replaced atomically after every run (a run refused by the
lock included). What each figure means, per script: docs/operations.md, "Pings and metrics";
why it is computed this way: docs/design.md, "Hooks".

- The run: when it ended, its exit code, and when a run of this script last ended with exit 0
  (skipped included) — this run's time, else carried over from the file's previous version.
- The snapshots (03 and 04; 05 takes none, so its file has no snapshot figures): the last
  committed one's time, coins and expected coins, and the last 24 h's missed slots by the
  rule --status uses (status.coverage, less the slots gap repair refilled).
- The directory: this month's requests (the ledger), the budget (absent when unlimited), and
  the history's problems as the reader of record finds them without reading every byte.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from .clock import now, parse_iso
from .context import RunContext
from .errors import HistoryDamaged, LocalStateError
from .fsio import atomic_write_bytes
from .history import Picture, open_picture
from .ledger import RequestLedger
from .settings import Config
from .status import coverage, refilled_slots

log = logging.getLogger(__name__)

PREFIX = "mcap_"
# Every figure, in the file's order, with its # HELP text; all are gauges.
HELP = {
    "last_run_timestamp_seconds": "When the last run of this script ended (Unix time), "
    "a run refused by the lock included.",
    "last_run_exit_code": "Exit code of the last run of this script (0: success or skipped; "
    "the README lists them all).",
    "last_success_timestamp_seconds": "When a run of this script last ended with exit 0, "
    "skipped included (Unix time).",
    "last_snapshot_timestamp_seconds": "Time (collected_at) of the last snapshot committed to "
    "the out-dir's history (Unix time).",
    "snapshot_coins": "Coins in the last committed snapshot.",
    "expected_coins": "Coins the plan should return, for the last committed snapshot.",
    "requests_this_month": "API requests this UTC month by every script sharing the out-dir, "
    "retries included (the request ledger).",
    "monthly_budget": "API requests allowed per UTC month (absent when unlimited).",
    "missed_slots_24h": "Cadence slots of the last 24 h without a snapshot, less those gap "
    "repair refilled: what --status counts against --min-coverage.",
    "history_problems": "Problems the reader of record finds in the history without reading "
    "every byte (0 whenever --check-history passes).",
}
MAX_PREVIOUS_BYTES = 1_000_000


@dataclass(frozen=True)
class Figure:
    """One sample: a name of HELP (without the prefix) and its value."""

    name: str
    value: float


def write_metrics(ctx: RunContext, code: int, path: Path) -> None:
    """Replace the metrics file at `path` with this run's figures.

    Raises:
        WriteError: the file cannot be written (the caller makes it a warning).
    """
    config = ctx.config
    at = round(now(), 3)
    labels = label_text(config)
    previous = previous_value(path, "last_success_timestamp_seconds", labels)
    figures = [
        Figure("last_run_timestamp_seconds", at),
        Figure("last_run_exit_code", code),
        *([Figure("last_success_timestamp_seconds", at if code == 0 else previous)]
          if code == 0 or previous is not None else []),
        *history_figures(config, at),
        *ledger_figures(config, at),
    ]  # fmt: skip
    atomic_write_bytes(path, render(figures, labels))


def history_figures(config: Config, at: float) -> list[Figure]:
    """The snapshot figures (collectors only) and the history's problems, from one picture.

    `history_problems` is the reader of record's own check (`Picture.problems()`: pieces
    against snapshots.jsonl, each listed file's size and footer hash, the manifest, the
    state, the backfilled points) plus unfinished archive steps: what --check-history counts
    too, without its whole-file hashes and line-by-line read (docs/design.md, "Hooks").
    """
    try:
        with open_picture(config.out_dir) as picture:
            problems = len(picture.problems() + picture.manifest.unfinished())
            snapshots = snapshot_figures(picture, config, at) if config.profile.takes_quotes else []
    except HistoryDamaged as exc:  # a damaged manifest stops every reader: one problem
        log.warning("metrics: the history cannot be read (%s)", exc)
        return [Figure("history_problems", 1)]
    except (LocalStateError, OSError) as exc:
        log.warning("metrics: no history figures (%s)", exc)
        return []
    return [*snapshots, Figure("history_problems", problems)]


def snapshot_figures(picture: Picture, config: Config, at: float) -> list[Figure]:
    """The last committed snapshot, and the last 24 h's missed slots (none before a first
    snapshot: there is no coverage to speak of)."""
    if not picture.snapshots:
        return []
    last = picture.snapshots[-1]
    found = coverage([record.ts for record in picture.snapshots], at, config.every_min)
    missed = found.missing - refilled_slots(found, picture.files, config.every_min)
    return [
        Figure("last_snapshot_timestamp_seconds", parse_iso(last.ts)),
        Figure("snapshot_coins", last.coin_count),
        *([Figure("expected_coins", last.expected_count)] if last.expected_count is not None
          else []),
        Figure("missed_slots_24h", missed),
    ]  # fmt: skip


def ledger_figures(config: Config, at: float) -> list[Figure]:
    figures = []
    try:
        figures.append(
            Figure("requests_this_month", RequestLedger(config.out_dir).load(at).month_requests)
        )
    except LocalStateError as exc:  # the run has said so already (74)
        log.warning("metrics: no request count (%s)", exc)
    if config.monthly_budget is not None:
        figures.append(Figure("monthly_budget", config.monthly_budget))
    return figures


def label_text(config: Config) -> str:
    """`script="…",out_dir="…"`: one series per script and output directory."""
    labels = {"script": config.script, "out_dir": str(config.out_dir.absolute())}
    return ",".join(f'{name}="{_escaped(value)}"' for name, value in labels.items())


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(figures: list[Figure], labels: str) -> bytes:
    """The text format: # HELP, # TYPE and one sample per figure, in HELP's order."""
    lines = []
    for figure in sorted(figures, key=lambda f: list(HELP).index(f.name)):
        name = PREFIX + figure.name
        lines += [
            f"# HELP {name} {HELP[figure.name]}",
            f"# TYPE {name} gauge",
            f"{name}{{{labels}}} {_number(figure.value)}",
        ]
    return ("\n".join(lines) + "\n").encode("utf-8", "replace")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def previous_value(path: Path, name: str, labels: str) -> float | None:
    """A figure of the file's previous version (as this module wrote it), or None."""
    start = f"{PREFIX}{name}{{{labels}}} ".encode("utf-8", "replace")
    try:
        with open(path, "rb") as handle:
            text = handle.read(MAX_PREVIOUS_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("metrics: previous %s unreadable (%s)", path, exc)
        return None
    for line in text.splitlines():
        if line.startswith(start):
            try:
                value = float(line[len(start) :])
            except ValueError:
                return None
            return value if math.isfinite(value) else None
    return None
