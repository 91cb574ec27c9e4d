"""Running a script as a process: arguments, signals, the lock, the exit code, the stats file.

This is the one place that maps an outcome to an exit code (errors.EXIT_CODES) and writes
latest_stats.json. The work itself is the pipeline function the script passes in.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from .cli import parse_config
from .clock import utc_iso
from .context import Environment, RunContext
from .errors import (
    ApiDataError,
    ApiUnavailable,
    AuthOrPlanError,
    CollectorError,
    ExitCode,
    LocalStateError,
    LockBusy,
    UsageError,
    as_collector_error,
    exit_code_for,
)
from .fsio import FileLock, atomic_write_bytes, check_writable, crash_point, ensure_dir
from .history import HistoryStore
from .ledger import RequestLedger
from .logsetup import log_failure, setup_logging
from .redact import redact, set_secret
from .settings import Config, ScriptProfile
from .signals import GUARD
from .views import BY_NAME

if TYPE_CHECKING:
    from .hooks import Hooks

log = logging.getLogger(__name__)

Pipeline = Callable[[RunContext], int]
# Failures before the commit point that leave the snapshot files and the history as they were.
KEEPS_FILES = (ApiDataError, ApiUnavailable, LocalStateError, AuthOrPlanError)


def run_main(
    profile: ScriptProfile,
    pipeline: Pipeline,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    env: Environment | None = None,
) -> int:
    """Parse, run the pipeline (or the view asked for), and map the outcome to an exit code."""
    env = env or Environment.of_process()
    try:
        config = parse_config(profile, argv, environ, env)
    except SystemExit as exc:  # argparse: --help (0) or a bad command line (2), already said
        return exc.code if isinstance(exc.code, int) else int(ExitCode.USAGE)
    set_secret(config.api_key)
    ctx = RunContext(config, env)
    GUARD.install(config.deadline_s)
    work = BY_NAME[config.view].run if config.view is not None else pipeline
    hooks = run_hooks(config)
    error: str | None = None
    try:
        try:
            open_out_dir(ctx)
            if config.view is not None:  # views take no run lock
                code = work(ctx)
            else:
                with run_lock(ctx):
                    if hooks is not None:
                        hooks.started(ctx)
                    code = work(ctx)
            GUARD.checkpoint()  # a signal whose exception was swallowed on its way
        finally:
            GUARD.finishing()  # from here on a signal is only noted: the outcome is decided
    except Exception as exc:  # noqa: BLE001 - the one place that maps failures to exit codes
        code, error = report_failure(ctx, exc)
    code = finish(ctx, code, error)
    if hooks is not None:
        hooks.finished(ctx, code)
    if GUARD.noted:
        log.warning("%s received while finishing; the outcome stands", ", ".join(GUARD.noted))
    GUARD.finished()
    return code


def run_hooks(config: Config) -> Hooks | None:
    """The pings and the metrics file, when asked for and not a view: a run without them
    imports none of their code (docs/design.md, "Hooks")."""
    if config.view is not None or not (config.ping_url or config.metrics_file):
        return None
    from .hooks import Hooks

    return Hooks(config)


def open_out_dir(ctx: RunContext) -> None:
    """Create the output directory and its log; read-only runs only check that it exists.

    Raises:
        OutputDirError: it cannot be created (73).
        WriteError: it exists but cannot be written (74).
        UsageError: --status/--check-history on a directory that does not exist (2).
    """
    config = ctx.config
    if config.read_only:
        setup_logging(None, config.script, ctx.run_id, ctx.env.stderr, verbose=config.verbose)
        if not config.out_dir.is_dir():
            raise UsageError(f"--out-dir {config.out_dir}: no such directory")
        return
    try:
        ensure_dir(config.out_dir)
    finally:
        out_dir = config.out_dir if config.out_dir.is_dir() else None
        setup_logging(out_dir, config.script, ctx.run_id, ctx.env.stderr, verbose=config.verbose)
    check_writable(config.out_dir)


@contextlib.contextmanager
def run_lock(ctx: RunContext) -> Iterator[None]:
    """Exclusive, non-blocking: a second run exits 75 at once and changes no file."""
    lock = FileLock(ctx.config.out_dir / ctx.config.profile.lock_name)
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


def failure_line(ctx: RunContext, exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line a failure prints."""
    exc = as_collector_error(exc)
    code = exit_code_for(exc)
    if not isinstance(exc, CollectorError):
        return code, redact(f"unexpected {type(exc).__name__}: {exc}")
    text = exc.one_line()
    keeps = not ctx.config.profile.backfills and isinstance(exc, KEEPS_FILES)
    if not ctx.committed and not ctx.config.read_only and keeps:
        text += "; previous data files were left untouched"
    return code, redact(text)


