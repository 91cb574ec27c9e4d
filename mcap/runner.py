"""Running a script: exit codes in one place, signals, stats, and the two pipelines."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from .api import ApiClient, Deadline, RequestCounter
from .config import SCRIPT_COINS, SCRIPT_PRODUCTION, SCRIPT_SNAPSHOT, Config, parse_config
from .errors import (
    ApiUnavailable,
    AuthOrPlanError,
    BadApiData,
    CollectorError,
    DeadlineExceeded,
    ExitCode,
    Interrupted,
    LocalStateError,
    LockBusy,
    UsageError,
    WriteError,
)
from .fsio import (
    FileLock,
    atomic_write_bytes,
    check_dir_target,
    check_file_target,
    check_free_space,
    check_writable,
    crash_point,
    ensure_dir,
    ensure_subdir,
    remove_orphan_temps,
)
from .history import HistoryStore
from .ledger import LEDGER_NAME, RequestLedger
from .logsetup import LOG_NAME, log_failure, setup_logging, utc_iso
from .redact import redact, set_secret

# Failures before the commit point that leave the snapshot files and the history as they were.
KEEPS_FILES = (BadApiData, ApiUnavailable, WriteError, LocalStateError, AuthOrPlanError)

log = logging.getLogger(__name__)

STATS_NAME = "latest_stats.json"
RUN_LOCK_NAME = ".collector.lock"
REJECTED_DIR = "rejected"
REJECTED_KEEP = 5
REJECTED_MAX_BYTES = 8 * 1024 * 1024


# The network code checks the deadline itself; this alarm is the backstop for anything else
# that could stall a run (a slow disk, a stuck name lookup between two checks).
DEADLINE_GRACE_S = 30.0


class SignalGuard:
    """SIGTERM/SIGINT/deadline alarm raise so cleanup runs; deferred inside a commit.

    Once the run's outcome is decided (`finishing`), signals are only noted: the exit code
    and latest_stats.json then always tell the same story.
    """

    def __init__(self) -> None:
        self._depth = 0
        self._pending: CollectorError | None = None
        self._deadline_s = 0.0
        self._finishing = False
        self.noted: list[str] = []

    def install(self, deadline_s: float) -> None:
        self._depth, self._pending, self._finishing, self.noted = 0, None, False, []
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGALRM, self._handle)
        self._deadline_s = deadline_s
        signal.setitimer(signal.ITIMER_REAL, deadline_s + DEADLINE_GRACE_S)

    def finishing(self) -> None:
        self._finishing = True
        signal.setitimer(signal.ITIMER_REAL, 0)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._finishing:
            self.noted.append(signal.Signals(signum).name)
            return
        error: CollectorError
        if signum == signal.SIGTERM:
            error = Interrupted("SIGTERM", ExitCode.SIGTERM)
        elif signum == signal.SIGALRM:
            error = DeadlineExceeded(
                f"run deadline of {self._deadline_s:g}s (+{DEADLINE_GRACE_S:g}s grace) passed"
            )
        else:
            error = Interrupted("SIGINT", ExitCode.SIGINT)
        if self._depth:
            self._pending = error
            return
        raise error

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """A commit is finished before a signal is acted on: outputs are old or all new."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if not self._depth and self._pending is not None:
            pending, self._pending = self._pending, None
            raise pending


