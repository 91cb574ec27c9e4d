"""Fixtures: a fake CoinPaprika server on 127.0.0.1 and a runner for the real scripts."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_api import FakeCoinPaprika

ROOT = Path(__file__).resolve().parent.parent
N_TICKERS = 12_000
N_COINS = 60_000
# Fast but real retries in tests: two retries keep a 5xx storm under ~10 s.
FAST = ["--retries", "2", "--timeout", "10"]
API_KEY = "sk-test-9f8e7d6c5b4a-SECRET"
PAID_ENV = {"COINPAPRIKA_API_KEY": API_KEY}


def run_script(
    script: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one of the four scripts as a user would, with a clean API environment."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("COINPAPRIKA_")}
    base_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=base_env,
        cwd=cwd or ROOT,
    )


_SCRIPTS: dict[str, object] = {}


def load_script(script: str):
    """A numbered script as a module (its name starts with a digit, so no plain import)."""
    if script not in _SCRIPTS:
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            f"script_{script.split('_')[0]}", ROOT / script
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _SCRIPTS[script] = module
    return _SCRIPTS[script]


@pytest.fixture
def run_inprocess(monkeypatch, capsys):
    """Call a script's main(argv) in this process (for monkeypatching its internals).

    Returns (exit_code, stdout, stderr); signal handlers, logging and the redaction secret
    are restored afterwards.
    """
    import logging
    import signal

    from mcap.redact import set_secret

    saved_signals = {
        s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)
    }
    saved_handlers = list(logging.getLogger().handlers)
    saved_level = logging.getLogger().level

    def run(script: str, *args: str, env: dict[str, str] | None = None):
        for key in list(os.environ):
            if key.startswith("COINPAPRIKA_"):
                monkeypatch.delenv(key)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        try:
            code = load_script(script).main(list(args))
        except SystemExit as exc:  # argparse
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    signal.setitimer(signal.ITIMER_REAL, 0)
    for signum, handler in saved_signals.items():
        signal.signal(signum, handler)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)
    set_secret(None)


def tree_digest(directory: Path) -> dict[str, str]:
    """SHA-256 of every file below directory (lock files excluded: flock never edits them)."""
    digests = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.name.endswith(".lock"):
            digests[str(path.relative_to(directory))] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return digests


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


def _reset(server: FakeCoinPaprika) -> FakeCoinPaprika:
    server.clear_faults()
    server.set_ticker_count(N_TICKERS)
    server.advance(300)  # every test starts from fresh data, unlike the previous test's
    server.reset_requests()
    return server


@pytest.fixture
def api(paid_server: FakeCoinPaprika) -> Iterator[FakeCoinPaprika]:
    """The paid-plan fake (12,000 tickers), with faults and counters reset."""
    yield _reset(paid_server)
    paid_server.clear_faults()


@pytest.fixture
def free_api(free_server: FakeCoinPaprika) -> Iterator[FakeCoinPaprika]:
    """The free-plan fake: at most 2,000 tickers, no circulating_supply."""
    yield _reset(free_server)
    free_server.clear_faults()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "data"
