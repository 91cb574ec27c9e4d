"""--ping-url and --metrics-file (03, 04, 05): a monitoring host on 127.0.0.1 records every
ping, and the metrics file is read with Prometheus's own text-format parser."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mcap.clock import now, parse_iso
from mcap.history.manifest import TAIL_BYTES
from mcap.hooks import PING_BODY_MAX, ping_body
from mcap.redact import set_secret
from tests.conftest import (
    API_KEY,
    CLOCK,
    ROOT,
    S01,
    S02,
    S03,
    S04,
    S05,
    next_second,
    run,
    script_args,
    script_env,
    stats_of,
    sync_historical,
    tree_digest,
    two_days,
)


@dataclass(frozen=True)
class Ping:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A monitoring host in a thread: records each request, then answers as its mode says —
    ok (200), status (500), redirect (302 to `location`), hang (never), trickle (a byte of
    the status line every 0.2 s, for ever)."""

    def __init__(self, mode: str = "ok", location: str = "") -> None:
        self.mode, self.location = mode, location
        self.pings: list[Ping] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size)
                receiver.pings.append(Ping("POST", self.path, dict(self.headers), body))
                receiver.answer(self)

            do_GET = do_POST

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"/ping/{uuid.uuid4()}"
        self.url = f"http://127.0.0.1:{self.server.server_port}{self.base}"

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        if self.mode in ("ok", "status", "redirect"):
            status = {"ok": 200, "status": 500, "redirect": 302}[self.mode]
            handler.send_response(status)
            if self.mode == "redirect":
                handler.send_header("Location", self.location)
            handler.send_header("Content-Length", "2")
            handler.end_headers()
            handler.wfile.write(b"OK")
        elif self.mode == "hang":
            self.release.wait(60)
        else:  # trickle: never a whole status line, never a read timeout either
            try:
                for byte in b"HTTP/1.1 200 OK" * 100:
                    if self.release.wait(0.2):
                        return
                    handler.wfile.write(bytes([byte]))
            except OSError:
                return

    def paths(self) -> list[str]:
        """Each ping's path after the ping URL's: "/start", "" (success), "/69" …"""
        assert all(p.path.startswith(self.base) for p in self.pings), self.pings
        return [p.path[len(self.base) :] for p in self.pings]

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    with Receiver() as host:
        yield host


@pytest.fixture
def metrics(tmp_path: Path) -> Path:
    """Outside the out-dir, as node_exporter's textfile directory would be."""
    return tmp_path / "textfile" / "mcap.prom"


def hooked(receiver: Receiver, metrics: Path) -> tuple[str, ...]:
    metrics.parent.mkdir(exist_ok=True)
    return ("--ping-url", receiver.url, "--metrics-file", str(metrics))


def metrics_of(path: Path, script: str = S04) -> dict[str, float]:
    """name → value, through prometheus_client's parser: one gauge with HELP per family, one
    sample each, labelled with the script and the out-dir."""
    text = path.read_text()
    assert text.endswith("\n")
    values = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation, family
        (sample,) = family.samples
        assert sample.labels["script"] == script.removesuffix(".py")
        assert Path(sample.labels["out_dir"]).is_absolute()
        values[family.name.removeprefix("mcap_")] = sample.value
    assert text.count("# HELP ") == text.count("# TYPE ") == len(values)
    return values


def history_ts(out: Path) -> list[str]:
    path = out / "history" / "snapshots.jsonl"
    lines = path.read_bytes().splitlines() if path.exists() else []
    return [json.loads(line)["ts"] for line in lines]


def warnings_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if ": warning: ping" in line]


# --- what a run sends and writes ---------------------------------------------------------


