"""End to end: 04_production_collector.py — lock, deadline, signals, kills, disks, cron, health."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcap.history import HistoryStore, check_history
from tests.conftest import (
    PAID_ENV,
    ROOT,
    S04,
    next_second,
    read_jsonl,
    run,
    script_env,
    spawn,
    stats_of,
    tmpfs,
    tree_digest,
)


def wait_for_request(fake_free, path: str, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while fake_free.count(path) == 0:
        assert time.monotonic() < end, f"no request to {path}"
        time.sleep(0.05)


def assert_history_ok(out: Path) -> None:
    report = check_history(out, 30)
    assert report.ok, report.problems


def test_second_run_while_first_is_active_exits_75_fast_and_touches_nothing(fake_free, out):
    assert run(S04, fake_free, out, key=True).returncode == 0
    fake_free.advance(300)
    fake_free.reset_requests()
    fake_free.add_fault("/tickers", "hang", seconds=30)
    first = spawn(S04, fake_free, out, key=True)
    try:
        wait_for_request(fake_free, "/tickers")
        before = tree_digest(out)
        log_before = (out / "collection.log").read_bytes()
        second = run(S04, fake_free, out, key=True)
        assert second.returncode == 75
        assert first.poll() is None  # refused at once: it did not wait for the holder
        assert "previous run still active" in second.stderr
        after = tree_digest(out)
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        assert changed == {"collection.log"}, changed
        new_log = (out / "collection.log").read_bytes()[len(log_before) :]
        assert new_log.count(b"\n") == 1 and b"previous run still active" in new_log
        assert fake_free.count("/tickers") == 1
    finally:
        first.kill()
        first.wait()
    # A killed holder frees the lock at once; the lock file is never deleted.
    assert (out / ".collector.lock").exists()
    fake_free.clear_faults()
    third = run(S04, fake_free, out, key=True)
    assert third.returncode == 0, third.stderr
    assert_history_ok(out)


@pytest.mark.parametrize(
    "point",
    ["history.mid_append", "history.before_commit", "snapshots.mid_append", "history.after_commit"],
)
def test_kill_during_commit_then_next_run_recovers(fake_free, out, point):
    assert run(S04, fake_free, out, key=True).returncode == 0
    fake_free.advance(300)
    next_second()
    killed = run(S04, fake_free, out, env={**PAID_ENV, "COLLECTOR_CRASH_AT": point}, key=True)
    assert killed.returncode == -signal.SIGKILL
    for name in ("market_cap_snapshot.json", "latest_stats.json", "request_ledger.json"):
        json.loads((out / name).read_bytes())  # every file still parses
    fake_free.advance(300)
    next_second()
    recovered = run(S04, fake_free, out, key=True)
    assert recovered.returncode == 0, recovered.stderr
    assert_history_ok(out)
    entries = read_jsonl(out / "history" / "snapshots.jsonl")
    committed_by_kill = point == "history.after_commit"
    assert len(entries) == (3 if committed_by_kill else 2)
    rows = read_jsonl(out / "history" / "market_cap_history.jsonl")
    assert len(rows) == len(entries) * fake_free.served
    cut_files = list((out / "history").glob("*.cut-*"))
    assert bool(cut_files) == (
        point in ("history.mid_append", "history.before_commit", "snapshots.mid_append")
    )
    assert not list(out.rglob("*.tmp"))


@pytest.mark.long
def test_kill_at_random_moments_never_breaks_files(fake_free, out):
    assert run(S04, fake_free, out, key=True).returncode == 0
    for delay in (0.3, 0.6, 0.9, 1.2):
        fake_free.advance(300)
        next_second()
        proc = spawn(S04, fake_free, out, key=True)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        json.loads((out / "market_cap_snapshot.json").read_bytes())
    fake_free.advance(300)
    next_second()
    assert run(S04, fake_free, out, key=True).returncode == 0
    assert_history_ok(out)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_cleanly(fake_free, out, signum, code):
    assert run(S04, fake_free, out, key=True).returncode == 0
    before = tree_digest(out / "history")
    snapshot_before = (out / "market_cap_snapshot.json").read_bytes()
    fake_free.advance(300)
    fake_free.reset_requests()
    fake_free.add_fault("/tickers", "trickle", seconds=30, interval=0.1)
    proc = spawn(S04, fake_free, out, key=True)
    wait_for_request(fake_free, "/tickers")
    time.sleep(0.5)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == code
    assert signal.Signals(signum).name in stderr
    assert tree_digest(out / "history") == before
    assert (out / "market_cap_snapshot.json").read_bytes() == snapshot_before
    stats = stats_of(out)
    assert stats["status"] == "failed" and stats["exit_code"] == code
    assert not list(out.rglob("*.tmp"))
    assert f"run end status=failed exit={code}" in (out / "collection.log").read_text()


def test_deadline_bounds_a_429_storm(fake_free, out):
    fake_free.add_fault("/tickers", "status", status=429, times=-1, retry_after="3600")
    result = run(S04, fake_free, out, "--deadline", "5", "--retries", "10", key=True)
    assert result.returncode == 69
    assert fake_free.count("/tickers") == 1  # a one-hour Retry-After cannot fit a 5 s deadline


def test_cron_like_environment_writes_only_to_out_dir(fake_free, tmp_path):
    fake_free = fake_free
    home = tmp_path / "home"
    home.mkdir()
    out = tmp_path / "data"
    uv_dir = os.path.dirname(sys.executable)
    command = (
        f"cd / && {sys.executable} {ROOT / S04} --base-url {fake_free.url} --out-dir {out} --quiet"
    )
    result = subprocess.run(
        ["env", "-i", f"HOME={home}", f"PATH=/usr/bin:/bin:{uv_dir}", "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert (out / "market_cap_snapshot.json").exists()
    assert list(home.iterdir()) == []


def test_shrink_to_300_is_rejected_and_old_snapshot_kept(fake_free, out):
    assert run(S04, fake_free, out, key=True).returncode == 0
    before = tree_digest(out / "history")
    snapshot_before = (out / "market_cap_snapshot.csv").read_bytes()
    fake_free.set_ticker_count(300)
    fake_free.advance(300)
    result = run(S04, fake_free, out, key=True)
    assert result.returncode == 65
    assert (out / "market_cap_snapshot.csv").read_bytes() == snapshot_before
    after = tree_digest(out / "history")
    assert {k: v for k, v in after.items() if k != "gaps.jsonl"} == before
    gaps = read_jsonl(out / "history" / "gaps.jsonl")
    assert gaps[-1]["type"] == "failed_run" and gaps[-1]["exit_code"] == 65
    assert list((out / "rejected").iterdir())


def test_full_disk_exits_74_and_keeps_old_files(fake_free, tmp_path):
    with tmpfs(tmp_path / "small", "64m", "a full disk") as mount:
        out = mount / "data"
        assert run(S04, fake_free, out, key=True).returncode == 0
        before = tree_digest(out)
        filler = mount / "filler"
        with open(filler, "wb") as handle:  # leave ~3 MB: less than a new snapshot needs
            free = shutil.disk_usage(mount).free
            handle.write(b"\0" * max(0, free - 3_000_000))
        fake_free.advance(300)
        next_second()
        result = run(S04, fake_free, out, key=True)
        assert result.returncode == 74, result.stderr
        assert "not enough free space" in result.stderr  # checked before any temp file
        after = tree_digest(out)
        for name, digest in before.items():
            if name.startswith(("market_cap_snapshot", "history/")):
                assert after.get(name) == digest, name
        assert not list(out.rglob("*.tmp"))
        filler.unlink()
        fake_free.advance(300)
        next_second()
        assert run(S04, fake_free, out, key=True).returncode == 0
        assert_history_ok(out)


def test_read_only_output_exits_74_without_requests(fake_free, tmp_path):
    with tmpfs(tmp_path / "ro", "40m", "a read-only filesystem") as mount:
        out = mount / "data"
        assert run(S04, fake_free, out, key=True).returncode == 0
        before = tree_digest(out)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        fake_free.reset_requests()
        fake_free.advance(300)
        result = run(S04, fake_free, out, key=True)
        assert result.returncode == 74, result.stderr  # it exists: 73 is "cannot be created"
        assert fake_free.count() == 0
        assert len(result.stderr.strip().splitlines()) == 1
        assert tree_digest(out) == before


def test_concurrent_history_commits_are_serialised(tmp_path):
    code = """
