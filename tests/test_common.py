"""Unit tests for the library behind the scripts (writers, parsing, retry policy, history)."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mcap.client import ApiClient, Deadline
from mcap.clock import parse_iso, utc_iso
from mcap.errors import (
    ApiDataError,
    ApiUnavailable,
    AuthOrPlanError,
    BudgetExceeded,
    HistoryDamaged,
    LocalStateError,
    QuotaBlocked,
    ShrunkSnapshot,
)
from mcap.formats import csv_bytes, history_bytes, safe_text_cell
from mcap.fsio import atomic_write_bytes, remove_orphan_temps
from mcap.history import Commit, Gap, HistoryStore, check_history
from mcap.jsonio import loads_strict
from mcap.ledger import RequestLedger, budget_plan
from mcap.settings import Config, ScriptProfile
from mcap.validate import check_shrink, rank_sort_key, validate_global, validate_tickers
from tests.conftest import ROOT, read_jsonl

PROFILE = ScriptProfile(name="test", description="unit tests")

# --- CSV and text cells ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cell"),
    [
        ("Bitcoin", "Bitcoin"),
        ("a\r\nb", "a b"),
        ("a\nb\rc\x85d\u2028e\u2029f", "a b c d e f"),
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\r=1", "' =1"),
        ("Ŝtar ⭐", "Ŝtar ⭐"),
        (None, ""),
    ],
)
def test_safe_text_cell(raw, cell):
    assert safe_text_cell(raw) == cell


def test_csv_round_trips_and_counts_lines():
    coins = [
        {
            "id": "a-a",
            "name": 'Comma, "quote"\nnewline',
            "symbol": "=A",
            "rank": 1,
            "quotes": {
                "USD": {
                    "price": 4.817e-05,
                    "market_cap": 1342499821338,
                    "volume_24h": None,
                    "percent_change_1h": "",
                    "percent_change_24h": -1.5,
                }
            },
            "total_supply": 0,
            "max_supply": None,
            "last_updated": "2026-11-25T12:00:00Z",
        },
        {"id": "b-b", "name": None, "symbol": "B", "rank": 0, "quotes": {}},
    ]
    data = csv_bytes(coins, ("USD",), "2026-11-25T12:00:00Z")
    assert data.count(b"\n") == 3
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert rows[1][2] == 'Comma, "quote" newline' and rows[1][3] == "'=A"
    assert rows[1][5] == "4.817e-05" and rows[1][6] == "1342499821338"
    assert rows[1][7] == "" and rows[1][8] == "" and rows[1][9] == "-1.5"
    assert rows[2][2] == "" and rows[2][5:11] == [""] * 6


def test_history_rows_are_compact():
    coin = {
        "id": "btc-bitcoin",
        "rank": 1,
        "circulating_supply": 19912437,
        "quotes": {
            "USD": {
                "price": 67418.99,
                "market_cap": 1342499821338,
                "volume_24h": 31802110452.93,
                "percent_change_24h": 1.05,
            }
        },
    }
    line = history_bytes([coin], "2026-11-25T12:00:00Z", ("USD",))
    row = json.loads(line)
    assert row["ts"] == "2026-11-25T12:00:00Z" and row["market_cap_usd"] == 1342499821338
    assert row["circulating_supply"] == 19912437 and len(line) <= 250
    assert line.startswith(b'{"ts":"2026-11')


# --- strict JSON and validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b'{"a": 1e400}',
        b'{"a": 1, "a": 2}',
        b'{"a": ' + b"9" * 5000 + b"}",
    ],
)
def test_strict_json_rejects_what_jq_would_mangle(body):
    with pytest.raises(ValueError):
        loads_strict(body)


def ticker(ident: str, rank: int | None = 1, **quote) -> dict:
    return {
        "id": ident,
        "name": ident,
        "symbol": "X",
        "rank": rank,
        "quotes": {"USD": {"price": 1.0, **quote}},
    }


def test_validate_tickers_accepts_null_empty_and_drops_duplicates():
    rows = [
        ticker("a", ath_price=None, volume_24h="", ath_source="new text field"),
        {**ticker("b"), "rank": ""},
        ticker("a"),
    ]
    result = validate_tickers(rows, ("USD",))
    assert [r["id"] for r in result.rows] == ["a", "b"]
    assert result.duplicates_dropped == 1 and result.duplicate_ids == ["a"]


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {},
        [1],
        [{"name": "x"}],
        [{"id": ""}],
        [ticker("a", price="12.5")],
        [ticker("a", price=True)],
        [{**ticker("a"), "rank": "1"}],
        [{**ticker("a"), "rank": -1}],
        [{**ticker("a"), "quotes": []}],
        [{**ticker("a"), "name": 5}],
        [{"id": "a", "quotes": {"EUR": {"price": 1}}}],
    ],
)
def test_validate_tickers_rejects_bad_shapes(payload):
    with pytest.raises(ApiDataError):
        validate_tickers(payload, ("USD",))


def test_validate_global():
    assert validate_global({"market_cap_usd": 1, "cryptocurrencies_number": 2})
    assert validate_global({"market_cap_usd": 1, "new_text_field": "x"})  # unknown: tolerated
    # A type change in a field the snapshot does not need is kept as given.
    changed = {"market_cap_usd": 1, "cryptocurrencies_number": "many", "last_updated": "2026"}
    assert validate_global(changed) == changed
    with pytest.raises(ApiDataError):
        validate_global({"cryptocurrencies_number": 2})
    with pytest.raises(ApiDataError):
        validate_global({"market_cap_usd": "1", "cryptocurrencies_number": 2})
    with pytest.raises(ApiDataError):
        validate_global([])


def test_rank_order_puts_unranked_last_by_id():
    rows = [ticker("z", 0), ticker("b", 2), ticker("a", None), ticker("c", 1)]
    assert [r["id"] for r in sorted(rows, key=rank_sort_key)] == ["c", "b", "a", "z"]


def test_shrink_rule_is_half_of_previous():
    check_shrink("x", 50, 100, accept=False)
    check_shrink("x", 10, None, accept=False)
    check_shrink("x", 49, 100, accept=True)
    with pytest.raises(ShrunkSnapshot):
        check_shrink("x", 49, 100, accept=False)


# --- atomic files ------------------------------------------------------------------------------


def test_atomic_write_is_readable_and_leaves_no_temp(tmp_path):
    target = tmp_path / "f.json"
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    target.write_bytes(b"old")

    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(Exception, match="disk full"):
        atomic_write_bytes(target, b"new" * 1000)
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_orphan_temps_are_removed(tmp_path):
    (tmp_path / ".market_cap_snapshot.json.abc.tmp").write_text("x")
    (tmp_path / ".coins_list.txt.def.tmp").write_text("x")  # another script's, maybe in use
    old = tmp_path / ".request_ledger.json.ghi.tmp"
    old.write_text("x")
    os.utime(old, (1, 1))  # hours old: nobody is writing it any more
    (tmp_path / "keep.json").write_text("x")
    removed = remove_orphan_temps(tmp_path, ("market_cap_snapshot.json",))
    assert sorted(p.name for p in removed) == [
        ".market_cap_snapshot.json.abc.tmp",
        ".request_ledger.json.ghi.tmp",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".coins_list.txt.def.tmp", "keep.json"]


# --- ledger -------------------------------------------------------------------------------------


def test_ledger_counts_refuses_and_blocks(tmp_path):
    ledger = RequestLedger(tmp_path)
    assert ledger.record_attempt("s", budget=2) == 1
    assert ledger.record_attempt("s", budget=2) == 2
    with pytest.raises(BudgetExceeded):
        ledger.record_attempt("s", budget=2)
    with pytest.raises(BudgetExceeded):
        ledger.check_can_run(2, 1, budget=3, force=False)
    ledger.check_can_run(1, 1, budget=3, force=False)
    with pytest.raises(BudgetExceeded):  # worst case: 1 call with 1 retry = 2 > 1 left
        ledger.check_can_run(1, 2, budget=3, force=False)
    until = ledger.mark_blocked("HTTP 402")
    assert parse_iso(until) > 0 and until.endswith("-01T00:00:00Z")
    with pytest.raises(QuotaBlocked):
        ledger.check_can_run(1, 1, budget=None, force=False)
    ledger.check_can_run(1, 1, budget=None, force=True)
    data = ledger.load()
    assert data.month_requests == 2 and data.by_script == {"s": 2}


def test_ledger_rolls_over_months(tmp_path):
    ledger = RequestLedger(tmp_path)
    ledger.record_attempt("s", budget=None)
    later = parse_iso("2099-01-15T00:00:00Z")
    data = ledger.load(now=later)
    assert data.month == "2099-01" and data.month_requests == 0
    assert sum(data.past_months.values()) == 1


def test_ledger_counts_this_months_calls_by_day(tmp_path):
    """day_requests: added to the ledger later, so an older ledger without it still loads
    (its earlier calls count in month_requests only), and a new month starts it afresh."""
    ledger = RequestLedger(tmp_path)
    old = {"month": utc_iso()[:7], "month_requests": 7, "hour": "x",
           "hour_requests": 0, "by_script": {"s": 7}, "past_months": {}}  # fmt: skip
    ledger.path.write_text(json.dumps(old))
    assert ledger.load().day_requests == {}
    ledger.record_attempt("s", budget=None)
    ledger.record_attempt("t", budget=None)
    data = json.loads(ledger.path.read_bytes())
    assert data["month_requests"] == 9
    assert data["day_requests"] == {data["updated_at"][:10]: 2}
    later = ledger.load(now=parse_iso("2099-01-15T00:00:00Z"))
    assert later.day_requests == {} and later.past_months[old["month"]] == 9
    ledger.path.write_text(json.dumps({**data, "day_requests": {"2026-11-01": "many"}}))
    with pytest.raises(LocalStateError, match="day_requests is not a table of counts"):
        ledger.load()


def test_budget_maths():
    config = Config(profile=PROFILE, out_dir=Path("."), base_url="x", every_min=5)
    plan = budget_plan(config, used=0, at=parse_iso("2026-12-01T00:00:00Z"))
    assert plan.calls_needed_full_month == 17_856 and plan.fits
    assert plan.fastest_cadence_min == 5
    slow = budget_plan(
        Config(profile=PROFILE, out_dir=Path("."), base_url="x", every_min=2),
        used=0,
        at=parse_iso("2026-12-01T00:00:00Z"),
    )
    assert not slow.fits


# --- the client: retry policy ---------------------------------------------------------------


def make_client(url: str, tmp_path: Path, sleeps: list[float], **overrides) -> ApiClient:
    config = Config(
        profile=PROFILE,
        out_dir=tmp_path,
        base_url=url,
        api_key=None,
        max_attempts=overrides.pop("max_attempts", 4),
        min_request_gap_s=0,
        **overrides,
    )
    return ApiClient(config, RequestLedger(tmp_path), Deadline(600), sleep=sleeps.append)


def test_retry_after_is_honoured_and_capped(fake_free, tmp_path):
    sleeps: list[float] = []
    client = make_client(fake_free.url, tmp_path, sleeps)
    fake_free.add_fault("/global", "status", status=429, retry_after="2")
    fake_free.add_fault("/global", "status", status=503, retry_after="86400")
    assert client.get("/global").data["market_cap_usd"] > 0
    assert sleeps == [2.0, 120.0]
    assert client.counter.attempts == 3 and client.counter.retries == 2
    assert RequestLedger(tmp_path).load().month_requests == 3


def test_backoff_without_retry_after_is_jittered_and_bounded(fake_free, tmp_path):
    sleeps: list[float] = []
    client = make_client(fake_free.url, tmp_path, sleeps)
    fake_free.add_fault("/global", "status", status=500, times=-1)
    with pytest.raises(ApiUnavailable):
        client.get("/global")
    assert fake_free.count("/global") == 4 and len(sleeps) == 3
    assert all(0.5 <= s <= 30 for s in sleeps)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ApiDataError),
        (404, ApiDataError),
        (401, AuthOrPlanError),
        (403, AuthOrPlanError),
        (402, AuthOrPlanError),
    ],
)
def test_client_errors_are_never_retried(fake_free, tmp_path, status, error):
    client = make_client(fake_free.url, tmp_path, [])
    fake_free.add_fault("/tickers", "status", status=status)
    with pytest.raises(error) as caught:
        client.get("/tickers")
    assert fake_free.count("/tickers") == 1
    assert str(status) in str(caught.value)


def test_unknown_route_text_404_is_reported(fake_free, tmp_path):
    client = make_client(fake_free.url, tmp_path, [])
    with pytest.raises(ApiDataError, match="404 page not found"):
        client.get("/no-such-route")


# --- history --------------------------------------------------------------------------------------


def commit_for(ts: str, ids: list[str]) -> Commit:
    rows = b"".join(b'{"ts":"%s","id":"%s"}\n' % (ts.encode(), i.encode()) for i in ids)
    summary = {"ts": ts, "snapshot_id": ts, "coin_count": len(ids)}
    return Commit(ts, ts, rows, len(ids), dict.fromkeys(ids, ts), summary)


def test_history_commit_is_idempotent(tmp_path):
    store = HistoryStore(tmp_path)
    assert store.commit(commit_for("2026-11-25T10:00:00Z", ["a", "b"]))
    size = store.files.rows.stat().st_size
    assert not store.commit(commit_for("2026-11-25T10:00:00Z", ["a", "b"]))
    assert store.files.rows.stat().st_size == size


def test_torn_tail_is_cut_and_kept_aside(tmp_path):
    store = HistoryStore(tmp_path)
    store.commit(commit_for("2026-11-25T10:00:00Z", ["a", "b"]))
    with open(store.files.rows, "ab") as handle:
        handle.write(b'{"ts":"2026-11-25T10:30:00Z","id":"a"}\n{"ts":"2026-11-25T1')
    store.commit(commit_for("2026-11-25T11:00:00Z", ["a", "b", "c"]))
    cut = list(store.dir.glob("market_cap_history.jsonl.cut-*"))
    assert len(cut) == 1 and cut[0].read_bytes().startswith(b'{"ts":"2026-11-25T10:30')
    assert len(read_jsonl(store.files.rows)) == 5
    assert check_history(tmp_path, 30).ok


def test_damaged_history_is_refused(tmp_path):
    store = HistoryStore(tmp_path)
    store.commit(commit_for("2026-11-25T10:00:00Z", ["a", "b"]))
    store.files.rows.write_bytes(b"")
    with pytest.raises(HistoryDamaged):
        store.commit(commit_for("2026-11-25T11:00:00Z", ["a"]))


def test_lost_state_is_rebuilt_from_the_files(tmp_path):
    store = HistoryStore(tmp_path)
    store.commit(commit_for("2026-11-25T10:00:00Z", ["a", "b"]))
    store.commit(commit_for("2026-11-25T10:30:00Z", ["a", "b"]))
    with open(store.files.rows, "ab") as handle:
        handle.write(b'{"ts":"2026-11-25T11:00:00Z","id":"a"}\n')  # uncommitted
    store.files.state.unlink()
    state = store.read_state()
    assert state.last_ts == "2026-11-25T10:30:00Z" and state.snapshot_count == 2
    assert store.commit(commit_for("2026-11-25T11:00:00Z", ["a"]))
    report = check_history(tmp_path, 30)
    assert report.ok, report.problems
    assert report.rows == 5


def test_check_history_reports_gaps(tmp_path):
    store = HistoryStore(tmp_path)
    for ts in ("2026-11-25T10:00:00Z", "2026-11-25T10:30:00Z", "2026-11-25T12:00:00Z"):
        store.commit(commit_for(ts, ["a"]))
    report = check_history(tmp_path, 30)
    assert report.ok
    assert report.gaps == [Gap("2026-11-25T10:30:00Z", "2026-11-25T12:00:00Z", 2)]


def test_shared_log_loses_no_lines_across_processes(tmp_path):
    code = """
