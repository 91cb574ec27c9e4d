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
from .config import SCRIPT_PRODUCTION, Config, parse_config
from .errors import (
    BadApiData,
    CollectorError,
    DeadlineExceeded,
    ExitCode,
    Interrupted,
    LockBusy,
)
from .fsio import (
    FileLock,
    atomic_write_bytes,
    check_writable,
    ensure_dir,
    remove_orphan_temps,
)
from .history import HistoryStore
from .ledger import RequestLedger
from .logsetup import log_failure, setup_logging, utc_iso

log = logging.getLogger(__name__)

STATS_NAME = "latest_stats.json"
RUN_LOCK_NAME = ".collector.lock"
REJECTED_DIR = "rejected"
REJECTED_KEEP = 5


# The network code checks the deadline itself; this alarm is the backstop for anything else
# that could stall a run (a slow disk, a stuck name lookup between two checks).
DEADLINE_GRACE_S = 30.0


class SignalGuard:
    """SIGTERM/SIGINT/deadline alarm raise so cleanup runs; deferred inside a commit."""

    def __init__(self) -> None:
        self._depth = 0
        self._pending: CollectorError | None = None
        self._deadline_s = 0.0

    def install(self, deadline_s: float) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGALRM, self._handle)
        self._deadline_s = deadline_s
        signal.setitimer(signal.ITIMER_REAL, deadline_s + DEADLINE_GRACE_S)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
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

    def say(self, text: str = "") -> None:
        """Progress and summary on stdout, unless --quiet."""
        if not self.config.quiet and not self.stdout_broken:
            try:
                print(text, flush=True)
            except OSError:  # a closed pipe or full stdout must not cost the snapshot
                self.stdout_broken = True

    def skip(self, reason: str) -> ExitCode:
        self.stats.status = "skipped"
        self.stats.skipped_reason = reason
        log.info("skipped: %s", reason)
        self.say(f"Skipped: {reason}")
        return ExitCode.OK

    def finish(self, code: int, error: str | None) -> int:
        """Fill in the outcome, write latest_stats.json (past the lock only), log one line."""
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
            with contextlib.suppress(CollectorError, OSError):
                ledger = RequestLedger(self.config.out_dir).load()
                stats.requests_this_month = ledger["month_requests"]
                stats.blocked_until = ledger.get("blocked_until")
            with contextlib.suppress(OSError):
                stats.history_total_bytes = HistoryStore(self.config.out_dir).total_bytes()
        if self.past_lock and self.writes_stats:
            code = self._write_stats(code)
        if code == ExitCode.OK and log_failure():
            print(f"{self.config.script}: warning: {log_failure()}", file=sys.stderr)
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

    def _write_stats(self, code: int) -> int:
        body = json.dumps(self.stats.to_dict(), indent=2, allow_nan=False) + "\n"
        try:
            atomic_write_bytes(self.config.out_dir / STATS_NAME, body.encode())
        except CollectorError as exc:
            log.error("cannot write %s: %s", STATS_NAME, exc)
            if code == ExitCode.OK:
                print(f"{self.config.script}: error: {exc.one_line()}", file=sys.stderr)
                return int(exc.exit_code)
        return code


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "<redacted>") if secret else text


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
    ctx = RunContext(config, writes_stats)
    GUARD.install(config.deadline_s)
    error: str | None = None
    try:
        try:
            ensure_dir(config.out_dir)
        finally:
            out_dir = config.out_dir if config.out_dir.is_dir() else None
            setup_logging(
                out_dir, script, ctx.run_id, verbose=config.verbose, secret=config.api_key
            )
            ctx.logging_ready = out_dir is not None
        code: int = pipeline(ctx)
    except CollectorError as exc:
        code, error = exc.exit_code, _redact(exc.one_line(), config.api_key)
        if not ctx.lock_refused:  # a refused run leaves exactly one log line (CONTRACT)
            log.error("%s", error)
        print(f"{script}: error: {error}", file=sys.stderr)
        if config.verbose:
            traceback.print_exc()
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into exit 70
        code, error = (
            ExitCode.SOFTWARE,
            _redact(f"unexpected {type(exc).__name__}: {exc}", config.api_key),
        )
        log.exception("unexpected error (a bug): %s", error)
        print(f"{script}: error: {error} (a bug; traceback in collection.log)", file=sys.stderr)
        if config.verbose:
            traceback.print_exc()
    try:
        return ctx.finish(code, error)
    except CollectorError as exc:  # a second signal (or the alarm) while finishing
        return int(exc.exit_code)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


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
    """Keep a rejected payload for inspection; only the newest few are kept."""
    if last_body is None:
        return None
    path_name, body = last_body
    folder = ensure_dir(out_dir / REJECTED_DIR)
    stamp = utc_iso().replace(":", "").replace("-", "")
    target = folder / f"{stamp}-{path_name.strip('/').replace('/', '_') or 'root'}.json"
    try:
        atomic_write_bytes(target, body)
        for old in sorted(folder.glob("*.json"))[:-REJECTED_KEEP]:
            old.unlink()
    except (CollectorError, OSError) as exc:
        log.warning("could not keep the rejected payload: %s", exc)
        return None
    log.warning("rejected payload kept in %s", target)
    return target


def prepare_out_dir(ctx: RunContext) -> None:
    """Fail with 73 before any request when the output directory is unusable."""
    check_writable(ensure_dir(ctx.config.out_dir))


def clean_orphans(directory: Path, owned: tuple[str, ...] | None) -> None:
    """Temp files of a killed run; call while holding the lock that guards `owned` files."""
    if directory.is_dir():
        for orphan in remove_orphan_temps(directory, owned):
            log.info("removed orphan temp file %s", orphan.name)


def api_client(ctx: RunContext, ledger: RequestLedger) -> ApiClient:
    return ApiClient(ctx.config, ledger, ctx.deadline, ctx.counter)


def is_production(ctx: RunContext) -> bool:
    return ctx.config.script == SCRIPT_PRODUCTION


def fetch_and_quarantine(ctx: RunContext, client: ApiClient, fetch: Callable[[], Any]) -> Any:
    """Run a fetch+validate step; a rejected payload is saved under rejected/."""
    try:
        return fetch()
    except BadApiData:
        quarantine(ctx.config.out_dir, client.last_body)
        raise
