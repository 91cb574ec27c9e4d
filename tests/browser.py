"""Headless Chromium driven over the DevTools protocol on a pipe, for the report's tests.

Why not Playwright: its Python package installs 163 MB (its own Node driver) to drive a
browser we already have, and pins the Chromium revision it expects. The few DevTools commands
the tests need (open a page, evaluate, screenshot, watch requests and console) fit in this
file, and `--remote-debugging-pipe` talks over two inherited descriptors: no port is opened,
not even on 127.0.0.1. Messages are JSON, each ended by a NUL byte.

The browser runs offline: DNS maps every name to nothing, the page's network is emulated as
offline, and every request the page makes is recorded (the tests assert there was none
besides the file itself).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
STEP_TIMEOUT_S = 120.0  # a hang guard, not a performance threshold
FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",  # the discard port: nothing answers there
    "--remote-debugging-pipe",
)


def chromium_path() -> Path | None:
    """Debian's chromium, or another on PATH; None when there is none."""
    if CHROMIUM.exists():
        return CHROMIUM
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else None


def _above_four(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class BrowserError(RuntimeError):
    """The browser died, hung, or answered a command with an error."""


@dataclass
class PageLog:
    """What a page did: its requests, console messages, uncaught exceptions."""

    requests: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)  # (level, text)
    exceptions: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        found = [text for level, text in self.console if level in ("error", "assert")]
        return found + self.exceptions


class Chromium:
    """One headless browser with one page. Use it as a context manager."""

    def __init__(self, executable: Path, width: int = 1280, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="mcap-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Above 4, so that moving them to 3 and 4 in the child overwrites neither.
        to_browser_r, from_browser_w = (_above_four(fd) for fd in (to_browser_r, from_browser_w))
        # The browser reads commands on fd 3 and writes answers on fd 4.
        command = (
            f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} '
            f"{to_browser_r}<&- {from_browser_w}>&-"
        )
        self.process = subprocess.Popen(
            ["bash", "-c", command, str(executable), *FLAGS, f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("MCAP_BROWSER_DEBUG") else subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self.log = PageLog()
        self.session = self._open_page(width, height)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(BrowserError, OSError):  # it is killed below if need be
            self.send("Browser.close", session=False)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                continue
        shutil.rmtree(self.profile, ignore_errors=True)

    # --- the protocol ---------------------------------------------------------------------
    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        """One command; its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self._note(answer)

    def wait_event(self, method: str, timeout: float = STEP_TIMEOUT_S) -> dict:
        """The next event `method` of the page's session."""
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self._events):
                if event.get("method") == method:
                    return self._events.pop(index)
            self._note(self._read(deadline - time.monotonic()))

    def _read(self, timeout: float = STEP_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + max(0.0, timeout)
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, left))
            if not ready:
                raise BrowserError(f"no answer from Chromium within {timeout:.0f} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium exited (code {self.process.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _note(self, event: dict) -> None:
        method, params = event.get("method", ""), event.get("params", {})
        if method == "Network.requestWillBeSent":
            self.log.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.log.console.append((params["type"], text))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.log.exceptions.append(
                details.get("exception", {}).get("description") or details.get("text", "")
            )
        elif method == "Log.entryAdded":
            entry = params["entry"]
            self.log.console.append((entry["level"], f"{entry.get('url', '')} {entry['text']}"))
        if method:
            self._events.append(event)

    def _open_page(self, width: int, height: int) -> str:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
            session=False,
        )  # fmt: skip
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        return self.session

    # --- what the tests use -----------------------------------------------------------------
    def open(self, path: Path) -> float:
        """Load a file; the seconds from navigation to the load event."""
        self._events.clear()
        started = time.monotonic()
        answer = self.send("Page.navigate", {"url": path.resolve().as_uri()})
        if answer.get("errorText"):
            raise BrowserError(f"cannot open {path}: {answer['errorText']}")
        self.wait_event("Page.loadEventFired")
        return time.monotonic() - started

    def evaluate(self, expression: str) -> Any:
        """A JavaScript expression's value (promises awaited), as JSON."""
        answer = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression[:60]}…: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def timed_loads(self, path: Path, ready: str, loads: int) -> tuple[list[float], list[float]]:
        """Load a page `loads` times: the page's own milliseconds from navigation to its load
        event and to the first animation frame at which the JavaScript `ready` holds."""
        wait = (
            "new Promise(done => { const tick = () => (" + ready + ") ? "
            "requestAnimationFrame(() => done([performance.timing.loadEventEnd - "
            "performance.timing.navigationStart, performance.now()])) : "
            "requestAnimationFrame(tick); tick(); })"
        )
        loaded, drawn = [], []
        for _ in range(loads):
            self.open(path)
            load_ms, drawn_ms = self.evaluate(wait)
            loaded.append(load_ms)
            drawn.append(drawn_ms)
        return loaded, drawn

    def requests_beyond(self, path: Path) -> list[str]:
        """What the pages asked for, other than the file `path` itself."""
        return [url for url in self.log.requests if url != path.resolve().as_uri()]

    def wait_for(self, expression: str, timeout: float = STEP_TIMEOUT_S) -> Any:
        """Poll an expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"{expression[:60]}… stayed false for {timeout:.0f} s")
            time.sleep(0.05)

    def screenshot(self, target: Path, full_page: bool = True) -> Path:
        """A PNG of the page (all of it, or the viewport)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                              "scale": 1}  # fmt: skip
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params)["data"]
        target.write_bytes(base64.b64decode(data))
        return target
