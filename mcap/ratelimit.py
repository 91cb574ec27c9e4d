"""A token bucket shared by a run's request threads: at most `rate` requests a second, with
no burst, so the API's per-IP limit (about 10 a second) is never reached by our pace alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`take()` returns when the next request may start; thread-safe."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self._next = clock()
        self._lock = threading.Lock()

    def take(self, seconds_left: Callable[[], float] | None = None) -> bool:
        """Wait for a slot; False (without waiting) when it would come after `seconds_left`."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            if seconds_left is not None and start - now >= seconds_left():
                return False
            self._next = start + self.interval
        wait = start - now
        if wait > 0:
            self._sleep(wait)
        return True
