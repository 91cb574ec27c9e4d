"""One exception hierarchy, named by what went wrong, and the one table that gives exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every code any script returns (CONTRACT.md "Exit codes"; 1 is `--status` only)."""

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
    """Base of every error raised on purpose; anything else is a bug (70)."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        text = f"{self} — {self.hint}" if self.hint else str(self)
        return " ".join(text.split())


class UsageError(CollectorError):
    """The command line or the environment asks for something impossible."""

    hint = "see --help"


class ApiDataError(CollectorError):
    """The API answered, but not with data we can use."""


class ShrunkSnapshot(ApiDataError):
    hint = "re-run with --accept-shrink if the drop is real"


class BodyTooLarge(ApiDataError):
    hint = "raise --max-download-mb / --max-body-mb if the API really sends that much"


class ApiUnavailable(CollectorError):
    """The API stayed unreachable or kept failing after the retries allowed."""

    hint = "the API kept failing; the next scheduled run will try again"


class DeadlineExceeded(ApiUnavailable):
    hint = "the run hit its deadline; the next scheduled run will try again"


class AuthOrPlanError(CollectorError):
    """401/403, or a 402: the key, the plan or the monthly quota."""

    hint = "check COINPAPRIKA_API_KEY and your plan"


class QuotaBlocked(AuthOrPlanError):
    hint = "no request was made; wait for the reset or pass --force"


class OutputDirError(CollectorError):
    """The output directory (or one of its parents) cannot be created."""

    hint = "check the --out-dir path and the permissions of its parent"


class LocalStateError(CollectorError):
    """A directory, file or record in the output directory cannot be written or read back."""


class WriteError(LocalStateError):
    """The disk refused a write: full, read-only, permissions."""

    hint = "check free space and permissions"


class HistoryDamaged(LocalStateError):
    """The history no longer matches its commit record: changed outside the collector."""

    hint = "run `04_production_collector.py --check-history`; see docs/operations.md"


class HistoryCheckFailed(CollectorError):
    """`--check-history` found a problem in the stored history."""

    hint = "see docs/operations.md, 'Repairing history'"


class Busy(CollectorError):
    """Temporary refusal by us: the lock is held or the budget would be exceeded."""


class LockBusy(Busy):
    hint = "another run is still active; this run changed nothing"


class BudgetExceeded(Busy):
    hint = "no request was made; raise --monthly-budget or wait for the reset"


class Interrupted(CollectorError):
    """SIGINT or SIGTERM; raised from the signal handler so cleanup code runs."""


class StoppedBySigint(Interrupted):
    def __init__(self) -> None:
        super().__init__("stopped by SIGINT")


class StoppedBySigterm(Interrupted):
    def __init__(self) -> None:
        super().__init__("stopped by SIGTERM")


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