GUARD = SignalGuard()


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
    archived_months: list[str] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RunContext:
    """One run: its config, stats, deadline and terminal output."""

    def __init__(self, config: Config, writes_stats: bool) -> None:
        self.config = config
        self.started = time.time()
        self.started_mono = time.monotonic()
        self.run_id = uuid.uuid4().hex[:8]
        self.stats = RunStats(config.script, self.run_id, utc_iso(self.started))
        self.stats.plan = config.plan
        self.stats.monthly_budget = config.monthly_budget
        self.stats.quotes = list(config.quotes)
        self.deadline = Deadline(config.deadline_s)
        self.counter = RequestCounter()
        self.writes_stats = writes_stats
        self.past_lock = False
        self.lock_refused = False
        self.stdout_broken = False
        self.logging_ready = False
        # Past the history commit point nothing may turn the run into a failure.
        self.committed = False
        self.warnings: list[str] = []

    @property
    def read_only(self) -> bool:
        """--status and --check-history create, lock, log and write nothing."""
        return self.config.status or self.config.check_history

    @property
    def interactive(self) -> bool:
        """01 and 02 are run by hand: retries and waits are shown on stderr."""
        return self.config.script in (SCRIPT_COINS, SCRIPT_SNAPSHOT) and not self.config.quiet

    def say(self, text: str = "") -> None:
        """Progress and summary on stdout, unless --quiet."""
        if not self.config.quiet and not self.stdout_broken:
            try:
                print(redact(text), flush=True)
            except OSError:  # a closed pipe or full stdout must not cost the snapshot
                self.stdout_broken = True

    def progress(self, text: str) -> None:
        """One stderr line for a person watching an interactive run (retries, waits)."""
        if self.interactive:
            write_stderr(f"{self.config.script}: {text}")

    def warn(self, text: str) -> None:
        """A problem that does not change the outcome: stderr and the log, once."""
        text = redact(text)
        self.warnings.append(text)
        log.warning("%s", text)
        write_stderr(f"{self.config.script}: warning: {text}")

    def skip(self, reason: str) -> ExitCode:
        self.stats.status = "skipped"
        self.stats.skipped_reason = reason
        log.info("skipped: %s", reason)
        self.say(f"Skipped: {reason}")
        return ExitCode.OK

    def finish(self, code: int, error: str | None) -> int:
        """Fill in the outcome, write latest_stats.json (past the lock only), log one line.

        Every problem here is a warning: the exit code is already decided.
        """
        crash_point("run.finish")
        stats = self.stats
        stats.exit_code = int(code)
        stats.error = error
        if code != ExitCode.OK:
            stats.status = "failed"
        elif stats.status == "failed":
            stats.status = "ok"
        stats.requests_made = self.counter.attempts
        stats.retries = self.counter.retries
        stats.bytes_received = self.counter.bytes_received
        stats.finished_at = utc_iso()
        stats.duration_s = round(time.monotonic() - self.started_mono, 3)
        if self.past_lock:
            try:
                ledger = RequestLedger(self.config.out_dir).load()
                stats.requests_this_month = ledger["month_requests"]
                stats.blocked_until = ledger.get("blocked_until")
            except (LocalStateError, OSError) as exc:
                log.warning("latest_stats.json: no ledger figures (%s)", exc)
            try:
                stats.history_total_bytes = HistoryStore(self.config.out_dir).total_bytes()
            except OSError as exc:
                log.warning("latest_stats.json: no history size (%s)", exc)
        stats.warnings = list(self.warnings)
        if self.past_lock and self.writes_stats:
            self._write_stats()
        crash_point("run.after_stats")
        if code == ExitCode.OK and log_failure():  # a failed run has said enough already
            write_stderr(f"{self.config.script}: warning: {log_failure()}")
        if self.logging_ready and not self.lock_refused:
            log.info(
                "run end status=%s exit=%d coins=%s requests=%d retries=%d duration=%.2fs%s",
                stats.status,
                stats.exit_code,
                stats.coin_count,
                stats.requests_made,
                stats.retries,
                stats.duration_s,
                f" error={error}" if error else "",
            )
        return int(code)

    def _write_stats(self) -> None:
        try:
            body = json.dumps(self.stats.to_dict(), indent=2, allow_nan=False) + "\n"
            atomic_write_bytes(self.config.out_dir / STATS_NAME, body.encode())
        except (CollectorError, OSError, ValueError) as exc:
            log.error("cannot write %s: %s", STATS_NAME, exc)
            write_stderr(
                f"{self.config.script}: warning: {STATS_NAME} not updated ({exc}); "
                "the next run rewrites it"
            )


def write_stderr(text: str) -> None:
    """One line on stderr, key redacted; a closed stderr is not a reason to fail."""
    try:
        print(redact(text), file=sys.stderr, flush=True)
    except (OSError, ValueError):
        return


