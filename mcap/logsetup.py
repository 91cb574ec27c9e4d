"""Logging: one shared collection.log, safe across processes, with bounded size."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import TextIO

from . import clock
from .errors import Interrupted
from .fsio import FILE_MODE, write_all
from .redact import redact

LOG_NAME = "collection.log"
LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 5


class UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        ms = int(record.msecs)
        # The run's clock, as every file has it (a test's shifted one too).
        created = record.created + clock.offset()
        return time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(created)) + f".{ms:03d}Z"


class RedactingFormatter(UtcFormatter):
    """The whole formatted line, traceback included, goes through the one redaction."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class SharedLogHandler(logging.Handler):
    """Append each line with one write under an flock, reopening the file every time.

    Several scripts share collection.log; a shared RotatingFileHandler loses lines
    (docs/design.md, "Locks"). Holding a lock file around write-and-rotate keeps every line, and
    reopening per record also cooperates with an external logrotate (`create` mode).
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.lock_path = path.with_name(f".{path.name}.lock")
        self.failure: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record).replace("\n", " | ") + "\n").encode("utf-8", "replace")
            lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                self._rotate_if_large()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
                try:
                    write_all(fd, line)
                finally:
                    os.close(fd)
            finally:
                os.close(lock_fd)
        except Interrupted:
            raise  # a signal, not a logging problem
        except Exception as exc:  # noqa: BLE001 - logging must never kill a run
            # The runner reports the first failure once, on stderr.
            reason = getattr(exc, "strerror", None) or str(exc)
            self.failure = self.failure or f"cannot write {self.path.name}: {reason}"

    def _rotate_if_large(self) -> None:
        try:
            if self.path.stat().st_size < LOG_MAX_BYTES:
                return
        except FileNotFoundError:
            return
        for index in range(LOG_BACKUPS - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))


def log_failure() -> str | None:
    """The first error the shared log file hit in this process, if any."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, SharedLogHandler) and handler.failure:
            return handler.failure
    return None


def setup_logging(
    out_dir: Path | None, script: str, run_id: str, stderr: TextIO, *, verbose: bool
) -> logging.Logger:
    """Configure the root logger once: the shared file always, stderr only with --verbose."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    fmt = RedactingFormatter(f"%(asctime)s %(levelname)s {script} run={run_id} %(message)s")
    if out_dir is not None:
        file_handler = SharedLogHandler(out_dir / LOG_NAME)
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
    if verbose:
        err = logging.StreamHandler(stderr)
        err.setFormatter(fmt)
        root.addHandler(err)
    if not root.handlers:
        root.addHandler(logging.NullHandler())  # no log file yet: never Python's stderr fallback
    for noisy in ("urllib3", "requests"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return root
