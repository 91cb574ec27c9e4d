"""One run as the pipeline sees it: settings, outcome figures, deadline and terminal output."""

from __future__ import annotations

import io
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, BinaryIO, TextIO

from .client import Deadline, RequestCounter
from .clock import now, utc_iso
from .errors import CollectorError, ExitCode, Interrupted
from .redact import redact
from .settings import STATS_FILE, Config

log = logging.getLogger(__name__)

STATS_NAME = STATS_FILE


def one_line(exc: BaseException) -> str:
    """What a failure says in one line (a bug: its type and text)."""
    if isinstance(exc, CollectorError):
        return exc.one_line()
    return redact(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class BackfillFigures:
    """05's request and outcome, as backfill_stats.json's `backfill` holds them."""

    tier: str
    interval: str
    first: str
    last: str
    coins: int
    calls_needed: int
    reserve: int
    calls: int = 0
    points_added: int = 0
    coins_filled: int = 0
    coins_without_data: int = 0  # answered with no point in the range (their data starts later)
    coins_unknown: int = 0  # 404: the API does not know the id
    refused: tuple[str, ...] = ()  # the plan's refusals, one per interval class
    unusable_answers: int = 0
    calls_left: int = 0
    budget_left: int | None = None
    stopped: str | None = None

    def with_outcome(self, outcome: Any, budget_left: int | None) -> BackfillFigures:
        """The figures once the fill is over (`outcome`: backfill.Outcome)."""
        stopped = outcome.stopped
        return replace(
            self, calls=outcome.calls, points_added=outcome.points,
            coins_filled=len(outcome.filled),
            coins_without_data=len(outcome.empty - outcome.filled),
            coins_unknown=len(outcome.missing), refused=tuple(outcome.refused.values()),
            unusable_answers=outcome.unusable, calls_left=outcome.left, budget_left=budget_left,
            stopped=None if stopped is None else one_line(stopped),
        )  # fmt: skip

    def summary(self) -> str:
        lines = [
            f"Backfilled {self.points_added:,} point(s) for {self.coins_filled:,} coin(s) in "
            f"{self.calls:,} call(s)"
            + ("" if self.budget_left is None else f"; {self.budget_left:,} calls of the "
               f"month may still be spent, {self.reserve:,} stay for the snapshots"),
        ]  # fmt: skip
        if self.coins_without_data:
            lines.append(f"  {self.coins_without_data:,} coin(s) have no data in the range "
                         "(their data starts later): not a gap")  # fmt: skip
        if self.coins_unknown:
            lines.append(f"  {self.coins_unknown:,} coin id(s) unknown to the API (404)")
        for text in self.refused:
            lines.append(f"  refused by the plan: {text}")
        if self.unusable_answers:
            lines.append(f"  {self.unusable_answers:,} answer(s) were not usable data (logged)")
        if self.calls_left:
            lines.append(f"  {self.calls_left:,} call(s) left for the next run")
        return "\n".join(lines)


@dataclass(frozen=True)
class RepairFigures:
    """03/04's gap repair in one run: the gaps looked at, by state, and what it cost."""

    gaps: int = 0
    repaired: int = 0
    partly: int = 0
    unrepairable: int = 0
    calls: int = 0
    points: int = 0

    def count(self, status: str) -> RepairFigures:
        """These figures with one more gap of `status`."""
        changes = {"gaps": self.gaps + 1}
        if status in ("repaired", "partly", "unrepairable"):
            changes[status] = getattr(self, status) + 1
        return replace(self, **changes)

    def summary(self) -> str:
        return (
            f"Gap repair: {self.points:,} point(s) in {self.calls:,} call(s); of "
            f"{self.gaps} gap(s) {self.repaired} repaired, {self.partly} partly (continued by "
            f"the next runs), {self.unrepairable} unrepairable"
        )


@dataclass
class RunStats:
    """The run's outcome; `to_dict()` is latest_stats.json."""

    script: str
    run_id: str
    started_at: str
    status: str = "failed"
    exit_code: int = int(ExitCode.SOFTWARE)
    finished_at: str | None = None
    duration_s: float | None = None
    error: str | None = None
    skipped_reason: str | None = None
    plan: str = "free"
    quotes: list[str] = field(default_factory=list)
    snapshot_id: str | None = None
    collected_at: str | None = None
    coin_count: int | None = None
    expected_count: int | None = None
    duplicates_dropped: int = 0
    appeared: int | None = None
    disappeared: int | None = None
    requests_made: int = 0
    retries: int = 0
    requests_this_month: int | None = None
    monthly_budget: int | None = None
    blocked_until: str | None = None
    bytes_received: int = 0
    history_rows_appended: int = 0
    history_bytes_appended: int = 0
    history_snapshot_count: int | None = None
    history_total_bytes: int | None = None
    last_success_at: str | None = None
    archived_days: list[str] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    backfill: BackfillFigures | None = None  # 05 only
    repair: RepairFigures | None = None  # 03/04, when gaps were looked at

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Environment:
    """Where a run's output goes: the process's streams, or a test's buffers (as httpie's).

    stdout is binary: the views print history lines byte for byte; text is UTF-8.
    """

    stdout: BinaryIO
    stderr: TextIO

    @classmethod
    def of_process(cls) -> Environment:
        return cls(sys.stdout.buffer, sys.stderr)

    def write(self, data: bytes) -> None:
        self.stdout.write(data)

    def flush(self) -> None:
        self.stdout.flush()

    def print(self, text: str = "") -> None:
        self.stdout.write((text + "\n").encode("utf-8", "surrogateescape"))
        self.stdout.flush()

    def error_line(self, text: str) -> None:
        """One line on stderr, key redacted; a closed stderr is not a reason to fail."""
        try:
            print(redact(text), file=self.stderr, flush=True)
        except (OSError, ValueError):
            return

    def silence_stdout(self) -> None:
        """After the reader of a pipe went away (`… | head`): the rest goes nowhere, quietly."""
        try:
            fileno = self.stdout.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fileno)


