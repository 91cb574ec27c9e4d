"""Fixtures: a fake CoinPaprika server on 127.0.0.1 and a runner for the real scripts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcap.clock import utc_iso
from tests.fake_api import FakeCoinPaprika

ROOT = Path(__file__).resolve().parent.parent
N_TICKERS = 12_000
N_COINS = 60_000
# Fast but real retries in tests: two retries keep a 5xx storm under ~10 s.
FAST = ["--retries", "2", "--timeout", "10"]
API_KEY = "sk-test-9f8e7d6c5b4a-SECRET"
PAID_ENV = {"COINPAPRIKA_API_KEY": API_KEY}


def pytest_collection_modifyitems(items: list) -> None:
    """Long tests first, so that with several workers none of them starts last."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


class VirtualClock:
    """The scripts' clock for one test: `tick()` moves it on instead of sleeping.

    Snapshot ids are to the second, so back-to-back runs need distinct seconds; every run
    of a test sees this offset through COLLECTOR_CLOCK_OFFSET_S (never going backwards).
    """

    offset = 0.0

    def tick(self, seconds: float = 61) -> None:
        self.offset += seconds


CLOCK = VirtualClock()


@pytest.fixture(autouse=True)
def _fresh_clock() -> Iterator[None]:
    # Reset after the test too: a module fixture of the next test may run before this one.
    CLOCK.offset = 0.0
    yield
    CLOCK.offset = 0.0


def next_second() -> None:
    """The next run is at a later second (and a minute later, past any --min-interval 1)."""
    CLOCK.tick()


