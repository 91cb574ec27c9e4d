"""One exception hierarchy, named by what went wrong, and the one table that gives exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every code any script returns (README "Exit codes"; 1 is `--status` only)."""

    OK = 0
    UNHEALTHY = 1
    USAGE = 2
    DATA_ERROR = 65
    UNAVAILABLE = 69
    SOFTWARE = 70
    CANT_CREATE = 73
    IO_ERROR = 74
    TEMP_FAIL = 75
    CONFIG = 78
    SIGINT = 130
    SIGTERM = 143


class CollectorError(Exception):
    """Base of every error raised on purpose; anything else is a bug (70).

    `hint` says what to do; notes added on the way (`add_note`) follow it.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = default_hint(type(self)) if hint is None else hint

    def one_line(self) -> str:
        advice = "; ".join(part for part in (self.hint, *getattr(self, "__notes__", ())) if part)
        text = f"{self} — {advice}" if advice else str(self)
        return " ".join(text.split())


class UsageError(CollectorError):
    """The command line or the environment asks for something impossible."""


class ApiDataError(CollectorError):
    """The API answered, but not with data we can use.

    Carries the refused body (or its first megabytes) when there was one, as requests'
    exceptions carry the response.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        endpoint: str | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.endpoint = endpoint
        self.body = body


class ShrunkSnapshot(ApiDataError):
    """A payload with fewer than half the rows of the previous good one."""


class BodyTooLarge(ApiDataError):
    """A body over the download or the decoded size limit."""


class ApiUnavailable(CollectorError):
    """The API stayed unreachable or kept failing after the retries allowed."""


class DeadlineExceeded(ApiUnavailable):
    """The run's whole-run deadline passed."""


class AuthOrPlanError(CollectorError):
    """401/403, or a 402: the key, the plan or the monthly quota."""


class PlanWindowRefused(AuthOrPlanError):
    """The historical endpoint refused a time its plan does not reach ("… is not allowed in
    this plan"): not a quota block; the window is narrowed instead."""

    def __init__(self, message: str, refusal: object) -> None:
        super().__init__(message, hint="ask for a shorter range, or a plan that reaches further")
        self.refusal = refusal


class QuotaBlocked(AuthOrPlanError):
    """The ledger says "blocked until" after a quota 402."""


class OutputDirError(CollectorError):
    """The output directory (or one of its parents) cannot be created."""


class LocalStateError(CollectorError):
    """A directory, file or record in the output directory cannot be written or read back."""


class WriteError(LocalStateError):
    """The disk refused a write: full, read-only, permissions."""


class HistoryDamaged(LocalStateError):
    """The history no longer matches its commit record: changed outside the collector."""


class ArchiveDamaged(HistoryDamaged):
    """A listed archive is missing or changed, or disagrees with snapshots.jsonl: no view
    answers over it."""


class HistoryCheckFailed(CollectorError):
    """`--check-history` found a problem in the stored history."""


class Busy(CollectorError):
    """Temporary refusal by us: the lock is held or the budget would be exceeded."""


class LockBusy(Busy):
    """Another run holds the output directory's lock."""


class BudgetExceeded(Busy):
    """The monthly request budget cannot cover this run's worst case."""


class BackfillPaused(Busy):
    """A backfill stopped by its budget, --max-calls or the deadline, its progress kept: the
    next run continues where it stopped."""


class Interrupted(CollectorError):
    """SIGINT or SIGTERM; raised from the signal handler so cleanup code runs."""


class StoppedBySigint(Interrupted):
    def __init__(self) -> None:
        super().__init__("stopped by SIGINT")


class StoppedBySigterm(Interrupted):
    def __init__(self) -> None:
        super().__init__("stopped by SIGTERM")


# What to do, by what went wrong (a raise site may give a more precise hint).
HINTS: dict[type[CollectorError], str] = {
    UsageError: "see --help",
    ShrunkSnapshot: "re-run with --accept-shrink if the drop is real",
    BodyTooLarge: "raise --max-download-mb / --max-body-mb if the API really sends that much",
    ApiUnavailable: "the API kept failing; the next scheduled run will try again",
    DeadlineExceeded: "the run hit its deadline; the next scheduled run will try again",
    AuthOrPlanError: "check COINPAPRIKA_API_KEY and your plan",
    QuotaBlocked: "no request was made; wait for the reset or pass --force",
    OutputDirError: "check the --out-dir path and the permissions of its parent",
    WriteError: "check free space and permissions",
    HistoryDamaged: "run `04_production_collector.py --check-history`; see docs/operations.md",
    ArchiveDamaged: "run `04_production_collector.py --check-history`; restore the named file "
    "from a backup (docs/operations.md, 'Repairing history')",
    HistoryCheckFailed: "see docs/operations.md, 'Repairing history'",
    LockBusy: "another run is still active; this run changed nothing",
    BudgetExceeded: "no request was made; raise --monthly-budget or wait for the reset",
    BackfillPaused: "run it again to continue where it stopped",
}


def default_hint(cls: type[CollectorError]) -> str:
    """The hint of the nearest class in HINTS, or none."""
    return next((HINTS[c] for c in cls.__mro__ if c in HINTS), "")


EXIT_CODES: dict[type[CollectorError], ExitCode] = {
    UsageError: ExitCode.USAGE,
    ApiDataError: ExitCode.DATA_ERROR,
    HistoryCheckFailed: ExitCode.DATA_ERROR,
    ApiUnavailable: ExitCode.UNAVAILABLE,
    OutputDirError: ExitCode.CANT_CREATE,
    LocalStateError: ExitCode.IO_ERROR,
    Busy: ExitCode.TEMP_FAIL,
    AuthOrPlanError: ExitCode.CONFIG,
    StoppedBySigint: ExitCode.SIGINT,
    StoppedBySigterm: ExitCode.SIGTERM,
}


def exit_code_for(exc: BaseException) -> ExitCode:
    """The contract's exit code for a failure: the nearest class in the table, else 70."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return ExitCode.SOFTWARE


def as_collector_error(exc: BaseException) -> BaseException:
    """Local I/O nobody caught is a local-state failure (74) naming the file, not a bug."""
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        where = f" {exc.filename}" if exc.filename else ""
        return WriteError(f"cannot use{where}: {exc.strerror or exc}")
    return exc
