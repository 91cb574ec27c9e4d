"""SIGTERM, SIGINT and the deadline alarm: turned into exceptions, held back during a commit."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

from .errors import (
    CollectorError,
    DeadlineExceeded,
    Interrupted,
    StoppedBySigint,
    StoppedBySigterm,
)

# The network code checks the deadline itself; this alarm is the backstop for anything else
# that could stall a run (a slow disk, a stuck name lookup between two checks).
DEADLINE_GRACE_S = 30.0


class SignalGuard:
    """Signals raise so cleanup runs; inside `critical()` they wait for the block to end.

    Once the run's outcome is decided (`finishing`), signals are only noted: the exit code
    and latest_stats.json then always tell the same story.
    """

    def __init__(self) -> None:
        self._depth = 0
        self._pending: CollectorError | None = None
        self._received: CollectorError | None = None
        self._deadline_s = 0.0
        self._finishing = False
        self.noted: list[str] = []

    def install(self, deadline_s: float) -> None:
        self._depth, self._pending, self._finishing, self.noted = 0, None, False, []
        self._received = None
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
            signal.signal(signum, self._handle)
        # A raise that lands where Python cannot propagate it (a weakref callback, a
        # __del__) is remembered in `_received` and acted on at the next checkpoint; it
        # must not print a traceback on the way.
        sys.unraisablehook = _quiet_about_signals
        self._deadline_s = deadline_s
        signal.setitimer(signal.ITIMER_REAL, deadline_s + DEADLINE_GRACE_S)

    def checkpoint(self) -> None:
        """Act on a signal whose exception was swallowed on its way (outside a commit)."""
        if self._received is not None and not self._depth and not self._finishing:
            error, self._received = self._received, None
            raise error

    def finishing(self) -> None:
        self._finishing = True
        signal.setitimer(signal.ITIMER_REAL, 0)

    def finished(self) -> None:
        """The outcome is final: ignore signals from here to the process exit.

        Python puts the default action back on its own handlers while it shuts down, so a
        signal in the last milliseconds would otherwise kill the process after
        latest_stats.json already tells a different story (ignored handlers are kept).
        """
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._finishing:
            self.noted.append(signal.Signals(signum).name)
            return
        error: CollectorError
        if signum == signal.SIGTERM:
            error = StoppedBySigterm()
        elif signum == signal.SIGALRM:
            error = DeadlineExceeded(
                f"run deadline of {self._deadline_s:g}s (+{DEADLINE_GRACE_S:g}s grace) passed"
            )
        else:
            error = StoppedBySigint()
        self._received = error
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


def _quiet_about_signals(unraisable: Any) -> None:
    if isinstance(unraisable.exc_value, Interrupted | DeadlineExceeded):
        return  # SignalGuard.checkpoint raises it again where it can propagate
    sys.__unraisablehook__(unraisable)


GUARD = SignalGuard()
