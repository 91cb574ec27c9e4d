"""The retry policy, as data, and the one tenacity `Retrying` built from it.

Only what can succeed on a second try is retried (docs/design.md, "Retry policy"): 408, 429, 5xx
answers, connection errors, timeouts and cut-off transfers. Attempts are bounded, waits are
jittered (full jitter) and capped, a `Retry-After` is honoured up to a cap, and no wait may
cross the run's deadline. Every attempt is counted against the request budget by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from urllib3.exceptions import InvalidHeader
from urllib3.util import Retry


class TransientError(Exception):
    """A failure that can succeed on retry: 408/429/5xx, network errors, cut-off bodies."""

    def __init__(
        self, message: str, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status  # the HTTP status, when the API answered


@dataclass(frozen=True)
class RetryPolicy:
    """Which answers are retried, how often, and how long to wait between attempts."""

    attempts: int
    retry_statuses: frozenset[int] = frozenset({408, 429, *range(500, 600)})
    backoff_min_s: float = 0.5
    backoff_cap_s: float = 30.0
    retry_after_cap_s: float = 120.0

    def retries_status(self, status: int) -> bool:
        return status in self.retry_statuses


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as delay-seconds or an HTTP-date (urllib3's parser); None when unusable."""
    if not value:
        return None
    try:
        return max(0.0, Retry().parse_retry_after(value.strip()))
    except (InvalidHeader, ValueError, OverflowError):
        return None


def build_retrying(
    policy: RetryPolicy,
    seconds_left: Callable[[], float],
    before_sleep: Callable[[RetryCallState], None],
    sleep: Callable[[float], None],
) -> Retrying:
    """A Retrying for one call: stops after the policy's attempts or before the deadline."""
    backoff = wait_random_exponential(
        multiplier=1, min=policy.backoff_min_s, max=policy.backoff_cap_s
    )

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(retry_after, policy.retry_after_cap_s)
        return backoff(state)

    def stop_before_deadline(state: RetryCallState) -> bool:
        return (state.upcoming_sleep or 0.0) + 1.0 >= seconds_left()

    return Retrying(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(policy.attempts) | stop_before_deadline,
        wait=wait,
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
