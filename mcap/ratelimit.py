"""A token bucket shared by a run's request threads: at most `rate` requests a second, with
no burst, so the API's per-IP limit (about 10 a second) is never reached by our pace alone.

At the limit itself, requests that leave evenly spaced still arrive bunched (a new
connection, a busy thread), and the API answers 429. A 429 slows the bucket by a half (to
one request a second at the slowest; the 429s of one crowded second, which several threads
see at once, count as one) and each answered request speeds it up by 3 % again,
back to `rate` at most: additive-increase/multiplicative-decrease, as TCP does, so a run at
`--rate 10` settles just under what the API accepts instead of spending its retries."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

SLOWEST_INTERVAL_S = 1.0  # a 429 never slows the pace below one request a second
SLOW_DOWN = 1.5  # the interval's factor after a 429
SPEED_UP = 0.97  # the interval's factor after an answered request
CROWDED_S = 1.0  # 429s this close to the last slow-down are the same crowded second


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
        self.interval = self.fastest = 1.0 / rate
        self.slowest = max(self.fastest, SLOWEST_INTERVAL_S)
        self.slowdowns = 0  # 429s that slowed the bucket, for the run's figures
        self._slowed_at: float | None = None
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

    def slow_down(self) -> float:
        """After a 429: a longer interval (once per crowded second), and the next start one
        interval away; the rate now."""
        with self._lock:
            now = self._clock()
            if self._slowed_at is None or now - self._slowed_at >= CROWDED_S:
                self.interval = min(self.interval * SLOW_DOWN, self.slowest)
                self._slowed_at = now
                self.slowdowns += 1
            self._next = max(self._next, now + self.interval)
            return 1.0 / self.interval

    @property
    def at_slowest(self) -> bool:
        return self.interval >= self.slowest

    def speed_up(self) -> None:
        """After an answered request: a little closer to the configured rate."""
        with self._lock:
            self.interval = max(self.fastest, self.interval * SPEED_UP)
