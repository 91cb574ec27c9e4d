"""The CoinPaprika client: one session, timeouts, a deadline, size limits, one retry layer.

Only this module turns HTTP outcomes into exceptions; what comes back is strictly parsed JSON.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
from tenacity import RetryCallState

from .body import BodyReader, error_text, mb_text
from .errors import (
    ApiDataError,
    ApiUnavailable,
    AuthOrPlanError,
    BodyTooLarge,
    DeadlineExceeded,
    PlanWindowRefused,
    UsageError,
)
from .jsonio import loads_strict
from .ledger import RequestLedger
from .plans import parse_refusal
from .redact import redact
from .retry import RetryPolicy, TransientError, build_retrying, parse_retry_after
from .settings import Config
from .signals import GUARD

log = logging.getLogger(__name__)

USER_AGENT = "mcap-collector/0.1 (python-requests)"
ERROR_BODY_LIMIT = 64 * 1024
BODY_CHUNK = 256 * 1024
REJECTED_PREFIX_BYTES = 8 * 1024 * 1024
# A 402 on these endpoints means "monthly quota used up" (docs/design.md, "API traps").
QUOTA_ENDPOINTS = ("/tickers", "/global", "/coins")
HISTORICAL = re.compile(r"/tickers/[^/]+/historical\Z")


class Deadline:
    """A monotonic wall-clock limit for the whole run."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self, doing: str) -> None:
        if self.remaining() <= 0:
            raise DeadlineExceeded(f"run deadline of {self.seconds:g}s passed while {doing}")


@dataclass(frozen=True)
class ApiResponse:
    """A 200 answer: its path, its body as received (decompressed) and the parsed JSON."""

    path: str
    body: bytes = field(repr=False)
    data: Any = field(repr=False)


@dataclass
class RequestCounter:
    """Every HTTP attempt of this run (retries included)."""

    attempts: int = 0
    retries: int = 0
    bytes_received: int = 0


def _looks_truncated(exc: json.JSONDecodeError) -> bool:
    """The parser ran out of input (a cut-off body), rather than meeting a wrong byte."""
    return exc.msg.startswith("Unterminated string") or exc.pos >= len(exc.doc.rstrip()) - 1


class _NoRedirectSession(requests.Session):
    """A Session that never looks at Location: a 3xx is judged by the client like any status.

    With `allow_redirects=False` requests still parses Location (a malformed one raises)
    and reads the redirect's whole body; answering "no target" stops both.
    """

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