def report_failure(ctx: RunContext, exc: BaseException) -> tuple[int, str | None]:
    """Log and print a failure; past the commit point it is only a warning (exit 0)."""
    code, line = failure_line(ctx, exc)
    if ctx.committed:
        ctx.warn(f"after the snapshot was committed: {line}")
        if not isinstance(exc, CollectorError):
            log.warning("traceback of the above", exc_info=exc)
        return int(ExitCode.OK), None
    if code == ExitCode.SOFTWARE:
        log.error("unexpected error (a bug): %s", line, exc_info=exc)
        ctx.error_line(f"{ctx.config.script}: error: {line} (a bug; traceback in collection.log)")
    else:
        if not ctx.lock_refused:  # a refused run leaves exactly one log line (README)
            log.error("%s", line)
        ctx.error_line(f"{ctx.config.script}: error: {line}")
    if ctx.config.verbose:
        ctx.error_line("".join(traceback.format_exception(exc)))
    return code, line


def finish(ctx: RunContext, code: int, error: str | None) -> int:
    """Fill in the outcome, write latest_stats.json (past the lock only), log one line.

    Every problem here is a warning: the exit code is already decided.
    """
    crash_point("run.finish")
    stats = ctx.stats
    stats.exit_code = int(code)
    stats.error = error
    if code != ExitCode.OK:
        stats.status = "failed"
    elif stats.status == "failed":
        stats.status = "ok"
    stats.requests_made = ctx.counter.attempts
    stats.retries = ctx.counter.retries
    stats.bytes_received = ctx.counter.bytes_received
    stats.finished_at = utc_iso()
    stats.duration_s = round(ctx.elapsed(), 3)
    if ctx.past_lock:
        _add_disk_figures(ctx)
    stats.warnings = list(ctx.warnings)
    if ctx.past_lock and ctx.config.profile.writes_stats:
        _write_stats(ctx, tell=code == ExitCode.OK)  # a failed run has said enough already
    crash_point("run.after_stats")
    if code == ExitCode.OK and log_failure():  # a failed run has said enough already
        ctx.error_line(f"{ctx.config.script}: warning: {log_failure()}")
    if not ctx.config.read_only and not ctx.lock_refused:
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


def _add_disk_figures(ctx: RunContext) -> None:
    stats = ctx.stats
    try:
        ledger = RequestLedger(ctx.config.out_dir).load()
        stats.requests_this_month = ledger.month_requests
        stats.blocked_until = ledger.blocked_until
    except (LocalStateError, OSError) as exc:
        log.warning("latest_stats.json: no ledger figures (%s)", exc)
    try:
        stats.history_total_bytes = HistoryStore(ctx.config.out_dir).total_bytes()
    except OSError as exc:
        log.warning("latest_stats.json: no history size (%s)", exc)


def _write_stats(ctx: RunContext, tell: bool) -> None:
    name = ctx.config.profile.stats_name
    try:
        body = json.dumps(ctx.stats.to_dict(), indent=2, allow_nan=False) + "\n"
        atomic_write_bytes(ctx.config.out_dir / name, body.encode())
    except (CollectorError, OSError, ValueError) as exc:
        log.error("cannot write %s: %s", name, exc)
        if tell:
            ctx.error_line(
                f"{ctx.config.script}: warning: {name} not updated ({exc}); "
                "the next run rewrites it"
            )