@pytest.mark.parametrize("script", [S03, S04])
def test_a_run_pings_start_then_success_and_writes_its_metrics(
    fake_free, out, receiver, metrics, script
):
    before = now()
    result = run(script, fake_free, out, *hooked(receiver, metrics))
    assert result.returncode == 0, result.stderr
    stats = stats_of(out)
    assert receiver.paths() == ["/start", ""]
    start, success = receiver.pings
    assert f"run {stats['run_id']} started" in start.body.decode()
    assert f"run {stats['run_id']}: ok — snapshot {stats['snapshot_id']}" in success.body.decode()
    found = metrics_of(metrics, script)
    assert before <= found["last_run_timestamp_seconds"] <= now()
    assert found["last_run_timestamp_seconds"] >= parse_iso(stats["finished_at"])
    assert found["last_success_timestamp_seconds"] == found["last_run_timestamp_seconds"]
    assert found["last_run_exit_code"] == 0
    assert found["last_snapshot_timestamp_seconds"] == parse_iso(history_ts(out)[-1])
    assert found["snapshot_coins"] == stats["coin_count"] == 2000
    assert found["expected_coins"] == stats["expected_count"]
    assert found["requests_this_month"] == stats["requests_this_month"] == 2
    assert found["monthly_budget"] == 20_000
    assert found["missed_slots_24h"] == 0 and found["history_problems"] == 0
    assert "warning" not in result.stderr


def test_the_ping_host_never_sees_the_key_and_an_unlimited_budget_is_absent(
    fake_paid, out, receiver, metrics
):
    assert run(S04, fake_paid, out, *hooked(receiver, metrics), key=True).returncode == 0
    fake_paid.add_fault("/tickers", "echo_key")  # the key inside a coin's name
    fake_paid.advance(300)
    next_second()
    assert run(S04, fake_paid, out, *hooked(receiver, metrics), key=True).returncode == 0
    fake_paid.add_fault("/tickers", "status", status=403)
    next_second()
    assert run(S04, fake_paid, out, *hooked(receiver, metrics), key=True).returncode == 78
    assert receiver.paths() == ["/start", "", "/start", "", "/start", "/78"]
    for ping in receiver.pings:
        assert "authorization" not in {name.lower() for name in ping.headers}
        assert API_KEY.encode() not in ping.body and API_KEY not in ping.path
    assert b"403" in receiver.pings[-1].body
    found = metrics_of(metrics)
    assert "monthly_budget" not in found and found["last_run_exit_code"] == 78
    assert API_KEY not in metrics.read_text()


def test_a_skipped_run_pings_success_with_its_reason(fake_free, out, receiver, metrics):
    assert run(S04, fake_free, out, *hooked(receiver, metrics)).returncode == 0
    first = metrics_of(metrics)
    next_second()  # the API has not refreshed: same data
    result = run(S04, fake_free, out, *hooked(receiver, metrics))
    assert result.returncode == 0 and stats_of(out)["status"] == "skipped"
    assert receiver.paths() == ["/start", "", "/start", ""]
    assert b": skipped: " in receiver.pings[-1].body
    found = metrics_of(metrics)
    assert found["last_success_timestamp_seconds"] > first["last_success_timestamp_seconds"]
    assert found["last_snapshot_timestamp_seconds"] == first["last_snapshot_timestamp_seconds"]


def _inject_a_bug(monkeypatch):
    from mcap import collect

    def bug(*args, **kwargs):
        return {}["an injected bug"]

    monkeypatch.setattr(collect, "build_snapshot", bug)


FAILURES = {
    65: lambda api, out, mp: api.add_fault("/tickers", "html200"),
    69: lambda api, out, mp: api.add_fault("/tickers", "status", status=503, times=-1),
    74: lambda api, out, mp: (out / "request_ledger.json").write_bytes(b"{not json"),
    78: lambda api, out, mp: api.add_fault("/tickers", "status", status=403),
    70: lambda api, out, mp: _inject_a_bug(mp),
    75: lambda api, out, mp: None,  # --monthly-budget 1: refused past the lock
}


@pytest.mark.parametrize("code", sorted(FAILURES))
def test_each_failure_pings_its_exit_code_and_keeps_the_last_success(
    fake_free, out, receiver, metrics, monkeypatch, code
):
    assert run(S04, fake_free, out, *hooked(receiver, metrics)).returncode == 0
    good = metrics_of(metrics)
    fake_free.advance(300)
    next_second()
    FAILURES[code](fake_free, out, monkeypatch)
    extra = ("--retries", "0") + (("--monthly-budget", "1") if code == 75 else ())
    result = run(S04, fake_free, out, *hooked(receiver, metrics), *extra)
    assert result.returncode == code, result.stderr
    assert receiver.paths() == ["/start", "", "/start", f"/{code}"]
    body = receiver.pings[-1].body.decode()
    assert f": failed, exit {code}: " in body
    assert stats_of(out)["error"] in body and "\n" not in body
    found = metrics_of(metrics)
    assert found["last_run_exit_code"] == code
    assert found["last_run_timestamp_seconds"] > good["last_run_timestamp_seconds"]
    assert found["last_success_timestamp_seconds"] == good["last_success_timestamp_seconds"]
    assert found["last_snapshot_timestamp_seconds"] == good["last_snapshot_timestamp_seconds"]
    assert found["snapshot_coins"] == good["snapshot_coins"]