import logging, sys
from pathlib import Path
from mcap.logsetup import setup_logging
setup_logging(Path(sys.argv[1]), "w" + sys.argv[2], "r", sys.stderr, verbose=False)
for i in range(400):
    logging.getLogger("t").info("line %d %s", i, "x" * 200)
"""
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(n)], cwd=ROOT)
        for n in range(4)
    ]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    lines = (tmp_path / "collection.log").read_bytes().split(b"\n")[:-1]
    assert len(lines) == 1600
    assert all(line.endswith(b"x" * 200) for line in lines)


def test_rebuild_drops_a_snapshot_whose_rows_are_incomplete(tmp_path):
    store = HistoryStore(tmp_path)
    store.commit(commit_for("2026-11-25T10:00:00Z", ["a", "b"]))
    with open(store.files.rows, "ab") as rows, open(store.files.snapshots, "ab") as entries:
        rows.write(b'{"ts":"2026-11-25T10:30:00Z","id":"a"}\n')  # "b" never arrived
        entries.write(b'{"ts":"2026-11-25T10:30:00Z","snapshot_id":"x","coin_count":2}\n')
    store.files.state.unlink()
    assert store.commit(commit_for("2026-11-25T11:00:00Z", ["a", "b"]))
    report = check_history(tmp_path, 30)
    assert report.ok, report.problems
    assert report.snapshots == 2 and report.rows == 4


def test_full_disk_during_append_rolls_back(tmp_path, monkeypatch):
    from mcap.errors import WriteError
    from mcap.history import store as history_module

    store = HistoryStore(tmp_path)
    store.commit(commit_for("2026-11-25T10:00:00Z", ["a", "b"]))
    before = (store.files.rows.read_bytes(), store.files.snapshots.read_bytes())
    calls = {"n": 0}
    real_write_all = history_module.write_all

    def fail_second_half(fd, data):
        calls["n"] += 1
        if calls["n"] == 2:  # first half of the rows went out, then the disk filled up
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(fd, data)

    monkeypatch.setattr(history_module, "write_all", fail_second_half)
    with pytest.raises(WriteError):
        store.commit(commit_for("2026-11-25T10:30:00Z", ["a", "b", "c"]))
    monkeypatch.undo()
    assert (store.files.rows.read_bytes(), store.files.snapshots.read_bytes()) == before
    assert store.commit(commit_for("2026-11-25T10:30:00Z", ["a", "b", "c"]))
    assert check_history(tmp_path, 30).ok


def test_log_rotation_keeps_every_line(tmp_path, monkeypatch):
    import logging

    from mcap import logsetup
    from mcap.redact import set_secret

    monkeypatch.setattr(logsetup, "LOG_MAX_BYTES", 20_000)
    set_secret("sk-SECRET")
    logsetup.setup_logging(tmp_path, "t", "r", sys.stderr, verbose=False)
    logger = logging.getLogger("rotation-test")
    for i in range(3000):
        logger.info("line %05d key=%s", i, "sk-SECRET")
    logging.getLogger().handlers.clear()
    set_secret(None)
    files = sorted(tmp_path.glob("collection.log*"))
    assert len(files) == 1 + logsetup.LOG_BACKUPS
    lines = [ln for f in files for ln in f.read_text().splitlines()]
    kept = sorted(int(ln.split("line ")[1][:5]) for ln in lines)
    assert kept == list(range(3000 - len(kept), 3000))  # the newest lines, none missing
    assert all(f.stat().st_size <= 20_000 + 200 for f in files)
    assert not any("sk-SECRET" in ln for ln in lines) and "<redacted>" in lines[0]


def test_deadline_alarm_is_a_backstop_and_waits_for_a_commit(monkeypatch):
    import signal
    import time

    from mcap import signals
    from mcap.errors import DeadlineExceeded

    monkeypatch.setattr(signals, "DEADLINE_GRACE_S", 0.0)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)}
    guard = signals.SignalGuard()
    try:
        guard.install(0.2)
        with pytest.raises(DeadlineExceeded):
            time.sleep(30)  # a stall no network timeout would catch
        finished = []
        guard.install(0.2)
        with pytest.raises(DeadlineExceeded):
            with guard.critical():
                time.sleep(0.5)  # the alarm fires here, but the commit runs to its end
                finished.append(True)
        assert finished == [True]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in saved.items():
            signal.signal(signum, handler)
