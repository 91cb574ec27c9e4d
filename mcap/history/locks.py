"""The readers' lock: a flock on `history/` itself, shared while a view reads, exclusive for
the moment a collector switches files (docs/design.md, "The reader of record").

On the directory, so a view creates nothing to take it; closing the descriptor releases it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from .files import HistoryFiles


@contextlib.contextmanager
def switch_lock(files: HistoryFiles, wait_s: float = 0.0) -> Iterator[bool]:
    """The collectors' exclusive side of the readers' lock, for a switch.

    Yields False when readers hold it for longer than `wait_s`: the switch then waits for a
    later run (a long export or query must not be cut off, nor make a cron run wait).
    """
    fd = lock_dir(files.dir, fcntl.LOCK_EX, wait_s)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock


def lock_dir(directory: Path, kind: int, wait_s: float) -> int | None:
    """An open descriptor of `directory` holding an flock, or None after `wait_s`."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    end = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= end:
                os.close(fd)
                return None
            time.sleep(0.02)
