"""The hardening rules (issue "Never lie, never leak, never stop quietly"), one class each.

1. What a run reports is what happened.      4. Quota and secrets.
2. Collection never stops without saying so.  5. Interactive runs don't hang in silence.
3. Accept what is harmless, refuse what is dangerous, bounded in memory.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcap.clock import utc_iso
from mcap.history import Commit, HistoryStore, check_history
from tests.conftest import (
    API_KEY,
    FAST,
    PAID_ENV,
    ROOT,
    S02,
    S03,
    S04,
    next_second,
    one_error_line,
    read_jsonl,
    run,
    script_env,
    stats_of,
    tree_digest,
)

DATA_FILES = ("market_cap_snapshot", "history/", "coins_")


def data_digest(out: Path) -> dict[str, str]:
    """Digests of the files a failed run must leave byte-identical."""
    return {k: v for k, v in tree_digest(out).items() if k.startswith(DATA_FILES)}


# --- 1. What a run reports is what happened ------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "market_cap_snapshot.csv",
        "latest_stats.json",
        "request_ledger.json",
        "history/market_cap_history.jsonl",
        "history/snapshots.jsonl",
        "history/.state.json",
        "history/gaps.jsonl",
    ],
)
def test_a_target_that_is_a_directory_exits_74_before_any_request(fake_free, out, target):
    assert run(S04, fake_free, out, key=True).returncode == 0
    before = data_digest(out)
    path = out / target
    if path.exists():
        path.unlink()
    path.mkdir()
    fake_free.advance(300)
    fake_free.reset_requests()
    result = run(S04, fake_free, out, key=True)
    assert result.returncode == 74, result.stderr
    line = one_error_line(result)
    assert target.split("/")[-1] in line and "directory" in line
    assert fake_free.count() == 0
    assert {k: v for k, v in data_digest(out).items() if k != target} == {
        k: v for k, v in before.items() if k != target
    }


@pytest.mark.parametrize("name", ["history", "rejected"])
def test_a_file_where_a_directory_belongs_exits_74(fake_free, out, name):
    out.mkdir()
    (out / name).write_text("in the way")
    result = run(S02, fake_free, out, key=True)
    assert result.returncode == 74, result.stderr
    assert name in one_error_line(result)
    assert fake_free.count() == 0


def test_an_output_path_that_cannot_be_created_exits_73(fake_free, tmp_path):
    (tmp_path / "file").write_text("x")
    result = run(S02, fake_free, tmp_path / "file" / "data", key=True)
    assert result.returncode == 73
    assert "cannot create output directory" in one_error_line(result)
    assert fake_free.count() == 0


def test_after_the_commit_a_failing_stats_write_is_a_warning(fake_free, out, monkeypatch):
    from mcap import runner
    from mcap.errors import WriteError

    def refuse_stats(path, data):
        raise WriteError(f"cannot write {path.name}: disk full (ENOSPC)")

    monkeypatch.setattr(runner, "atomic_write_bytes", refuse_stats)
    result = run(S02, fake_free, out, key=True)
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "latest_stats.json" in result.stderr
    assert "left untouched" not in result.stderr + result.stdout
    assert check_history(out, 30).snapshots == 1


def test_after_the_commit_a_failing_summary_is_a_warning(fake_free, out, monkeypatch):
    from mcap import collect

    def broken_summary(*args):
        raise ValueError("a number that does not fit the format")

    monkeypatch.setattr(collect, "print_summary", broken_summary)
    result = run(S02, fake_free, out, key=True)
    assert result.returncode == 0
    assert "warning: printing the summary failed after the snapshot was committed" in result.stderr
    stats = stats_of(out)
    assert stats["status"] == "ok" and stats["exit_code"] == 0 and stats["warnings"]


def test_a_rename_failing_after_the_commit_is_repaired_by_the_next_run(fake_free, out, monkeypatch):
    from mcap import publish as collect
    from mcap.errors import WriteError

    assert run(S02, fake_free, out, key=True).returncode == 0
    first = json.loads((out / "market_cap_snapshot.json").read_bytes())["snapshot_id"]
    real_commit_temp = collect.commit_temp

    def flaky(tmp, path):
        if path.name == "market_cap_snapshot.json":
            raise WriteError(f"cannot write {path.name}: input/output error")
        real_commit_temp(tmp, path)

    monkeypatch.setattr(collect, "commit_temp", flaky)
    fake_free.advance(300)
    next_second()
    result = run(S02, fake_free, out, key=True)
    assert result.returncode == 0 and "market_cap_snapshot.json not replaced" in result.stderr
    assert json.loads((out / "market_cap_snapshot.json").read_bytes())["snapshot_id"] == first
    assert not list(out.glob(".*.tmp"))
    monkeypatch.setattr(collect, "commit_temp", real_commit_temp)
    # The API has not refreshed, so the data is unchanged: the run must still not skip,
    # because the snapshot files are older than the history.
    next_second()
    result = run(S02, fake_free, out, key=True)
    assert result.returncode == 0 and "Skipped" not in result.stdout
    state = HistoryStore(out).read_state()
    doc = json.loads((out / "market_cap_snapshot.json").read_bytes())
    assert doc["snapshot_id"] == state.last_snapshot_id != first


def test_a_bug_is_exit_70_with_one_line_and_the_traceback_in_the_log(fake_free, out, monkeypatch):
    from mcap import collect

    def bug(*args, **kwargs):
        return {}["an injected bug"]

    monkeypatch.setattr(collect, "build_snapshot", bug)
    result = run(S02, fake_free, out, key=True)
    assert result.returncode == 70
    line = one_error_line(result)
    assert "unexpected KeyError" in line and "a bug; traceback in collection.log" in line
    log = (out / "collection.log").read_text()
    assert "Traceback" in log and "an injected bug" in log
    assert stats_of(out)["exit_code"] == 70 and stats_of(out)["status"] == "failed"
    assert not (out / "market_cap_snapshot.json").exists()


@pytest.mark.parametrize(
    "ledger",
    [
        b"{not json",
        b"[1, 2]",
        b'{"month_requests": "many"}',
        b'{"month_requests": 3, "by_script": [1]}',
        b'{"month_requests": 3, "blocked_until": "soon"}',
        b'{"month_requests": -4}',
    ],
)
def test_a_damaged_ledger_fails_safe_with_one_line(fake_free, out, ledger):
    out.mkdir()
    (out / "request_ledger.json").write_bytes(ledger)
    result = run(S03, fake_free, out, env={}, key=True)
    assert result.returncode == 74
    line = one_error_line(result)
    assert "request_ledger.json" in line and "no request was made" in line
    assert fake_free.count() == 0
    assert (out / "request_ledger.json").read_bytes() == ledger


@pytest.mark.parametrize(
    "state", [b"{garbage", b"[]", b'{"history_size": "big"}', b'{"last_ts": 5}', b""]
)
def test_a_damaged_state_is_rebuilt_from_the_history(fake_free, out, state):
    assert run(S04, fake_free, out, key=True).returncode == 0
    (out / "history" / ".state.json").write_bytes(state)
    fake_free.advance(300)
    next_second()
    result = run(S04, fake_free, out, key=True)
    assert result.returncode == 0, result.stderr
    assert "rebuilding it" in (out / "collection.log").read_text()
    report = check_history(out, 30)
    assert report.ok and report.snapshots == 2, report.problems


def test_damaged_gaps_stats_and_snapshot_lines_never_crash(fake_free, out):
    assert run(S04, fake_free, out, key=True).returncode == 0
    (out / "history" / "gaps.jsonl").write_bytes(b'{"type": "failed_run", "at": \n[1]\n\xff\n')
    (out / "latest_stats.json").write_bytes(b"[1, 2, 3]")
    status = run(S04, None, None, "--out-dir", str(out), "--status")
    assert status.returncode in (0, 1) and "Traceback" not in status.stderr
    fake_free.advance(300)
    next_second()
    result = run(S04, fake_free, out, "--every", "1", key=True)
    assert result.returncode == 0, result.stderr


def test_a_damaged_archive_is_a_check_failure_not_a_crash(fake_free, out):
    assert run(S04, fake_free, out, key=True).returncode == 0
    (out / "history" / "market_cap_history-2020-01.jsonl.gz").write_bytes(b"\x1f\x8bnot gzip")
    result = run(S04, None, None, "--out-dir", str(out), "--check-history")
    assert result.returncode == 65
    assert "damaged" in result.stdout and "Traceback" not in result.stderr


SIGNAL_POINTS = [
    ("run.after_lock", "failed"),
    ("run.after_fetch", "failed"),
    ("history.mid_append", "ok"),  # inside the commit: it finishes first
    ("history.before_commit", "ok"),
    ("history.after_commit", "ok"),
    ("run.finish", "ok"),
    ("run.after_stats", "ok"),
]


@pytest.mark.parametrize(("point", "status"), SIGNAL_POINTS)
@pytest.mark.parametrize("signame", ["TERM", "INT"])
def test_a_signal_at_any_point_gives_a_code_the_stats_agree_with(
    fake_free, out, point, status, signame
):
    assert run(S04, fake_free, out, key=True).returncode == 0
    fake_free.advance(300)
    next_second()
    result = run(S04, fake_free, out, env={"COLLECTOR_CRASH_AT": f"{point}:{signame}"}, key=True)
    code = {"TERM": 143, "INT": 130}[signame]
    assert "Traceback" not in result.stderr
    stats = stats_of(out)
    assert result.returncode == (0 if status == "ok" else code), result.stderr
    assert stats["status"] == status and stats["exit_code"] == result.returncode
    report = check_history(out, 30)
    assert report.ok and report.snapshots == (2 if status == "ok" else 1)
    assert not list(out.rglob("*.tmp"))


def wait_for_our_handlers(pid: int) -> None:
    """Until common.py's first lines run, a Ctrl-C meets Python's own start-up handler."""
    for _ in range(2000):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return  # already over
        caught = int(
            next(line for line in status.splitlines() if line.startswith("SigCgt"))[7:], 16
        )
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.001)


@pytest.mark.long
def test_signals_at_random_moments_never_give_1_or_a_traceback(fake_free, out):
    import random

    rng = random.Random(8)
    assert run(S04, fake_free, out, key=True).returncode == 0
    for _ in range(8):
        fake_free.advance(300)
        next_second()
        before = (out / "latest_stats.json").read_bytes()
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / S04), "--base-url", fake_free.url, "--out-dir", str(out)]
            + [*FAST, "--min-interval", "0", "--no-repair"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=script_env(PAID_ENV),
        )
        wait_for_our_handlers(proc.pid)
        time.sleep(rng.uniform(0.0, 1.5))
        signum = rng.choice([signal.SIGTERM, signal.SIGINT])
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
        code = proc.returncode
        assert code in (0, 128 + signum), (code, stderr)
        assert b"Traceback" not in stderr
        after = (out / "latest_stats.json").read_bytes()
        if after != before:
            assert json.loads(after)["exit_code"] == code
        assert check_history(out, 30).ok


# --- 2. Collection never stops without saying so -------------------------------------------


def test_a_missing_last_updated_counts_as_changed(fake_free, out):
    def drop_stamps(rows):
        for row in rows[:5]:
            row.pop("last_updated", None)
        rows[5]["last_updated"] = None
        return rows

    for attempt in range(2):
        fake_free.add_fault("/tickers", "mutate", tickers=drop_stamps)
        result = run(S03, fake_free, out, env={}, key=True)
        assert result.returncode == 0, result.stderr
        assert stats_of(out)["status"] == "ok", attempt  # never "skipped": not provably same
        next_second()
    assert "have no last_updated" in (out / "collection.log").read_text()
    # With every last_updated present and equal, the same data is skipped.
    assert run(S03, fake_free, out, env={}, key=True).returncode == 0
    next_second()
    assert run(S03, fake_free, out, env={}, key=True).returncode == 0
    assert stats_of(out)["status"] == "skipped"


def _future_history(out: Path, minutes: float) -> str:
    ts = utc_iso(time.time() + minutes * 60)
    rows = b'{"ts":"%s","id":"btc-bitcoin","rank":1}\n' % ts.encode()
    summary = {"ts": ts, "snapshot_id": ts, "coin_count": 1}
    HistoryStore(out).commit(Commit(ts, ts, rows, 1, {"btc-bitcoin": ts}, summary))
    return ts


@pytest.mark.parametrize("script", [S02, S03, S04])
def test_a_last_snapshot_in_the_future_is_a_failure_before_any_request(fake_free, out, script):
    out.mkdir()
    ts = _future_history(out, 90)
    result = run(script, fake_free, out, key=True)
    assert result.returncode == 74
    line = one_error_line(result)
    assert ts in line and "future" in line and "clock" in line
    assert fake_free.count() == 0
    if script == S04:
        gaps = read_jsonl(out / "history" / "gaps.jsonl")
        assert gaps[-1]["type"] == "failed_run" and "future" in gaps[-1]["error"]


def _healthy_dir(out: Path, age_min: float) -> None:
    out.mkdir()
    ts = utc_iso(time.time() - age_min * 60)
    rows = b'{"ts":"%s","id":"a","rank":1}\n' % ts.encode()
    summary = {"ts": ts, "snapshot_id": ts, "coin_count": 1, "expected_count": 1}
    HistoryStore(out).commit(Commit(ts, ts, rows, 1, {"a": ts}, summary))
    stats = {"status": "ok", "exit_code": 0, "script": "04", "finished_at": ts, "error": None}
    (out / "latest_stats.json").write_text(json.dumps(stats))


@pytest.mark.parametrize(("age", "healthy"), [(45, True), (65, False)])
def test_status_is_unhealthy_past_two_cadences(out, age, healthy):
    _healthy_dir(out, age)
    result = run(S04, None, None, "--out-dir", str(out), "--status", "--every", "30")
    assert result.returncode == (0 if healthy else 1), result.stdout
    assert ("2 cadences" in result.stdout) == (not healthy)


def test_status_and_check_history_are_read_only(fake_free, out):
    assert run(S04, fake_free, out, key=True).returncode == 0

    def listing() -> dict:
        return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob("*")}

    before = listing()
    for option in ("--status", "--check-history"):
        result = run(S04, None, None, "--out-dir", str(out), option)
        assert result.returncode == 0, result.stdout + result.stderr
    assert listing() == before
    (out / "history" / ".state.json").unlink()  # even a lost state is rebuilt in memory only
    before = listing()
    for option in ("--status", "--check-history"):
        assert run(S04, None, None, "--out-dir", str(out), option).returncode == 0
    assert listing() == before
    missing = run(S04, None, None, "--out-dir", str(out / "nope"), "--check-history")
    assert missing.returncode == 2 and "no such directory" in one_error_line(missing)
    assert not (out / "nope").exists()


# --- 3. Accept what is harmless, refuse what is dangerous, bounded in memory ----------------


def test_global_type_changes_are_kept_and_cost_no_tickers(fake_free, out):
    def retyped(doc):
        doc["last_updated"] = "2026-11-25T12:00:00Z"
        doc["cryptocurrencies_number"] = "12k"
        doc.pop("volume_24h_usd")
        return doc

    fake_free.add_fault("/global", "mutate", global_=retyped)
    result = run(S02, fake_free, out, key=True)
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "market_cap_snapshot.json").read_bytes())
    assert doc["global"]["last_updated"] == "2026-11-25T12:00:00Z"
    assert doc["global"]["cryptocurrencies_number"] == "12k"
    assert fake_free.count("/tickers") == 1
    assert "kept as given" in (out / "collection.log").read_text()


ODD_NAMES = [
    "NUL\x00inside",
    "bell\x07 and \x1b[31mescape",
    "x" * 100_000,
    "\u202eright-to-left",
    "emoji 🧪 and \U0010fffd",
    "=cmd|' /C calc'!A0",
]


def test_odd_strings_and_numbers_are_written_faithfully_everywhere(fake_free, out):
    def odd(rows):
        for row, name in zip(rows[10:], ODD_NAMES, strict=False):
            row["name"] = name
        rows[20]["quotes"]["USD"]["market_cap"] = 10**30
        rows[21]["quotes"]["USD"]["price"] = -1.5
        rows[22]["quotes"]["USD"]["volume_24h"] = 10**400
        rows[23]["circulating_supply"] = -(10**25)
        return rows

    def odd_global(doc):
        doc["market_cap_usd"] = 10**400
        return doc

    fake_free.add_fault("/tickers", "mutate", tickers=odd)
    fake_free.add_fault("/global", "mutate", global_=odd_global)
    result = run(S02, fake_free, out, key=True)
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "market_cap_snapshot.json").read_bytes())
    by_id = {c["id"]: c for c in doc["coins"]}
    sent = odd(json.loads(json.dumps(fake_free.tickers)))
    for row in sent[10:24]:
        assert by_id[row["id"]]["name"] == row["name"]
        assert by_id[row["id"]]["quotes"] == row["quotes"]
    assert doc["global"]["market_cap_usd"] == 10**400
    lines = (out / "market_cap_snapshot.jsonl").read_bytes().split(b"\n")
    assert len(lines) == fake_free.served + 1
    cells = {
        r["id"]: r
        for r in csv.DictReader(io.StringIO((out / "market_cap_snapshot.csv").read_text()))
    }
    assert cells[sent[20]["id"]]["market_cap_usd"] == str(10**30)
    assert cells[sent[22]["id"]]["volume_24h_usd"] == str(10**400)
    assert cells[sent[11]["id"]]["name"] == ODD_NAMES[1]
    history = {r["id"]: r for r in read_jsonl(out / "history" / "market_cap_history.jsonl")}
    assert history[sent[22]["id"]]["volume_24h_usd"] == 10**400
    assert history[sent[23]["id"]]["circulating_supply"] == -(10**25)
    assert "Global market cap: $" in result.stdout and str(10**400)[:10] in result.stdout.replace(
        ",", ""
    )


def test_a_lone_surrogate_is_refused_with_65_before_anything_changes(fake_free, out):
    assert run(S02, fake_free, out, key=True).returncode == 0
    before = data_digest(out)

    def broken(rows):
        rows[7]["name"] = "half \ud83d emoji"
        return rows

    fake_free.advance(300)
    fake_free.add_fault("/tickers", "mutate", tickers=broken)
    result = run(S02, fake_free, out, key=True)
    assert result.returncode == 65
    assert "lone surrogate" in result.stderr and "Traceback" not in result.stderr
    assert data_digest(out) == before


def _peak_rss_mb(args: list[str], env: dict) -> tuple[int, float, str]:
    """Run a script in a fresh child and return (exit code, peak RSS in MB, stderr)."""
    probe = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
        "sys.stderr.write(r.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    code, rss = done.stdout.split()
    return int(code), float(rss), done.stderr


@pytest.mark.long
@pytest.mark.parametrize(("kind", "opts"), [("huge", {"mb": 200}), ("gzip_bomb", {"mb": 1000})])
def test_oversized_bodies_end_with_65_in_bounded_memory(fake_free, out, kind, opts):
    fake_free.add_fault("/tickers", kind, **opts)
    env = script_env(PAID_ENV)
    args = [str(ROOT / S02), "--base-url", fake_free.url, "--out-dir", str(out), *FAST]
    code, rss_mb, stderr = _peak_rss_mb(args, env)
    assert code == 65, stderr
    assert "limit" in stderr and "--max-" in stderr
    assert rss_mb < 300, rss_mb
    kept = list((out / "rejected").iterdir())
    assert kept and all(p.stat().st_size <= 8 * 1024 * 1024 for p in kept)


def test_an_announced_oversized_body_is_refused_unread(fake_free, out):
    result = run(S02, fake_free, out, "--max-download-mb", "0.05", key=True)
    assert result.returncode == 65 and "announced" in result.stderr


def test_limits_are_overridable(fake_free, out):
    fake_free.add_fault("/tickers", "gzip_bomb", mb=150)
    result = run(S02, fake_free, out, "--max-body-mb", "20", key=True)
    assert result.returncode == 65 and "20 MB" in result.stderr


@pytest.mark.parametrize("plain", [True, False])
def test_chunked_bodies_without_length_are_read(fake_free, out, plain):
    fake_free.add_fault("/tickers", "chunked", chunk=7777, plain=plain)
    result = run(S02, fake_free, out, key=True)
    assert result.returncode == 0, result.stderr
    assert (
        json.loads((out / "market_cap_snapshot.json").read_bytes())["coin_count"]
        == fake_free.served
    )


def test_a_chunked_body_cut_short_is_retried(fake_free, out):
    fake_free.add_fault("/tickers", "chunked", cut=True)
    result = run(S02, fake_free, out, key=True)
    assert result.returncode == 0, result.stderr
    assert fake_free.count("/tickers") == 2


# --- 4. Quota and secrets --------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [None, "https://api.coinpaprika.com/v1/tickers", "ftp://example.com/x", "http://[::bad"],
)
@pytest.mark.parametrize("status", [301, 302, 307])
def test_redirects_are_never_followed_and_are_counted(fake_free, out, status, location):
    opts = {"status": status} | ({"location": location} if location else {})
    fake_free.add_fault("/tickers", "redirect", times=-1, **opts)
    result = run(S02, fake_free, out, key=True)
    assert result.returncode == 65, result.stderr
    assert f"HTTP {status}" in one_error_line(result) and "redirect" in result.stderr
    assert fake_free.count() == 1
    ledger = json.loads((out / "request_ledger.json").read_bytes())
    assert ledger["month_requests"] == 1


KEY_FORMS = [API_KEY, json.dumps(API_KEY)[1:-1]]


def _assert_no_key_anywhere(out: Path, *texts: str) -> None:
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(form.encode() in data for form in KEY_FORMS), path
    for text in texts:
        assert not any(form in text for form in KEY_FORMS)


def test_a_key_echoed_in_a_200_body_is_redacted_in_every_output(fake_free, out):
    fake_free.add_fault("/tickers", "echo_key")
    result = run(S02, fake_free, out, "--verbose", key=True)
    assert result.returncode == 0, result.stderr
    _assert_no_key_anywhere(out, result.stdout, result.stderr)
    assert b"<redacted>" in (out / "market_cap_snapshot.json").read_bytes()


def test_a_key_echoed_in_a_refused_body_is_redacted_in_rejected(fake_free, out):
    def echo_and_break(rows):
        rows[0]["name"] = f"key={API_KEY}"
        rows[1]["symbol"] = json.dumps(API_KEY)
        rows[2]["id"] = None
        return rows

    fake_free.add_fault("/tickers", "mutate", tickers=echo_and_break)
    result = run(S02, fake_free, out, "--verbose", key=True)
    assert result.returncode == 65
    assert list((out / "rejected").iterdir())
    _assert_no_key_anywhere(out, result.stdout, result.stderr)


def test_a_key_in_error_text_is_redacted_in_tracebacks_and_gaps(fake_free, out):
    fake_free.add_fault("/tickers", "status", status=402, body=f"key '{API_KEY}' used up its quota")
    result = run(S04, fake_free, out, "--verbose", key=True)
    assert result.returncode == 78
    assert "Traceback" in result.stderr  # --verbose shows it, redacted
    _assert_no_key_anywhere(out, result.stdout, result.stderr)


@pytest.mark.parametrize("key", ["abc\r\nX-Evil: 1", "abc\ndef", "ключ-ключ", "tab\tand\x01ctrl"])
def test_a_key_that_cannot_be_a_header_exits_2_without_printing_it(fake_free, out, key):
    result = run(S02, fake_free, out, env={"COINPAPRIKA_API_KEY": key}, key=True)
    assert result.returncode == 2
    line = one_error_line(result)
    assert "COINPAPRIKA_API_KEY" in line and key.strip() not in result.stderr
    assert fake_free.count() == 0 and not out.exists()


# --- 5. Interactive runs don't hang in silence ------------------------------------------------


def test_interactive_defaults_end_a_hanging_run_within_two_minutes():
    from mcap.cli import parse_config
    from tests.conftest import load_script

    for script in ("01_fetch_all_coins_list.py", S02):
        config = parse_config(load_script(script).PROFILE, [], {})
        assert config.read_timeout_s == 30
        # The whole run, retries and waits included, ends by its deadline (tested below
        # with a short one): 100 s plus start-up stays well inside 120 s.
        assert config.deadline_s <= 100
    for script in (S03, S04):
        assert parse_config(load_script(script).PROFILE, [], {}).deadline_s == 1200


@pytest.mark.long
def test_a_hanging_api_ends_02_with_69_showing_each_wait(fake_free, out):
    fake_free.add_fault("/tickers", "hang", times=-1, seconds=60)
    result = run(S02, fake_free, out, "--timeout", "1", "--deadline", "8", key=True)
    assert result.returncode == 69
    *progress, error = result.stderr.strip().splitlines()
    assert progress and all("attempt" in line and "retrying in" in line for line in progress)
    assert "ReadTimeout" in progress[0] and "error:" in error


def test_scheduled_collectors_keep_stderr_quiet_on_retries(fake_free, out):
    fake_free.add_fault("/tickers", "status", status=503, times=1)
    result = run(S04, fake_free, out, env={}, key=True)
    assert result.returncode == 0 and result.stderr == ""
    quiet = run(S02, fake_free, out / "q", "--quiet", env={}, key=True)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""