import sys
from pathlib import Path
from mcap.history import Commit, HistoryStore
out, ts = Path(sys.argv[1]), sys.argv[2]
rows = b"".join(b'{"ts":"%s","id":"c%d","rank":%d}\\n' % (ts.encode(), i, i) for i in range(20000))
summary = {"ts": ts, "snapshot_id": ts, "coin_count": 20000}
HistoryStore(out).commit(Commit(ts, ts, rows, 20000, {}, summary))
"""
    stamps = [f"2026-11-25T10:{m:02d}:00Z" for m in range(0, 60, 10)]
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), ts], cwd=ROOT) for ts in stamps
    ]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    rows = read_jsonl(tmp_path / "history" / "market_cap_history.jsonl")
    entries = read_jsonl(tmp_path / "history" / "snapshots.jsonl")
    # Each commit is whole; commits older than the newest committed one are refused, never torn.
    committed = [e["ts"] for e in entries]
    assert committed == sorted(committed) and len(committed) >= 1
    assert len(rows) == 20_000 * len(committed)
    assert_history_ok(tmp_path)


def test_status_and_check_history(fake_free, out):
    missing = run(S04, None, None, "--out-dir", str(out), "--status")
    assert missing.returncode == 2 and "no such directory" in missing.stderr
    assert not out.exists()  # read-only: not even the directory is created
    out.mkdir()
    unhealthy = run(S04, None, None, "--out-dir", str(out), "--status")
    assert unhealthy.returncode == 1 and "UNHEALTHY" in unhealthy.stdout
    assert run(S04, fake_free, out, key=True).returncode == 0
    status = run(S04, None, None, "--out-dir", str(out), "--status")
    assert "Last good snapshot" in status.stdout and "Requests this month" in status.stdout
    check = run(S04, None, None, "--out-dir", str(out), "--check-history")
    assert check.returncode == 0 and "Check: OK" in check.stdout
    # Double a snapshot behind the collector's back: the checker must notice.
    history = out / "history" / "market_cap_history.jsonl"
    data = history.read_bytes()
    state_path = out / "history" / ".state.json"
    state = json.loads(state_path.read_bytes())
    history.write_bytes(data + data)
    state["history_size"] = len(data) * 2
    state_path.write_text(json.dumps(state))
    doubled = run(S04, None, None, "--out-dir", str(out), "--check-history")
    assert doubled.returncode == 65
    assert "twice" in doubled.stdout


SOAK_RETRIES = ["--retries", "1", "--timeout", "10"]


@pytest.mark.long
def test_soak_with_random_faults_and_kills(fake_free, out):
    """Many runs with random kills, storms, hangs and bad payloads: the history stays exact."""
    import random

    rng = random.Random(20261125)
    crash_points = [
        "history.mid_append",
        "history.before_commit",
        "snapshots.mid_append",
        "history.after_commit",
    ]

    def soak_args(*extra: str) -> list[str]:
        return ["--base-url", fake_free.url, "--out-dir", str(out), "--min-interval", "0",
                "--no-repair", *SOAK_RETRIES, *extra]  # fmt: skip

    def committed() -> int:
        # Through the commit point: snapshots.jsonl may end in an uncommitted tail after a
        # kill (its lines are cut by the next run), so its line count is not the answer.
        return HistoryStore(out).read_state().snapshot_count

    for _ in range(24):
        fake_free.clear_faults()
        fake_free.advance(300)
        next_second()
        action = rng.choice(
            ["ok", "ok", "storm", "down", "html", "cut", "hang", "crash", "kill", "shrink"]
        )
        env, extra, crash = {}, [], None
        if action == "storm":
            fake_free.add_fault("/tickers", "status", status=429, times=1)
        elif action == "down":
            fake_free.add_fault("*", "status", status=502, times=-1)
        elif action == "html":
            fake_free.add_fault("/global", "html200")
        elif action == "cut":
            fake_free.add_fault("/tickers", rng.choice(["truncated", "gzip_truncated", "reset"]))
        elif action == "hang":
            fake_free.add_fault("/tickers", "hang", times=-1, seconds=20)
            extra = ["--deadline", "2", "--timeout", "0.5"]
        elif action == "crash":
            crash = rng.choice(crash_points)
            env = {"COLLECTOR_CRASH_AT": crash}
        elif action == "shrink":
            fake_free.add_fault("/tickers", "body", body=json.dumps(fake_free.tickers[:300]))
        before = committed()
        if action == "kill":
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / S04), *soak_args()],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=script_env(),
            )
            time.sleep(rng.uniform(0.2, 1.2))
            proc.kill()
            proc.wait()
            assert committed() - before in (0, 1)  # killed before or after its commit point
        else:
            result = run(S04, None, None, *soak_args(*extra), env=env)
            grew = committed() - before
            if action in ("ok", "storm", "cut") or (action == "shrink" and before == 0):
                assert result.returncode == 0 and grew == 1, (action, result.stderr)
            elif action == "crash":
                assert result.returncode == -signal.SIGKILL
                assert grew == (1 if crash == "history.after_commit" else 0), crash
            else:
                assert result.returncode in (65, 69) and grew == 0, (action, result.returncode)
        if (out / "market_cap_snapshot.json").exists():
            json.loads((out / "market_cap_snapshot.json").read_bytes())
        if (out / "history").exists():
            assert_history_ok(out)
    fake_free.clear_faults()
    fake_free.advance(300)
    next_second()
    final = run(S04, None, None, *soak_args())
    assert final.returncode == 0, final.stderr
    entries = read_jsonl(out / "history" / "snapshots.jsonl")
    report = check_history(out, 30)
    assert report.ok, report.problems
    assert report.rows == sum(e["coin_count"] for e in entries) and report.snapshots == len(entries)
    assert not list(out.glob("*.tmp")) and not list((out / "history").glob("*.tmp"))