def script_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without COINPAPRIKA_* and a developer's COLLECTOR_PING_URL (a test run must
    not ping a real check), plus the test clock and `env`."""
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COINPAPRIKA_") and k != "COLLECTOR_PING_URL"
    }
    if CLOCK.offset:
        full["COLLECTOR_CLOCK_OFFSET_S"] = str(CLOCK.offset)
    full.update(env or {})
    return full


S01, S02, S03, S04, S05 = (
    "01_fetch_all_coins_list.py",
    "02_fetch_all_market_caps.py",
    "03_optimized_free_tier_collector.py",
    "04_production_collector.py",
    "05_backfill_history.py",
)
COLLECTORS = (S02, S03, S04)


REPAIRS = (S03, S04)  # gap repair after a commit: off unless a test asks (repair=True)


def script_args(
    script: str, api: FakeCoinPaprika | None, out: Path | None, args: tuple, repair: bool = False
) -> list:
    """The fake's URL and quick retries, the out-dir, (collectors) no --min-interval wait, and
    (03/04) no gap repair unless asked: a test counts the calls it expects."""
    argv: list[str] = []
    if api is not None:
        argv += ["--base-url", api.url, *FAST]
        if script in COLLECTORS:
            argv += ["--min-interval", "0"]
        if script in REPAIRS and not repair:
            argv += ["--no-repair"]
    if out is not None:
        argv += ["--out-dir", str(out)]
    return [*argv, *args]


def run(
    script: str,
    api: FakeCoinPaprika | None = None,
    out: Path | None = None,
    *args: str,
    key: bool = False,
    env: dict[str, str] | None = None,
    process: bool = False,
    cwd: Path | None = None,
    timeout: float = 120,
    repair: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run one of the numbered scripts as a user would: (code, stdout, stderr).

    `api` adds its URL and quick retries, `out` the --out-dir, `key` the test API key (the
    paid plan). In this process unless `process` — or a crash point — asks for a real one
    (kills, signals, memory, cron-like environments).
    """
    argv = script_args(script, api, out, args, repair)
    full_env = {**(PAID_ENV if key else {}), **(env or {})}
    if process or "COLLECTOR_CRASH_AT" in full_env:
        return subprocess.run(
            [sys.executable, str(ROOT / script), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=script_env(full_env),
            cwd=cwd or ROOT,
        )
    return _run_inside(script, argv, script_env(full_env), cwd or ROOT)


def spawn(
    script: str,
    api: FakeCoinPaprika | None,
    out: Path | None,
    *args: str,
    key: bool = False,
    env: dict[str, str] | None = None,
    repair: bool = False,
) -> subprocess.Popen:
    """The same run as its own process, left running (to be killed or signalled)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / script), *script_args(script, api, out, args, repair)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=script_env({**(PAID_ENV if key else {}), **(env or {})}),
    )


def stats_of(out: Path) -> dict:
    """latest_stats.json of an output directory."""
    return json.loads((out / "latest_stats.json").read_bytes())


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line a failure prints (and no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def _run_inside(
    script: str, argv: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """main(argv, env) with the output in buffers (the scripts take an Environment)."""
    import io
    import logging
    import signal

    from mcap.context import Environment
    from mcap.redact import set_secret

    module = load_script(script)
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_signals = {
        s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)
    }
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    streams = Environment(io.BytesIO(), io.StringIO())
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        code = module.main(argv, streams)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in saved_signals.items():
            signal.signal(signum, handler)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        set_secret(None)
    out = streams.stdout.getvalue().decode("utf-8", "surrogateescape")  # type: ignore[attr-defined]
    return subprocess.CompletedProcess([script, *argv], code, out, streams.stderr.getvalue())  # type: ignore[attr-defined]


_SCRIPTS: dict[str, object] = {}


def load_script(script: str):
    """A numbered script as a module (its name starts with a digit, so no plain import)."""
    if script not in _SCRIPTS:
        import importlib.util
        import signal

        saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        spec = importlib.util.spec_from_file_location(
            f"script_{script.split('_')[0]}", ROOT / script
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for signum, handler in saved.items():  # common.py's start-up handlers
            signal.signal(signum, handler)
        _SCRIPTS[script] = module
    return _SCRIPTS[script]


def tree_digest(directory: Path) -> dict[str, str]:
    """SHA-256 of every file below directory (lock files excluded: flock never edits them)."""
    digests = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.name.endswith(".lock"):
            digests[str(path.relative_to(directory))] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return digests


def query(out: Path, sql: str, quotes: tuple[str, ...] = ("USD",)) -> tuple[list, list]:
    """(column names, rows) of `sql` over the history views, through the reader of record."""
    from mcap.history import open_picture
    from mcap.history.query import run_query

    with open_picture(out) as picture:
        batches = run_query(picture, sql, quotes)
        names = next(batches)
        return names, [row for batch in batches for row in batch]


def export(out: Path, start: str = "2000-01-01", end: str = "2999-12-31") -> bytes:
    """The committed lines of a time range, through the reader of record."""
    from mcap.history import TimeRange, export_lines, open_picture

    with open_picture(out) as picture:
        return b"".join(export_lines(picture, TimeRange.parse(start, end)))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().split(b"\n") if line]


@pytest.fixture(scope="session")
def paid_server() -> Iterator[FakeCoinPaprika]:
    with FakeCoinPaprika(
        n_tickers=N_TICKERS, n_coins=N_COINS, plan="paid", api_key=API_KEY
    ) as server:
        yield server


@pytest.fixture(scope="session")
def free_server() -> Iterator[FakeCoinPaprika]:
    with FakeCoinPaprika(n_tickers=N_TICKERS, n_coins=N_COINS, plan="free") as server:
        yield server


@pytest.fixture(scope="session")
def small_server() -> Iterator[FakeCoinPaprika]:
    with FakeCoinPaprika(n_tickers=400, n_coins=500, plan="free") as server:
        yield server


def _reset(server: FakeCoinPaprika) -> FakeCoinPaprika:
    server.clear_faults()
    server.reset_limits()
    server.time_offset, server.rate_limited = 0.0, 0
    server.tier = "free" if server.plan == "free" else "starter"
    server.window_status = 402
    if len(server.tickers) != len(server._pool):
        server.set_ticker_count(len(server._pool))  # every ticker the fake generated
    server.advance(300)  # every test starts from fresh data, unlike the previous test's
    server.reset_requests()
    return server


@pytest.fixture
def fake_paid(paid_server: FakeCoinPaprika) -> Iterator[FakeCoinPaprika]:
    """The paid plan: 12,000 tickers with circulating_supply, the key required."""
    yield _reset(paid_server)
    paid_server.clear_faults()


@pytest.fixture
def fake_free(free_server: FakeCoinPaprika) -> Iterator[FakeCoinPaprika]:
    """The free plan: at most 2,000 of its 12,000 tickers, no circulating_supply, no key."""
    yield _reset(free_server)
    free_server.clear_faults()


@pytest.fixture
def fake_small(small_server: FakeCoinPaprika) -> Iterator[FakeCoinPaprika]:
    """A 400-coin free plan, for rules that need many runs but not many coins (archiving)."""
    yield _reset(small_server)
    small_server.clear_faults()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "data"


# --- the history across days -----------------------------------------------------------

DAY = 86400


def at(epoch: float) -> None:
    """Put the scripts' clock at `epoch` (forwards only within a test)."""
    CLOCK.offset = epoch - time.time()


def sync_historical(api: FakeCoinPaprika) -> None:
    """The fake's /historical clock at the scripts' clock (plan windows, newest point)."""
    api.time_offset = CLOCK.offset


def next_midnight() -> float:
    """A midnight (UTC) at least a day after the test clock's now: the clock never goes back."""
    return ((time.time() + CLOCK.offset) // DAY + 2) * DAY


def collect(script: str, api, out: Path, *extra: str, env: dict | None = None):
    return run(script, api, out, *extra, env=env)


def plain(out: Path) -> bytes:
    return (out / "history" / "market_cap_history.jsonl").read_bytes()


def two_days(script: str, api, out: Path) -> tuple[bytes, str]:
    """Two snapshots before midnight, two after: returns every line written, and day one."""
    midnight = next_midnight()
    at(midnight - 1200)
    for step in range(4):
        api.advance(300)
        result = collect(script, api, out)
        assert result.returncode == 0, result.stderr
        if step == 1:
            day_one = plain(out)
        CLOCK.tick(600)
    return day_one + plain(out), utc_iso(midnight - 1200)[:10]


@contextlib.contextmanager
def tmpfs(path: Path, size: str, why: str) -> Iterator[Path]:
    """A small tmpfs mounted at path for the block (skips the test without root)."""
    path.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
    if os.geteuid() != 0 or subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip(f"needs root and tmpfs to simulate {why}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)