class ApiClient:
    """GETs JSON from the API; only this class turns HTTP outcomes into exceptions."""

    def __init__(
        self,
        config: Config,
        ledger: RequestLedger | None,
        deadline: Deadline,
        counter: RequestCounter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[str], None] | None = None,
        pace: Callable[[], None] | None = None,
        keep: int = 0,
        on_throttled: Callable[[], None] | None = None,
    ) -> None:
        """`pace` replaces the client's own gap between attempts (a rate shared by threads),
        `on_throttled` hears of each 429 (to slow that rate);
        `keep` calls of the monthly budget are left to others (see RequestLedger)."""
        self.config = config
        self.ledger = ledger
        self.deadline = deadline
        self.counter = counter or RequestCounter()
        self._sleep = sleep
        self._on_retry = on_retry
        self._shared_pace = pace
        self._on_throttled = on_throttled
        self.keep = keep
        self.policy = RetryPolicy(attempts=config.max_attempts)
        self._last_attempt = 0.0
        self.session = _NoRedirectSession()
        self.session.headers.update(
            {
                "Accept": "application/json",
                "Accept-Encoding": "gzip, deflate",
                "User-Agent": USER_AGENT,
            }
        )
        if config.api_key:
            self.session.headers["Authorization"] = config.api_key  # bare key, never "Bearer"

    def close(self) -> None:
        self.session.close()

    def get(self, path: str, params: dict[str, str] | None = None) -> ApiResponse:
        """GET base_url+path: the body and its strictly parsed JSON.

        Raises:
            ApiUnavailable: retries exhausted (69); DeadlineExceeded when the run's time is up.
            ApiDataError: 400/404 or a body that is not usable JSON (65); carries the body.
            AuthOrPlanError: 401/402/403 (78).
            BudgetExceeded: the ledger refused the next attempt (75).
        """
        retrying = build_retrying(
            self.policy, self.deadline.remaining, self._before_sleep, self._sleep
        )
        try:
            return retrying(self._attempt, path, params or {})
        except TransientError as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise ApiUnavailable(f"GET {path} failed after {attempts} attempt(s): {exc}") from exc

    def _before_sleep(self, state: RetryCallState) -> None:
        self.counter.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        wait = state.upcoming_sleep or 0.0
        text = (
            f"{exc}: attempt {state.attempt_number} of {self.config.max_attempts} failed; "
            f"retrying in {wait:.1f}s"
        )
        log.warning("%s", text)
        if self._on_retry is not None:
            self._on_retry(text)

    def _pace(self) -> None:
        if self._shared_pace is not None:
            self._shared_pace()
            return
        gap = self.config.min_request_gap_s - (time.monotonic() - self._last_attempt)
        if gap > 0:
            self._sleep(gap)
        self._last_attempt = time.monotonic()

    def _attempt(self, path: str, params: dict[str, str]) -> Any:
        GUARD.checkpoint()
        self._pace()
        self.deadline.check(f"about to GET {path}")
        if self.ledger is not None:
            self.ledger.record_attempt(self.config.script, self.config.monthly_budget, self.keep)
        self.counter.attempts += 1
        remaining = self.deadline.remaining()
        timeout = (
            min(self.config.connect_timeout_s, remaining),
            min(self.config.read_timeout_s, remaining),
        )
        url = self.config.base_url + path
        log.debug("GET %s %s timeout=%s", path, params, timeout)
        try:
            # Redirects are never followed: CoinPaprika does not redirect API calls, and every
            # hop requests' default would follow is a request the ledger could not count.
            response = self.session.get(
                url, params=params, timeout=timeout, stream=True, allow_redirects=False
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            self.deadline.check(f"waiting for {path}")
            raise TransientError(f"{type(exc).__name__} on GET {path}") from exc
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema) as exc:
            raise UsageError(f"invalid base URL {self.config.base_url!r}: {exc}") from exc
        except requests.RequestException as exc:
            raise ApiDataError(f"GET {path} failed: {type(exc).__name__}: {exc}") from exc
        with response:
            if response.status_code != 200:
                self._raise_for_status(path, response)
            reader = self._read_body(path, response)
            body = reader.body()
        return ApiResponse(path, body, self._decode(path, response, body))

    def _read_body(
        self, path: str, response: requests.Response, limit: int | None = None
    ) -> BodyReader:
        """Read the body piecewise within its size limits, checking the deadline as it goes.

        `read1` returns whatever one socket read brings, so a server that trickles bytes
        cannot hold the run past its deadline (docs/design.md, "Retry policy": a read timeout alone
        does not bound the transfer), and the size limits hold whether the server sends a
        Content-Length, chunks, or a compressed bomb.
        """
        config = self.config
        announced = response.headers.get("Content-Length", "")
        if limit is None and announced.isdigit() and int(announced) > config.max_download_bytes:
            raise BodyTooLarge(
                f"{path}: the API announced {mb_text(int(announced))}, more than the download "
                f"limit of {mb_text(config.max_download_bytes)} (--max-download-mb)"
            )
        reader = BodyReader(
            path,
            response.headers.get("Content-Encoding", ""),
            config.max_download_bytes,
            config.max_body_bytes,
        )
        try:
            while True:
                chunk = response.raw.read1(BODY_CHUNK, decode_content=False)
                if not chunk:
                    break
                try:
                    reader.feed(chunk)
                except BodyTooLarge as exc:
                    exc.endpoint, exc.body = path, reader.prefix(REJECTED_PREFIX_BYTES)
                    raise
                self.deadline.check(f"reading {path} ({reader.received} bytes so far)")
                if limit is not None and reader.received >= limit:
                    break
        except (urllib3.exceptions.HTTPError, OSError, requests.RequestException) as exc:
            self.deadline.check(f"reading {path}")
            raise TransientError(
                f"incomplete body for {path} after {reader.received} bytes ({type(exc).__name__})"
            ) from exc
        finally:
            self.counter.bytes_received += reader.received
        return reader

    def _raise_for_status(self, path: str, response: requests.Response) -> None:
        status = response.status_code
        try:
            body = self._read_body(path, response, limit=ERROR_BODY_LIMIT).body(complete=False)
        except (TransientError, ApiDataError):
            body = b""
        message = redact(f"HTTP {status} from {path}: {error_text(body)}")
        if 300 <= status <= 399:
            location = redact(response.headers.get("Location", "(no Location header)"))
            raise ApiDataError(
                f"HTTP {status} from {path}: redirected to {location[:200]!r}",
                hint="CoinPaprika does not redirect API calls; check --base-url "
                "(the redirect was not followed)",
            )
        if status == 429 and self._on_throttled is not None:
            self._on_throttled()
        if self.policy.retries_status(status):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise TransientError(message, retry_after, status)
        refusal = parse_refusal(error_text(body)) if status in (400, 402) else None
        if refusal is not None:  # the plan's window, not the quota: never a block
            raise PlanWindowRefused(message, refusal)
        if status == 402:
            if (path in QUOTA_ENDPOINTS or HISTORICAL.match(path)) and self.ledger is not None:
                until = self.ledger.mark_blocked(message)
                raise AuthOrPlanError(
                    f"{message} (monthly quota used up or plan too small)",
                    hint=f"runs are blocked until {until}; upgrade the plan or pass --force later",
                )
            raise AuthOrPlanError(f"{message} (this endpoint needs a paid plan)")
        if status in (401, 403):
            raise AuthOrPlanError(
                f"{message} (API key rejected or request blocked)",
                hint="check COINPAPRIKA_API_KEY (sent bare, no 'Bearer') and the base URL",
            )
        raise ApiDataError(message, hint="the request was refused; check --quotes and --base-url")

    def _decode(self, path: str, response: requests.Response, body: bytes) -> Any:
        # Judged by the body, not the label: a JSON body is used whatever its Content-Type,
        # and an HTML page (Cloudflare, a captive portal) is refused even when labelled JSON.
        def refused(message: str) -> ApiDataError:
            return ApiDataError(message, endpoint=path, body=body)

        if body.lstrip()[:1] == b"<":
            content_type = response.headers.get("Content-Type", "?")
            raise refused(
                f"{path} answered HTML ({content_type}) instead of JSON: {error_text(body)}"
            )
        if not body.strip():
            raise refused(f"{path} answered 200 with an empty body")
        try:
            return loads_strict(body)
        except json.JSONDecodeError as exc:
            if _looks_truncated(exc):
                raise TransientError(f"{path} body cut off after {len(body)} bytes") from exc
            raise refused(f"{path} is not valid JSON: {exc.msg} at byte {exc.pos}") from exc
        except (ValueError, RecursionError) as exc:
            raise refused(f"{path} rejected by strict JSON parsing: {exc}") from exc