def error_line(ctx: RunContext, exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line a failure prints (the one place that picks them)."""
    if isinstance(exc, OSError):  # local I/O nobody caught: a file we could not read or write
        name = f" {exc.filename}" if exc.filename else ""
        exc = LocalStateError(f"cannot use{name}: {exc.strerror or exc}", hint=WriteError.hint)
    if isinstance(exc, CollectorError):
        code, text = int(exc.exit_code), exc.one_line()
        if not ctx.committed and not ctx.read_only and isinstance(exc, KEEPS_FILES):
            text += "; previous data files were left untouched"
        return code, redact(text)
    return int(ExitCode.SOFTWARE), redact(f"unexpected {type(exc).__name__}: {exc}")


def run_main(
    script: str,
    description: str,
    pipeline: Callable[[RunContext], int],
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    writes_stats: bool = True,
) -> int:
    """Parse, run, and map the outcome to the contract's exit code (the only place that does)."""
    config = parse_config(script, description, argv, environ)  # argparse exits 2 itself
    set_secret(config.api_key)
    ctx = RunContext(config, writes_stats)
    GUARD.install(config.deadline_s)
    error: str | None = None
    try:
        try:
            _open_out_dir(ctx)
            code: int = pipeline(ctx)
        finally:
            GUARD.finishing()  # from here on a signal is only noted: the outcome is decided
    except Exception as exc:  # noqa: BLE001 - the one place that maps failures to exit codes
        code, error = _outcome(ctx, exc)
    if GUARD.noted:
        log.warning("%s received while finishing; the outcome stands", ", ".join(GUARD.noted))
    return ctx.finish(code, error)


def _open_out_dir(ctx: RunContext) -> None:
    """Create the output directory and the log, or for read-only runs just check it exists."""
    config = ctx.config
    if ctx.read_only:
        setup_logging(None, config.script, ctx.run_id, verbose=config.verbose)
        if not config.out_dir.is_dir():
            raise UsageError(f"--out-dir {config.out_dir}: no such directory")
        return
    try:
        ensure_dir(config.out_dir)
    finally:
        out_dir = config.out_dir if config.out_dir.is_dir() else None
        setup_logging(out_dir, config.script, ctx.run_id, verbose=config.verbose)
        ctx.logging_ready = out_dir is not None


def _outcome(ctx: RunContext, exc: BaseException) -> tuple[int, str | None]:
    """Log and print a failure; past the commit point it is only a warning (exit 0)."""
    code, line = error_line(ctx, exc)
    if ctx.committed:
        ctx.warn(f"after the snapshot was committed: {line}")
        if not isinstance(exc, CollectorError):
            log.warning("traceback of the above", exc_info=exc)
        return int(ExitCode.OK), None
    if code == ExitCode.SOFTWARE:
        log.error("unexpected error (a bug): %s", line, exc_info=exc)
        write_stderr(f"{ctx.config.script}: error: {line} (a bug; traceback in collection.log)")
    else:
        if not ctx.lock_refused:  # a refused run leaves exactly one log line (CONTRACT)
            log.error("%s", line)
        write_stderr(f"{ctx.config.script}: error: {line}")
    if ctx.config.verbose:
        write_stderr("".join(traceback.format_exception(exc)))
    return code, line


@contextlib.contextmanager
def run_lock(ctx: RunContext, name: str = RUN_LOCK_NAME) -> Iterator[None]:
    """Exclusive, non-blocking: a second run exits 75 at once and changes no file."""
    lock = FileLock(ctx.config.out_dir / name)
    try:
        lock.acquire(
            blocking=False,
            note=f"pid {os.getpid()} {ctx.config.script} since {ctx.stats.started_at}\n",
        )
    except LockBusy as exc:
        ctx.lock_refused = True
        log.warning("refused, exit 75: %s; nothing done", exc)
        raise
    ctx.past_lock = True
    crash_point("run.after_lock")
    log.info(
        "run start out_dir=%s base_url=%s plan=%s quotes=%s",
        ctx.config.out_dir,
        ctx.config.base_url,
        ctx.config.plan,
        ",".join(ctx.config.quotes),
    )
    try:
        yield
    finally:
        lock.release()


def quarantine(out_dir: Path, last_body: tuple[str, bytes] | None) -> Path | None:
    """Keep (a bounded prefix of) a rejected payload for inspection; the newest few are kept.

    Best effort: the run fails with the payload's error whatever happens here.
    """
    if last_body is None:
        return None
    path_name, body = last_body
    body = body[:REJECTED_MAX_BYTES]
    stamp = utc_iso().replace(":", "").replace("-", "")
    try:
        folder = ensure_subdir(out_dir / REJECTED_DIR)
        target = folder / f"{stamp}-{path_name.strip('/').replace('/', '_') or 'root'}.json"
        check_free_space(folder, len(body))
        atomic_write_bytes(target, body)
        for old in sorted(folder.glob("*.json"))[:-REJECTED_KEEP]:
            old.unlink()
    except (WriteError, LocalStateError, OSError) as exc:
        log.warning("could not keep the rejected payload: %s", exc)
        return None
    log.warning("rejected payload kept in %s", target)
    return target


def prepare_out_dir(
    ctx: RunContext, files: tuple[str, ...] = (), dirs: tuple[str, ...] = ()
) -> None:
    """Before any request: the directory is writable and nothing is in the way of a target.

    Raises:
        OutputDirError: the directory cannot be created (73).
        WriteError, LocalStateError: an existing directory or target cannot be written (74).
    """
    out_dir = ensure_dir(ctx.config.out_dir)
    check_writable(out_dir)
    for name in (*files, STATS_NAME, LEDGER_NAME, LOG_NAME):
        check_file_target(out_dir / name)
    for name in (*dirs, REJECTED_DIR):
        check_dir_target(out_dir / name)


def clean_orphans(directory: Path, owned: tuple[str, ...] | None) -> None:
    """Temp files of a killed run; call while holding the lock that guards `owned` files."""
    if directory.is_dir():
        for orphan in remove_orphan_temps(directory, owned):
            log.info("removed orphan temp file %s", orphan.name)


def api_client(ctx: RunContext, ledger: RequestLedger) -> ApiClient:
    return ApiClient(ctx.config, ledger, ctx.deadline, ctx.counter, on_retry=ctx.progress)


def is_production(ctx: RunContext) -> bool:
    return ctx.config.script == SCRIPT_PRODUCTION


def fetch_and_quarantine(ctx: RunContext, client: ApiClient, fetch: Callable[[], Any]) -> Any:
    """Run a fetch+validate step; a rejected payload is saved under rejected/."""
    try:
        return fetch()
    except BadApiData as exc:
        kept = quarantine(ctx.config.out_dir, client.last_body)
        if kept is not None:
            kept_note = f"payload kept in {REJECTED_DIR}/{kept.name}"
            exc.hint = f"{exc.hint}; {kept_note}" if exc.hint else kept_note
        raise