def test_an_out_dir_that_cannot_be_created_pings_73_without_a_start(
    tmp_path, receiver, metrics, fake_free
):
    (tmp_path / "a-file").write_text("not a directory")
    out = tmp_path / "a-file" / "data"
    result = run(S04, fake_free, out, *hooked(receiver, metrics))
    assert result.returncode == 73
    assert receiver.paths() == ["/73"]  # no run began: the lock was never taken
    found = metrics_of(metrics)
    assert found["last_run_exit_code"] == 73 and "last_success_timestamp_seconds" not in found
    assert "snapshot_coins" not in found


def test_a_run_refused_by_the_lock_pings_nothing_and_writes_75(fake_free, out, receiver, metrics):
    assert run(S04, fake_free, out, *hooked(receiver, metrics)).returncode == 0
    good = metrics_of(metrics)
    fd = os.open(out / ".collector.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds it
        before = tree_digest(out)
        fake_free.advance(300)
        next_second()
        refused = run(S04, fake_free, out, *hooked(receiver, metrics))
        assert refused.returncode == 75
        after = tree_digest(out)
    finally:
        os.close(fd)
    assert receiver.paths() == ["/start", ""]  # the first run's only: the holder pings
    assert {k for k in before | after if before.get(k) != after.get(k)} == {"collection.log"}
    found = metrics_of(metrics)
    assert found["last_run_exit_code"] == 75
    assert found["last_run_timestamp_seconds"] > good["last_run_timestamp_seconds"]
    assert found["last_success_timestamp_seconds"] == good["last_success_timestamp_seconds"]
    assert found["snapshot_coins"] == good["snapshot_coins"]


# --- a ping host that fails never changes the outcome ------------------------------------


@pytest.mark.long
@pytest.mark.parametrize(
    ("mode", "code", "gave_up"),
    [("hang", 65, "timed out (the read timeout, 3 s)"), ("trickle", 0, "gave up waiting")],
)
def test_a_ping_host_that_hangs_costs_a_warning_never_the_exit_code(
    fake_free, out, mode, code, gave_up
):
    if code:
        fake_free.add_fault("/tickers", "html200")
    with Receiver(mode) as host:
        result = run(S04, fake_free, out, "--ping-url", host.url)
        assert result.returncode == code, result.stderr
        assert host.paths() == ["/start", f"/{code}" if code else ""]  # both sent, unanswered
    assert stats_of(out)["exit_code"] == code
    assert len(history_ts(out)) == (0 if code else 1)
    start, finish = warnings_of(result)
    assert "ping /start to 127.0.0.1:" in start and gave_up in start
    assert start.endswith("the run goes on")
    assert gave_up in finish and finish.endswith(f"the exit code stays {code}")
    assert host.base not in result.stderr  # the ping URL's path is its secret


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("mode", ["status", "redirect", "refused"])
def test_a_ping_host_that_refuses_is_a_warning_and_redirects_are_not_followed(fake_free, out, mode):
    with Receiver() as elsewhere, Receiver(mode, location=elsewhere.url) as host:
        url = host.url if mode != "refused" else f"http://127.0.0.1:{_closed_port()}/ping/x"
        result = run(S04, fake_free, out, "--ping-url", url)
        assert result.returncode == 0, result.stderr
        assert elsewhere.pings == []
    expected = {
        "status": "answered HTTP 500",
        "redirect": f"answered HTTP 302, a redirect (to 127.0.0.1:{elsewhere.server.server_port})",
        "refused": "failed (Connection refused)",
    }[mode]
    warnings = warnings_of(result)
    assert len(warnings) == 2 and all(expected in line for line in warnings), result.stderr


# --- where hooks apply, and where not -----------------------------------------------------


def test_views_never_ping_nor_write_metrics(fake_free, out, receiver, metrics):
    assert run(S04, fake_free, out).returncode == 0
    views = [
        (S04, "--status"),
        (S04, "--check-history"),
        (S04, "--export-history", "2000-01-01", "2999-12-31"),
        (S04, "--query", "SELECT count(*) FROM history"),
        (S03, "--plan"),
    ]
    for script, *args in views:
        result = run(script, None, out, *args, *hooked(receiver, metrics))
        assert result.returncode == 0, (args, result.stderr)
    assert receiver.pings == [] and not metrics.exists()


def test_05_pings_and_writes_the_run_and_directory_figures_only(fake_free, out, receiver, metrics):
    assert run(S02, fake_free, out).returncode == 0
    sync_historical(fake_free)
    args = ("--coins", "top:3", "--days", "3", "--rate", "10", *hooked(receiver, metrics))
    stopped = run(S05, fake_free, out, *args, "--max-calls", "1")
    assert stopped.returncode == 75  # stopped with its progress kept: a failure by its code
    assert receiver.paths() == ["/start", "/75"]
    assert metrics_of(metrics, S05)["last_run_exit_code"] == 75
    assert run(S05, fake_free, out, *args).returncode == 0  # the rest
    assert receiver.paths()[2:] == ["/start", ""]
    assert b": ok \xe2\x80\x94 Backfilled " in receiver.pings[-1].body
    found = metrics_of(metrics, S05)
    assert set(found) == {
        "last_run_timestamp_seconds", "last_run_exit_code", "last_success_timestamp_seconds",
        "requests_this_month", "monthly_budget", "history_problems",
    }  # fmt: skip
    ledger = json.loads((out / "request_ledger.json").read_bytes())
    assert found["requests_this_month"] == ledger["month_requests"] == 2 + 3
    assert found["last_run_exit_code"] == 0 and found["history_problems"] == 0


def test_the_ping_url_may_come_from_the_environment(fake_free, out):
    with Receiver() as from_env, Receiver() as from_option:
        env = {"COLLECTOR_PING_URL": from_env.url}
        assert run(S04, fake_free, out, env=env).returncode == 0
        fake_free.advance(300)
        next_second()
        assert run(S04, fake_free, out, "--ping-url", from_option.url, env=env).returncode == 0
        assert from_env.paths() == ["/start", ""] and from_option.paths() == ["/start", ""]
        bad = run(S04, fake_free, out, env={"COLLECTOR_PING_URL": "hc-ping.com/x"})
        assert bad.returncode == 2 and "COLLECTOR_PING_URL" in bad.stderr
        assert run(S04, fake_free, out, "--ping-url", "ftp://x/y").returncode == 2
        assert run(S02, fake_free, out, env=env).returncode == 0  # 02 has no hooks
        assert from_env.paths() == ["/start", ""]


@pytest.mark.parametrize("script", [S01, S02])
def test_01_and_02_have_no_hook_options(script, tmp_path):
    result = run(script, None, tmp_path, "--ping-url", "http://127.0.0.1:9/x")
    assert result.returncode == 2 and "unrecognized arguments: --ping-url" in result.stderr


def test_a_run_without_hooks_imports_none_of_their_code(fake_free, out, metrics):
    """The process's own modules after main(): hooks and metrics only when asked for."""
    probe = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('s04', {str(ROOT / S04)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "code = module.main(sys.argv[1:])\n"
        "print(json.dumps([code, sorted(m for m in sys.modules if m in "
        "('mcap.hooks', 'mcap.metrics', 'prometheus_client'))]))\n"
    )

    def loaded(*args: str) -> list:
        argv = script_args(S04, fake_free, out, ("--quiet", *args))
        done = subprocess.run(
            [sys.executable, "-c", probe, *argv], capture_output=True, text=True,
            env=script_env(), cwd=ROOT, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert loaded() == [0, []]
    fake_free.advance(300)
    next_second()
    metrics.parent.mkdir()
    assert loaded("--metrics-file", str(metrics)) == [0, ["mcap.hooks", "mcap.metrics"]]


# --- the figures against the views ---------------------------------------------------------


def test_missed_slots_are_the_ones_status_counts(fake_free, out, metrics):
    metrics.parent.mkdir()
    for tick in (0, 1800, 7200):  # then a 2-hour gap: 3 missed slots of 30 minutes
        CLOCK.tick(tick)
        fake_free.advance(300)
        assert run(S04, fake_free, out, "--metrics-file", str(metrics)).returncode == 0
    missed = metrics_of(metrics)["missed_slots_24h"]
    status = run(S04, None, None, "--out-dir", str(out), "--status")
    counted = re.search(r"^Last [^:]*: (\d+) of \d+ slots without a snapshot", status.stdout, re.M)
    assert counted is not None, status.stdout
    assert missed == int(counted.group(1)) == 3


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_history_problems_are_the_cheap_check_and_the_checker_reads_all(fake_free, out, metrics):
    _, day = two_days(S04, fake_free, out)
    metrics.parent.mkdir()

    def problems_after_a_run() -> float:
        fake_free.advance(300)
        CLOCK.tick(600)
        run(S04, fake_free, out, "--metrics-file", str(metrics))
        return metrics_of(metrics)["history_problems"]

    def checked() -> int:
        return run(S04, None, None, "--out-dir", str(out), "--check-history").returncode

    assert problems_after_a_run() == 0 and checked() == 0
    piece = out / "history" / "archive" / f"{day}.parquet"
    size = piece.stat().st_size
    assert size > TAIL_BYTES + 1000
    _flip(piece, 1000)  # before the footer: only a whole-file hash finds it
    assert problems_after_a_run() == 0 and checked() == 65
    _flip(piece, size - 100)  # the footer: every run's check finds it
    assert problems_after_a_run() == 1 and checked() == 65


def test_the_ping_body_is_one_line_of_at_most_10_kb_and_never_the_key():
    set_secret(API_KEY)
    try:
        body = ping_body(f"failed\n{API_KEY} " + "é" * 20_000 + API_KEY)
    finally:
        set_secret(None)
    assert len(body) <= PING_BODY_MAX and b"\n" not in body
    assert API_KEY.encode() not in body and body.startswith(b"failed <redacted> \xc3\xa9")
    body.decode("utf-8")  # whole characters only


def test_a_metrics_file_that_cannot_be_written_is_a_warning(fake_free, out, tmp_path):
    result = run(S04, fake_free, out, "--metrics-file", str(tmp_path / "missing" / "m.prom"))
    assert result.returncode == 0 and stats_of(out)["status"] == "ok"
    assert "warning: writing the metrics file" in result.stderr


# --- the README's systemd units ----------------------------------------------------------

UNIT_BLOCK = re.compile(r"```ini\n# (/etc/\S+)[^\n]*\n(.*?)```", re.DOTALL)


def readme_files() -> dict[str, str]:
    """The README's ini blocks by the path their first line names."""
    text = (ROOT / "README.md").read_text()
    return {Path(path).name: body for path, body in UNIT_BLOCK.findall(text)}


def test_the_readme_units_keep_the_key_out_and_run_the_cron_job(tmp_path):
    files = readme_files()
    assert set(files) == {"collector.env", "mcap-collector.service", "mcap-collector.timer"}
    service, timer = files["mcap-collector.service"], files["mcap-collector.timer"]
    assert "COINPAPRIKA_API_KEY=" in files["collector.env"]
    assert "COINPAPRIKA_API_KEY" not in service and "Environment=" not in service.replace(
        "EnvironmentFile=", ""
    )
    assert "EnvironmentFile=/etc/mcap/collector.env" in service
    assert "Persistent=true" in timer.splitlines()
    (command,) = [line for line in service.splitlines() if line.startswith("ExecStart=")]
    uv, verb, script, *args = command.removeprefix("ExecStart=").split()
    assert (uv, verb, script) == ("/usr/local/bin/uv", "run", S04)
    from mcap.cli import parse_config

    config = parse_config(load_profile(S04), args, {})
    assert str(config.out_dir) == "/srv/mcap/data" and config.quiet and config.metrics_file


def load_profile(script: str):
    from tests.conftest import load_script

    return load_script(script).PROFILE


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_readme_units(tmp_path):
    files = readme_files()
    units = []
    for name in ("mcap-collector.service", "mcap-collector.timer"):
        # verify checks that ExecStart's program exists: this machine's, for uv's
        body = files[name].replace("/usr/local/bin/uv", shutil.which("uv") or "/bin/sh")
        (tmp_path / name).write_text(body)
        units.append(str(tmp_path / name))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_a_developers_ping_url_never_reaches_the_scripts_under_test(
    fake_free, out, receiver, monkeypatch
):
    monkeypatch.setenv("COLLECTOR_PING_URL", receiver.url)
    assert run(S04, fake_free, out).returncode == 0
    assert receiver.pings == []