class RunContext:
    """One run: its config, stats, deadline and terminal output."""

    def __init__(self, config: Config, env: Environment | None = None) -> None:
        self.config = config
        self.env = env or Environment.of_process()
        self.started = now()
        self.started_mono = time.monotonic()
        self.run_id = uuid.uuid4().hex[:8]
        self.stats = RunStats(config.script, self.run_id, utc_iso(self.started))
        self.stats.plan = config.plan
        self.stats.monthly_budget = config.monthly_budget
        self.stats.quotes = list(config.quotes)
        self.deadline = Deadline(config.deadline_s)
        self.counter = RequestCounter()
        self.past_lock = False
        self.lock_refused = False
        self.stdout_broken = False
        # Past the history commit point nothing may turn the run into a failure.
        self.committed = False
        self.warnings: list[str] = []

    def elapsed(self) -> float:
        return time.monotonic() - self.started_mono

    @property
    def interactive(self) -> bool:
        """Run by hand (01, 02): retries and waits are shown on stderr."""
        return self.config.profile.interactive and not self.config.quiet

    def say(self, text: str = "") -> None:
        """Progress and summary on stdout, unless --quiet."""
        if not self.config.quiet and not self.stdout_broken:
            try:
                self.env.print(redact(text))
            except OSError:  # a closed pipe or full stdout must not cost the snapshot
                self.stdout_broken = True

    def error_line(self, text: str) -> None:
        self.env.error_line(text)

    def progress(self, text: str) -> None:
        """One stderr line for a person watching an interactive run (retries, waits)."""
        if self.interactive:
            self.error_line(f"{self.config.script}: {text}")

    def warn(self, text: str) -> None:
        """A problem that does not change the outcome: stderr and the log, once."""
        text = redact(text)
        self.warnings.append(text)
        log.warning("%s", text)
        self.error_line(f"{self.config.script}: warning: {text}")

    def skip(self, reason: str) -> ExitCode:
        self.stats.status = "skipped"
        self.stats.skipped_reason = reason
        log.info("skipped: %s", reason)
        self.say(f"Skipped: {reason}")
        return ExitCode.OK

    def best_effort(self, doing: str, step: Callable[[], object], when: str = "") -> None:
        """Run a step whose failure must not change the run's outcome: it becomes a warning."""
        try:
            step()
        except Interrupted:
            raise  # a signal ends the run: 130/143, or ok when the snapshot is already committed
        except Exception as exc:  # noqa: BLE001 - a warning; the next run retries
            self.warn(f"{doing} failed{' ' + when if when else ''}: {exc}")
            if not isinstance(exc, CollectorError | OSError):
                log.warning("traceback of the above", exc_info=exc)

    def after_commit(self, doing: str, step: Callable[[], object]) -> None:
        """A step past the commit point: a failure is a warning, never the run's outcome."""
        self.best_effort(doing, step, "after the snapshot was committed")
