"""One exception hierarchy; each class carries the exit code the contract gives it."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
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
    """Base of every error the collector raises on purpose; unexpected ones map to 70."""

    exit_code: ExitCode = ExitCode.SOFTWARE
    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        text = str(self)
        if self.hint:
            text = f"{text} — {self.hint}"
        return " ".join(text.split())


class UsageError(CollectorError):
    exit_code = ExitCode.USAGE
    hint = "see --help"


class BadApiData(CollectorError):
    """The API answered, but not with data we can use; previous files are kept."""

    exit_code = ExitCode.DATA_ERROR


class ShrunkSnapshot(BadApiData):
    hint = "re-run with --accept-shrink if the drop is real"


class ApiUnavailable(CollectorError):
    """The API stayed unreachable or kept failing after the retries allowed."""

    exit_code = ExitCode.UNAVAILABLE
    hint = "the API kept failing; the next scheduled run will try again"


class DeadlineExceeded(ApiUnavailable):
    hint = "the run hit its deadline; the next scheduled run will try again"


class OutputDirError(CollectorError):
    """The output directory (or one of its parents) cannot be created."""

    exit_code = ExitCode.CANT_CREATE
    hint = "check the --out-dir path and the permissions of its parent"


class WriteError(CollectorError):
    """An existing directory or file in the output directory cannot be written."""

    exit_code = ExitCode.IO_ERROR
    hint = "check free space and permissions"


class LocalStateError(CollectorError):
    """A file the collector keeps (ledger, history, state) is damaged or in the way."""

    exit_code = ExitCode.IO_ERROR


class Busy(CollectorError):
    """Temporary refusal by us: the lock is held or the budget would be exceeded."""

    exit_code = ExitCode.TEMP_FAIL


class LockBusy(Busy):
    hint = "another run is still active; this run changed nothing"


class BudgetExceeded(Busy):
    hint = "no request was made; raise --monthly-budget or wait for the reset"


class AuthOrPlanError(CollectorError):
    """401/403, or a 402: the key, the plan or the monthly quota."""

    exit_code = ExitCode.CONFIG
    hint = "check COINPAPRIKA_API_KEY and your plan"


class QuotaBlocked(AuthOrPlanError):
    hint = "no request was made; wait for the reset or pass --force"


class Interrupted(CollectorError):
    """SIGINT or SIGTERM; raised from the signal handler so cleanup code runs."""

    def __init__(self, signal_name: str, exit_code: ExitCode) -> None:
        super().__init__(f"stopped by {signal_name}")
        self.exit_code = exit_code
