"""A run's hooks: a monitoring ping when it begins and ends, and the metrics file after it.

The runner imports this module only when --ping-url, COLLECTOR_PING_URL or --metrics-file
asks for it, and never for a view. The pings follow healthchecks.io's convention: URL/start
once the run lock is taken, URL on success (exit 0, skipped included), URL/<exit code> on a
failure, with the run's one-line outcome as the body. A run refused by the lock pings nothing
(the run holding it will) but writes the metrics file. Nothing here changes the exit code:
a ping that fails or hangs costs at most PING_BUDGET_S and a warning (docs/design.md, "Hooks").
"""

from __future__ import annotations

import logging
import os
import threading
from urllib.parse import urlsplit, urlunsplit

import requests

from .context import RunContext
from .metrics import write_metrics
from .redact import redact
from .settings import Config

log = logging.getLogger(__name__)

PING_CONNECT_TIMEOUT_S = 2.0
PING_READ_TIMEOUT_S = 3.0
# The most one ping may cost, whatever the host does (a slow DNS, a trickling answer): the
# timeouts above sum to it, and the run stops waiting for the ping's thread then.
PING_BUDGET_S = PING_CONNECT_TIMEOUT_S + PING_READ_TIMEOUT_S
PING_BODY_MAX = 10_000  # bytes
PING_HEADERS = {"Content-Type": "text/plain; charset=utf-8", "User-Agent": "mcap-collector"}


class Hooks:
    """What --ping-url and --metrics-file ask of one run."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def started(self, ctx: RunContext) -> None:
        """URL/start, once the run lock is taken; a failure is a warning."""
        url = self.config.ping_url
        if url:
            ctx.best_effort("the start ping", lambda: ping(ctx, url, "start", _started(ctx)))

    def finished(self, ctx: RunContext, code: int) -> None:
        """The metrics file, then the outcome's ping (none for a run refused by the lock).

        Failures are warnings: the exit code is decided.
        """
        path, url = self.config.metrics_file, self.config.ping_url
        if path is not None:
            ctx.best_effort(
                f"writing the metrics file {path}", lambda: write_metrics(ctx, code, path)
            )
        if url and not ctx.lock_refused:
            event = "" if code == 0 else str(code)
            text = outcome_line(ctx, code)
            ctx.best_effort("the outcome's ping", lambda: ping(ctx, url, event, text, code))


def ping(ctx: RunContext, url: str, event: str, text: str, code: int | None = None) -> None:
    """POST `text` to URL/`event` (URL itself for ""); a failure is one warning line."""
    target = ping_target(url, event)
    where = f"ping {'/' + event if event else 'success'} to {_host(url)}"
    problem = send_ping(target, ping_body(text))
    if problem is None:
        log.info("%s: taken", where)
        return
    after = "the run goes on" if code is None else f"the exit code stays {code}"
    ctx.warn(f"{where} {_scrubbed(problem, url)}; {after}")


def ping_target(url: str, event: str) -> str:
    """URL/event, the suffix on the URL's path (a query string stays where it is)."""
    if not event:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + event))


def send_ping(url: str, body: bytes) -> str | None:
    """POST body to url in a thread the run waits for at most PING_BUDGET_S.

    Returns None when the host took it (2xx), else what went wrong.
    """
    outcome: list[str | None] = []
    worker = threading.Thread(
        target=lambda: outcome.append(_post(url, body)), name="ping", daemon=True
    )
    worker.start()
    worker.join(PING_BUDGET_S)
    if not outcome:
        return f"got no answer within {PING_BUDGET_S:g} s: gave up waiting"
    return outcome[0]


def _post(url: str, body: bytes) -> str | None:
    """One attempt on a plain session: not the API client's, so no API key header; no retry,
    no redirect followed, the answer's body never read."""
    try:
        with (
            requests.Session() as session,
            session.post(
                url,
                data=body,
                headers=PING_HEADERS,
                timeout=(PING_CONNECT_TIMEOUT_S, PING_READ_TIMEOUT_S),
                allow_redirects=False,
                stream=True,
            ) as response,
        ):
            status, location = response.status_code, response.headers.get("Location", "")
    except requests.Timeout as exc:
        kind = "connect" if isinstance(exc, requests.ConnectTimeout) else "read"
        limit = PING_CONNECT_TIMEOUT_S if kind == "connect" else PING_READ_TIMEOUT_S
        return f"timed out (the {kind} timeout, {limit:g} s)"
    except requests.RequestException as exc:
        return f"failed ({_reason(exc)})"
    except Exception as exc:  # noqa: BLE001 - the thread reports; the caller warns
        return f"failed (unexpected {type(exc).__name__}: {exc})"
    if 300 <= status < 400:
        return (
            f"answered HTTP {status}, a redirect (to {_host(location) or 'the same host'}) "
            "that is not followed: give the final URL"
        )
    if not 200 <= status < 300:
        return f"answered HTTP {status}"
    return None


def _reason(exc: BaseException) -> str:
    """The innermost system reason (`Connection refused`, a DNS failure), else the kind."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


def _host(url: str) -> str:
    """host[:port] only: the path of a ping URL is its secret (anyone may ping with it)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    if not parts.hostname:
        return ""
    return parts.hostname + (f":{port}" if port else "")


def _scrubbed(text: str, url: str) -> str:
    path = urlsplit(url).path.rstrip("/")
    return text.replace(path, "/…") if path else text


def ping_body(text: str) -> bytes:
    """One line, the key redacted first, then cut to PING_BODY_MAX bytes of whole characters."""
    line = redact(" ".join(text.split()))
    return line.encode("utf-8", "replace")[:PING_BODY_MAX].decode("utf-8", "ignore").encode()


def _started(ctx: RunContext) -> str:
    return f"{ctx.config.script} run {ctx.run_id} started (pid {os.getpid()})"


def outcome_line(ctx: RunContext, code: int) -> str:
    """`<script> run <id>: ok — …`, `skipped: …` or `failed, exit N: <its error line>`."""
    stats = ctx.stats
    if code != 0:
        what = f"failed, exit {code}: {stats.error or 'see collection.log'}"
    elif stats.status == "skipped":
        what = f"skipped: {stats.skipped_reason}"
    elif stats.backfill is not None:
        what = "ok — " + stats.backfill.summary().splitlines()[0]
    elif stats.snapshot_id is not None:
        expected = "" if stats.expected_count is None else f" of {stats.expected_count:,}"
        what = f"ok — snapshot {stats.snapshot_id}, {stats.coin_count:,}{expected} coins"
    else:
        what = "ok"
    what += f"; {stats.requests_made} request(s), {stats.duration_s} s"
    if stats.warnings:
        what += f"; {len(stats.warnings)} warning(s), the first: {stats.warnings[0]}"
    return f"{ctx.config.script} run {ctx.run_id}: {what}"
