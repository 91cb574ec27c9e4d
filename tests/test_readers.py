"""What you read back is what was committed: the views through the one reader of record.

Each test is one rule of the reader: committed sizes only, archives only as the manifest
lists them and as they were verified, no day missing or twice while a collector archives,
the out-dir's files exactly, a read-only single SELECT, checked arguments, true coverage.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcap.clock import parse_iso, utc_iso
from mcap.errors import HistoryDamaged
from mcap.formats import history_bytes
from mcap.history import Commit, HistoryStore, TimeRange, check_history, export_lines, open_picture
from mcap.history import cut as cut_module
from tests.conftest import (
    CLOCK,
    ROOT,
    at,
    collect,
    export,
    next_midnight,
    plain,
    query,
    read_jsonl,
    run,
    script_env,
    tree_digest,
    two_days,
)

S04 = "04_production_collector.py"


def view(out: Path, *args: str, cwd: Path | None = None):
    return run(S04, None, None, "--out-dir", str(out), *args, cwd=cwd)


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def manifest_path(out: Path) -> Path:
    return out / "history" / "archive" / "manifest.jsonl"


def archive_of(out: Path, day: str) -> Path:
    return out / "history" / "archive" / f"{day}.parquet"


# --- a small history built in this process (odd coins, several days) ----------------------

COINS = [
    {"id": "btc-bitcoin", "rank": 1, "circulating_supply": 19912437,
     "quotes": {"USD": {"price": 67432.1587162, "market_cap": 2**53 + 1, "volume_24h": 1e16,
                        "percent_change_24h": -0.0}}},
    {"id": "eth-ethereum", "rank": 2,
     "quotes": {"USD": {"price": 3521.42, "market_cap": 0, "volume_24h": 1e-05,
                        "percent_change_24h": 100.0}}},
    {"id": "日本-coin-🚀", "rank": 3,
     "quotes": {"USD": {"price": 3, "market_cap": -12, "volume_24h": None,
                        "percent_change_24h": 1e22}}},
    {"id": 'quo"te\\back', "rank": 0, "quotes": {"USD": {"price": None, "market_cap": None}}},
]  # fmt: skip


def small_history(
    out: Path, days: list[str], coins: list[dict] = COINS, archive_at: str | None = "last"
) -> bytes:
    """Two snapshots a day, committed, then the closed days archived; every line written."""
    store = HistoryStore(out)
    written = b""
    for day in days:
        for hour in ("06", "18"):
            ts = f"{day}T{hour}:00:00Z"
            rows = history_bytes(coins, ts, ("USD",))
            summary = {"ts": ts, "snapshot_id": ts, "coin_count": len(coins), "market_cap_usd": 1}
            assert store.commit(Commit(ts, ts, rows, len(coins), {}, summary))
            written += rows
    if archive_at is not None:
        with clock_at(f"{days[-1]}T12:00:00Z" if archive_at == "last" else archive_at):
            store.archive_closed_days()
    return written


@contextlib.contextmanager
def clock_at(iso: str) -> Iterator[None]:
    """This process's clock (and the scripts') at `iso` for the block."""
    at(parse_iso(iso))
    saved = os.environ.get("COLLECTOR_CLOCK_OFFSET_S")
    os.environ["COLLECTOR_CLOCK_OFFSET_S"] = str(CLOCK.offset)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("COLLECTOR_CLOCK_OFFSET_S")
        else:
            os.environ["COLLECTOR_CLOCK_OFFSET_S"] = saved


# --- 1. one reader of record -----------------------------------------------------------------


def test_a_clock_stepped_back_into_an_archived_day_is_refused_before_any_request(fake_small, out):
    midnight = next_midnight()
    at(midnight - 600)
    fake_small.advance(300)
    assert collect(S04, fake_small, out).returncode == 0
    at(midnight + 120)  # data unchanged: the run skips, but archives the day that ended
    skipped = collect(S04, fake_small, out)
    assert skipped.returncode == 0 and "unchanged" in skipped.stdout, skipped.stdout
    day = utc_iso(midnight - 600)[:10]
    assert archive_of(out, day).is_file()
    written = export(out)
    at(midnight - 120)  # the clock steps back across midnight, into the archived day
    fake_small.advance(300)
    fake_small.reset_requests()
    refused = collect(S04, fake_small, out)
    assert refused.returncode == 74, refused.stderr
    assert "already archived" in one_line(refused) and fake_small.count() == 0
    assert read_jsonl(out / "history" / "gaps.jsonl")[-1]["exit_code"] == 74
    at(midnight + 900)
    assert collect(S04, fake_small, out).returncode == 0
    assert export(out).startswith(written) and check_history(out, 30).ok


def test_a_snapshot_an_older_version_committed_into_an_archived_day_is_never_lost(
    tmp_path, monkeypatch
):
    written = small_history(tmp_path, ["2026-02-01"], archive_at="2026-02-02T00:02:00Z")
    assert archive_of(tmp_path, "2026-02-01").is_file()
    # What an older version did after the clock stepped back: commit into the archived day.
    store = HistoryStore(tmp_path)
    monkeypatch.setattr(HistoryStore, "archived_last_day", lambda self: None)
    ts = "2026-02-01T23:58:00Z"
    extra = history_bytes(COINS, ts, ("USD",))
    assert store.commit(Commit(ts, ts, extra, len(COINS), {}, {"ts": ts, "coin_count": 4}))
    monkeypatch.undo()
    with clock_at("2026-02-02T12:00:00Z"):
        store.archive_closed_days()  # a piece of its own: nothing is cut that no archive holds
    assert (tmp_path / "history" / "archive" / "2026-02-01.1.parquet").is_file()
    result = view(tmp_path, "--export-history", "2026-02-01")
    assert result.returncode == 0 and result.stdout.encode() == written + extra
    assert check_history(tmp_path, 30).ok


def test_a_torn_manifest_line_is_repaired_never_glued(fake_small, out):
    written, day = two_days(S04, fake_small, out)
    manifest = manifest_path(out)
    good = manifest.read_bytes()
    next_day = utc_iso(parse_iso(f"{day}T00:00:00Z") + 86400)[:10]
    torn = b'{"day":"%s","part":0,"file":"%s.parquet","first_ts":"' % (
        next_day.encode(),
        next_day.encode(),
    )
    manifest.write_bytes(good + torn)  # what a full disk or a power cut leaves
    status = view(out, "--status")
    assert status.returncode == 1 and "torn" in status.stdout.splitlines()[-1]
    assert export(out) == written  # the torn line lists nothing: its day is still plain
    assert view(out, "--check-history").returncode == 65
    at(parse_iso(f"{next_day}T00:00:00Z") + 86400 + 600)
    fake_small.advance(300)
    assert collect(S04, fake_small, out).returncode == 0
    entries = read_jsonl(manifest)  # every line parses: nothing was glued
    assert [e["day"] for e in entries] == [day, next_day]
    assert list((out / "history" / "archive").glob("manifest.jsonl.cut-*"))
    assert export(out).startswith(written) and check_history(out, 30).ok
    assert query(out, "SELECT count(DISTINCT ts) FROM history")[1] == [(5,)]


def test_an_entry_an_older_version_glued_onto_a_torn_line_is_recovered(fake_small, out):
    written, day = two_days(S04, fake_small, out)
    manifest = manifest_path(out)
    manifest.write_bytes(b'{"day":"2026-01-01","part":0,"fi' + manifest.read_bytes())
    assert export(out) == written
    assert query(out, "SELECT count(*) FROM history")[1] == [(4 * fake_small.served,)]
    status = view(out, "--status")
    assert status.returncode == 1 and "glued" in status.stdout
    CLOCK.tick(600)
    fake_small.advance(300)
    assert collect(S04, fake_small, out).returncode == 0
    assert [e["day"] for e in read_jsonl(manifest)] == [day]  # rewritten whole
    assert check_history(out, 30).ok


def test_a_damaged_manifest_line_stops_every_view_with_one_line(fake_small, out):
    two_days(S04, fake_small, out)
    manifest = manifest_path(out)
    manifest.write_bytes(manifest.read_bytes().replace(b'"rows":', b'"rows":"x",', 1))
    for args in (("--export-history", "2000-01-01", "2999-01-01"), ("--query", "SELECT 1")):
        result = view(out, *args)
        assert result.returncode == 74 and result.stdout == ""
        assert "manifest.jsonl: line 1 is damaged" in one_line(result)
    assert view(out, "--status").returncode == 1
    assert view(out, "--check-history").returncode == 65


def test_query_reads_the_out_dir_whatever_the_working_directory(fake_small, tmp_path):
    out, project = tmp_path / "data", tmp_path / "project"
    project.mkdir()
    two_days(S04, fake_small, out)
    for _ in range(3):  # the quick start's history in the working directory: other rows
        CLOCK.tick(600)
        fake_small.advance(300)
        assert run(S04, None, None, "--base-url", fake_small.url, "--min-interval", "0",
                          cwd=project).returncode == 0  # fmt: skip
    own = query(out, "SELECT count(*) FROM history")[1][0][0]
    result = view(out, "--query", "SELECT count(*) AS n, count(DISTINCT ts) AS s FROM history",
                  cwd=project)  # fmt: skip
    assert result.stdout == f"n,s\n{own},4\n", result.stderr
    totals = view(out, "--query", "SELECT count(*) AS n FROM totals", cwd=project)
    assert totals.stdout == "n\n4\n"


ODD_NAMES = [
    ("data*", "dataX"), ("prices,eur", "prices"), ("back\\slash", "back"), ("two words", "two"),
    ("quo'te\"s", "quo"), ("new\nline", "new"), ("br[ack]et", "bracket"), ("q?mark", "qXmark"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "sibling"), ODD_NAMES, ids=[n for n, _ in ODD_NAMES])
def test_an_out_dir_with_glob_or_list_characters_reads_its_own_files(tmp_path, name, sibling):
    out = tmp_path / name
    written = small_history(out, ["2026-03-01", "2026-03-02"])
    small_history(tmp_path / sibling, ["2026-03-01", "2026-03-02", "2026-03-03"], COINS[:2])
    for extra in ("eur", "prices"):  # siblings a comma-split path would name
        if not (tmp_path / extra).exists():
            small_history(tmp_path / extra, ["2026-03-01"], COINS[:1], archive_at=None)
    result = view(out, "--query", "SELECT count(*) AS n, count(DISTINCT ts) AS s FROM history")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "n,s\n16,4\n"
    exported = view(out, "--export-history", "2026-03-01", "2026-03-02")
    assert exported.returncode == 0 and exported.stdout.encode() == written
    assert view(out, "--check-history").returncode == 0


def test_a_reader_mid_read_sees_the_history_before_the_switch(fake_small, out, monkeypatch):
    monkeypatch.setattr(cut_module, "SWITCH_WAIT_S", 0.3)
    midnight = next_midnight()
    at(midnight - 1200)
    for _ in range(2):
        fake_small.advance(300)
        assert collect(S04, fake_small, out).returncode == 0
        CLOCK.tick(600)
    before = plain(out)
    at(midnight + 300)
    with open_picture(out) as picture:
        chunks = export_lines(picture, TimeRange.parse("2000-01-01", "2999-12-31"))
        first = next(chunks)
        fake_small.advance(300)
        run = collect(S04, fake_small, out)  # commits, converts; the switch waits for the reader
        assert run.returncode == 0, run.stderr
        assert first + b"".join(chunks) == before
    assert not (out / "history" / "archive" / f"{utc_iso(midnight - 1200)[:10]}.parquet").exists()
    CLOCK.tick(600)
    fake_small.advance(300)
    assert collect(S04, fake_small, out).returncode == 0  # no reader now: archived and cut
    day = utc_iso(midnight - 1200)[:10]
    assert archive_of(out, day).is_file() and not plain(out).startswith(before[:40])
    assert export(out).startswith(before)
    assert query(out, "SELECT count(*) FROM history")[1] == [(4 * fake_small.served,)]
    assert check_history(out, 30).ok


@pytest.mark.parametrize(
    "point",
    ["archive.before_rename", "archive.before_manifest", "archive.before_state",
     "archive.before_cut"],
)  # fmt: skip
def test_after_a_kill_at_any_step_of_the_archive_commit_every_row_reads_once(
    fake_small, out, point
):
    midnight = next_midnight()
    at(midnight - 900)
    for _ in range(2):
        fake_small.advance(300)
        assert collect(S04, fake_small, out).returncode == 0
        CLOCK.tick(300)
    at(midnight + 300)
    fake_small.advance(300)
    killed = collect(S04, fake_small, out, env={"COLLECTOR_CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL
    rows = 3 * fake_small.served
    assert query(out, "SELECT count(*), count(DISTINCT ts) FROM history")[1] == [(rows, 3)]
    lines = export(out).splitlines()
    assert len(lines) == rows and len(set(lines)) == rows
    assert view(out, "--export-history", "2000-01-01", "2999-01-01").returncode == 0


def test_query_never_shows_an_uncommitted_snapshot(fake_small, out):
    fake_small.advance(300)
    assert collect(S04, fake_small, out).returncode == 0
    CLOCK.tick(600)
    fake_small.advance(300)
    killed = collect(S04, fake_small, out, env={"COLLECTOR_CRASH_AT": "history.before_commit"})
    assert killed.returncode == -signal.SIGKILL  # rows and snapshot line appended, uncommitted
    with open(out / "history" / "market_cap_history.jsonl", "ab") as handle:
        handle.write(b'{"ts":"2099-01-01T00:00:00Z","id":"torn')  # and a torn tail
    result = view(out, "--query", "SELECT count(*) AS n, count(DISTINCT ts) AS s FROM history")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"n,s\n{fake_small.served},1\n"
    assert view(out, "--query", "SELECT count(*) AS n FROM totals").stdout == "n\n1\n"
    assert len(export(out).splitlines()) == fake_small.served


# --- 3. archives trusted only when verified ------------------------------------------------


def _flip(path: Path, at_fraction: float) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at_fraction)] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_day_file_is_refused_by_every_view(fake_small, out):
    _, day = two_days(S04, fake_small, out)
    _flip(archive_of(out, day), 0.5)
    export_result = view(out, "--export-history", "2000-01-01", "2999-01-01")
    assert export_result.returncode == 74 and export_result.stdout == ""
    assert f"archive/{day}.parquet" in one_line(export_result)
    status = view(out, "--status")
    assert status.returncode == 1 and f"{day}.parquet" in status.stdout.splitlines()[-1]
    assert view(out, "--check-history").returncode == 65
    _flip(archive_of(out, day), 0.999)  # the footer too: --query checks size and footer
    queried = view(out, "--query", "SELECT count(*) FROM history")
    assert queried.returncode == 74 and queried.stdout == ""
    assert f"archive/{day}.parquet" in one_line(queried)


@pytest.mark.parametrize("damage", ["deleted", "truncated", "replaced"])
def test_a_missing_or_changed_day_file_gives_no_partial_answer(fake_small, out, damage):
    _, day = two_days(S04, fake_small, out)
    path = archive_of(out, day)
    if damage == "deleted":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    else:
        shutil.copy(out / "history" / "archive" / "schema.parquet", path)
    for args in (("--query", "SELECT count(*) FROM history"),
                 ("--export-history", "2000-01-01", "2999-01-01")):  # fmt: skip
        result = view(out, *args)
        assert result.returncode == 74 and result.stdout == "", (args, result.stderr)
        assert f"archive/{day}.parquet" in one_line(result)
    assert view(out, "--status").returncode == 1
    assert view(out, "--check-history").returncode == 65


def test_a_stray_file_in_archive_is_reported_and_never_counted(fake_small, out):
    _, day = two_days(S04, fake_small, out)
    archive = out / "history" / "archive"
    shutil.copy(archive_of(out, day), archive / f"{day} (copy).parquet")
    (archive / "notes.txt").write_text("mine")
    assert query(out, "SELECT count(*) FROM history")[1] == [(4 * fake_small.served,)]
    status = view(out, "--status")
    assert f"{day} (copy).parquet is not an archive file" in status.stdout
    check = view(out, "--check-history")
    assert check.returncode == 0 and "notes.txt" in check.stdout


def test_the_plain_head_is_cut_only_when_its_archive_is_verified(tmp_path, monkeypatch):
    monkeypatch.setattr(cut_module, "CUT_NOW_BYTES", 10)  # the cut waits for a later run
    written = small_history(tmp_path, ["2026-04-01", "2026-04-02"])
    store = HistoryStore(tmp_path)
    assert store.read_state().archived_bytes > 0
    _flip(archive_of(tmp_path, "2026-04-01"), 0.5)
    monkeypatch.setattr(cut_module, "CUT_NOW_BYTES", 10**9)
    with clock_at("2026-04-02T13:00:00Z"), pytest.raises(HistoryDamaged, match="changed"):
        store.archive_closed_days()
    assert plain(tmp_path) == written  # nothing cut: the rows are still there


# --- 5. --query is read-only, single-statement and bounded --------------------------------

REFUSED = [
    "COPY (SELECT 1) TO 'history/snapshots.jsonl'",
    "ATTACH 'other.db'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "CREATE TABLE t AS SELECT 1",
    "SET memory_limit = '8GB'",
    "PRAGMA version",
    "SELECT 1; SELECT 2",
    "DROP VIEW history",
    "EXPLAIN SELECT 1",
    "",
    "   ",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv('history/market_cap_history.jsonl')",
    "SELECT * FROM query('COPY (SELECT 1) TO ''x.csv''')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_query_runs_one_select_or_nothing(fake_small, out, sql):
    fake_small.advance(300)
    assert collect(S04, fake_small, out).returncode == 0
    before = tree_digest(out)
    fake_small.reset_requests()
    result = run(
        S04, None, None, "--base-url", fake_small.url, "--out-dir", str(out), "--query", sql
    )
    assert result.returncode == 2, (sql, result.stdout, result.stderr)
    assert result.stdout == "" and "query" in one_line(result)
    assert fake_small.count() == 0  # never a collection
    assert tree_digest(out) == before
    assert not list(Path(ROOT).glob("x.csv")) and not (out / "x.csv").exists()


def test_query_streams_to_a_reader_that_stops_early(fake_small, out):
    two_days(S04, fake_small, out)
    piped = subprocess.run(
        f"{sys.executable} {ROOT / S04} --out-dir {out} --query 'SELECT * FROM history' | head -2",
        shell=True, capture_output=True, env=script_env(),
    )  # fmt: skip
    assert piped.returncode == 0 and piped.stderr == b"" and len(piped.stdout.splitlines()) == 2


def test_an_empty_answer_says_so(fake_small, out):
    fake_small.advance(300)
    assert collect(S04, fake_small, out).returncode == 0
    empty = view(out, "--export-history", "2001-01-01", "2001-12-31")
    assert empty.returncode == 0 and empty.stdout == ""
    expected = "no snapshot rows between 2001-01-01T00:00:00Z and 2001-12-31T23:59:59Z"
    assert expected in one_line(empty)
    assert "history starts" in empty.stderr
    none = view(out, "--query", "SELECT * FROM history WHERE id = 'nope'")
    assert none.returncode == 0 and none.stdout.count("\n") == 1
    assert "no rows" in one_line(none)


@pytest.mark.parametrize(
    "args",
    [["2026-13-45"], ["2026-02-30"], ["2026-11-20T25:61:61Z"], ["2026-11-21", "2026-11-20"],
     ["2026-11-20", "2026-11-21", "2026-11-22"], [""], ["2026-1-5"], []],
)  # fmt: skip
def test_export_history_arguments_are_checked(tmp_path, args):
    (tmp_path / "history").mkdir()
    result = view(tmp_path, "--export-history", *args)
    assert result.returncode == 2 and result.stdout == ""
    assert "--export-history" in one_line(result) or "FROM" in one_line(result)


# --- 6. --status tells the truth about coverage --------------------------------------------


def test_status_counts_every_empty_slot_of_the_last_day(fake_small, out):
    now = (time.time() // 1800 + 2) * 1800  # a slot boundary ahead of the test clock
    for step in range(16):  # every 30 min from 32.5 h to 25 h before now: before the window
        at(now - 32.5 * 3600 + step * 1800 + 5)
        fake_small.advance(300)
        assert collect(S04, fake_small, out).returncode == 0
    for step in range(4):  # then the last 2 hours
        at(now - 2 * 3600 + step * 1800 + 5)
        fake_small.advance(300)
        assert collect(S04, fake_small, out).returncode == 0
    at(now + 60)
    status = view(out, "--status", "--every", "30")
    assert status.returncode == 1
    lines = status.stdout.splitlines()
    day = next(line for line in lines if line.startswith("Last 24 h"))
    # 48 slots: 4 hold a snapshot, the newest one's run is not due yet (a minute late), and
    # 43 belong to the gap that began 25 h ago.
    assert day.startswith("Last 24 h: 43 of 48 slots without a snapshot"), day
    gaps = [line for line in lines if line.startswith("  gap ")]
    assert f"{len(gaps)} gap(s)" in day
    recorded = [g for g in read_jsonl(out / "history" / "gaps.jsonl") if g["type"] == "gap"]
    listed = {(line.split()[1], line.split()[3].rstrip(":")) for line in gaps}
    assert recorded and {(g["from"], g["to"]) for g in recorded} <= listed
    health = lines[-1]
    assert health.startswith("Health: UNHEALTHY — coverage") and len(health) <= 200
    assert view(out, "--status", "--every", "30", "--min-coverage", "5").returncode == 0


def test_the_unhealthy_line_is_one_short_line_with_the_worst_problem(fake_small, out):
    _, day = two_days(S04, fake_small, out)
    archive_of(out, day).unlink()
    (out / "latest_stats.json").write_text(
        json.dumps({"status": "failed", "exit_code": 69, "error": "x" * 500})
    )
    status = view(out, "--status")
    health = status.stdout.splitlines()[-1]
    assert status.returncode == 1 and len(health) <= 200
    assert f"{day}.parquet" in health and "more above" in health
    assert "Problem: last run failed" in status.stdout


# --- 7. also found on the way -------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["br", "zstd"])
def test_an_encoding_the_client_cannot_decode_is_unusable_data_after_one_request(
    fake_free, out, encoding
):
    fake_free.add_fault("/tickers", "body", times=-1, body=b"\x8b\x00garbage",
                       content_type="application/json")  # fmt: skip
    # The fake's body fault sends no Content-Encoding; patch one in through the raw writer.
    original = fake_free._write

    def with_encoding(h, status, data, ctype, gz=False, extra=None, length=None):
        original(h, status, data, ctype, gz, {**(extra or {}), "Content-Encoding": encoding},
                 length)  # fmt: skip

    fake_free._write = with_encoding
    try:
        result = collect(S04, fake_free, out)
    finally:
        fake_free._write = original
    assert result.returncode == 65, result.stderr
    assert encoding in one_line(result) and fake_free.count("/tickers") == 1


def test_a_key_too_short_to_be_a_key_is_refused(tmp_path):
    result = run(S04, None, None, "--out-dir", str(tmp_path), env={"COINPAPRIKA_API_KEY": "abc"})
    assert result.returncode == 2 and "too short" in one_line(result)
    assert "abc" not in result.stderr


def test_the_quick_start_keeps_data_out_of_the_source_tree():
    readme = (ROOT / "README.md").read_text()
    assert "uv run 02_fetch_all_market_caps.py --out-dir data" in readme
    ignored = subprocess.run(["git", "check-ignore", "-q", "data/x.json"], cwd=ROOT)
    assert ignored.returncode == 0


def test_an_older_versions_manifest_is_read_and_upgraded(fake_small, out):
    written, day = two_days(S04, fake_small, out)
    manifest = manifest_path(out)
    old_keys = ("day", "file", "rows", "snapshots", "raw_rows", "bytes", "file_sha256",
                "source_sha256", "source", "archived_at")  # fmt: skip
    entries = [{k: e[k] for k in old_keys} for e in read_jsonl(manifest)]
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert export(out) == written
    assert query(out, "SELECT count(*) FROM history")[1] == [(4 * fake_small.served,)]
    assert view(out, "--status").returncode == 0 and check_history(out, 30).ok
    at(parse_iso(f"{day}T00:00:00Z") + 2 * 86400 + 300)  # a run that archives the next day
    fake_small.advance(300)
    assert collect(S04, fake_small, out).returncode == 0
    upgraded = read_jsonl(manifest)
    assert [e["day"] for e in upgraded][0] == day and all(e["tail_sha256"] for e in upgraded)
    assert export(out).startswith(written) and check_history(out, 30).ok
