"""Closed days in Parquet: archived by the collectors, exactly once, bit-exact, crash-safe,
queryable together with the plain tail, checkable, and printable back for jq."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mcap.clock import parse_iso
from mcap.formats import history_bytes
from mcap.history import Commit, HistoryStore, check_history
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
    stats_of,
    two_days,
)

S02, S03, S04 = (
    "02_fetch_all_market_caps.py",
    "03_optimized_free_tier_collector.py",
    "04_production_collector.py",
)


@pytest.mark.parametrize("script", [S02, S03, S04])
def test_the_collectors_archive_a_closed_day_exactly_once_and_exactly(fake_small, out, script):
    written, day = two_days(script, fake_small, out)
    archive = out / "history" / "archive" / f"{day}.parquet"
    assert archive.is_file()
    manifest = read_jsonl(out / "history" / "archive" / "manifest.jsonl")
    assert [e["day"] for e in manifest] == [day]
    assert manifest[0]["rows"] == 2 * fake_small.served and manifest[0]["snapshots"] == 2
    # The plain file keeps only the new day; every row is somewhere exactly once.
    assert all(json.loads(line)["ts"] > day for line in plain(out).splitlines())
    assert export(out) == written
    report = check_history(out, 30)
    assert report.ok, report.problems
    assert report.rows == 4 * fake_small.served and report.snapshots == 4
    stats = stats_of(out)
    assert stats["archived_days"] == [] and stats["status"] == "ok"  # archived one run earlier


def test_export_history_prints_a_range_exactly_for_jq(fake_small, out):
    written, day = two_days(S04, fake_small, out)
    result = run(S04, None, None, "--out-dir", str(out), "--export-history", day)
    assert result.returncode == 0, result.stderr
    lines = written.splitlines(keepends=True)
    assert result.stdout.encode() == b"".join(lines[: 2 * fake_small.served])
    piped = subprocess.run(
        f"{sys.executable} {ROOT / S04} --out-dir {out} --export-history 2000-01-01 2999-01-01"
        " | head -1",
        shell=True,
        capture_output=True,
        env=script_env(),
    )
    assert piped.returncode == 0 and piped.stdout == lines[0] and piped.stderr == b""


def _rows(ts: str, coins: list[dict]) -> bytes:
    return history_bytes(coins, ts, ("USD", "EUR"))


ODD_COINS = [
    {"id": "btc-bitcoin", "rank": 1, "circulating_supply": 19912437,
     "quotes": {"USD": {"price": 67432.1587162, "market_cap": 2**53 + 1, "volume_24h": 1e16,
                        "percent_change_24h": -0.0},
                "EUR": {"price": 0.1, "market_cap": 10**30, "volume_24h": 5e-324,
                        "percent_change_24h": None}}},
    {"id": "eth-ethereum", "rank": None,
     "quotes": {"USD": {"price": 1.7976931348623157e308, "market_cap": 0, "volume_24h": 1e-05,
                        "percent_change_24h": 100.0}, "EUR": None}},
    {"id": "日本-coin-🚀", "rank": 2**40,
     "quotes": {"USD": {"price": 3, "market_cap": -12, "volume_24h": 123456789012345678.0,
                        "percent_change_24h": 1e22}}},
    {"id": 'quo"te\\back', "rank": 0, "circulating_supply": 1.5,
     "quotes": {"USD": {"price": None, "market_cap": None}}},
]  # fmt: skip


def _commit(store: HistoryStore, ts: str, coins: list[dict]) -> bytes:
    rows = _rows(ts, coins)
    summary = {"ts": ts, "snapshot_id": ts, "coin_count": len(coins)}
    assert store.commit(Commit(ts, ts, rows, len(coins), {}, summary))
    return rows


def test_every_value_round_trips_bit_exact(tmp_path, clock_at):
    store = HistoryStore(tmp_path)
    written = b"".join(
        _commit(store, ts, ODD_COINS) for ts in ("2026-01-05T10:00:00Z", "2026-01-05T10:30:00Z")
    )
    written += _commit(store, "2026-01-06T00:00:00Z", ODD_COINS[:2])
    clock_at("2026-01-06T12:00:00Z")
    assert store.archive_closed_days() == ["2026-01-05"]
    entry = read_jsonl(tmp_path / "history" / "archive" / "manifest.jsonl")[0]
    assert entry["raw_rows"] == 2 * 2  # 2^53 + 1 and the 40-bit rank cannot be columns
    assert export(tmp_path) == written
    names, rows = query(
        tmp_path, "SELECT id, rank, market_cap_usd, price_eur FROM history ORDER BY ts, id"
    )
    assert {row[0] for row in rows} == {coin["id"] for coin in ODD_COINS}
    assert ("日本-coin-🚀", None, -12.0, None) in rows  # a 40-bit rank: NULL, exact in export
    assert check_history(tmp_path, 30).ok


@pytest.fixture
def clock_at(monkeypatch):
    """Set the clock for code called in this process (it reads the scripts' variable)."""

    def move(iso: str) -> None:
        at(parse_iso(iso))
        monkeypatch.setenv("COLLECTOR_CLOCK_OFFSET_S", str(CLOCK.offset))

    return move


@pytest.mark.parametrize(
    "point", ["archive.before_rename", "archive.before_manifest", "archive.before_cut"]
)
def test_a_kill_while_archiving_loses_nothing(fake_small, out, point):
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
    written = export(out)  # the killed run committed its snapshot before archiving
    assert check_history(out, 30).ok
    CLOCK.tick(600)
    fake_small.advance(300)
    assert collect(S04, fake_small, out).returncode == 0
    report = check_history(out, 30)
    assert report.ok, report.problems
    assert report.rows == 4 * fake_small.served
    assert export(out).startswith(written)
    assert len(read_jsonl(out / "history" / "archive" / "manifest.jsonl")) == 1
    assert not [p for p in (out / "history").rglob("*.tmp")]


def test_the_query_recipe_works_on_a_fresh_install_and_across_archives(fake_small, out):
    fake_small.advance(300)
    assert collect(S04, fake_small, out).returncode == 0  # nothing archived yet
    one = run(S04, None, None, "--out-dir", str(out), "--query",
        "SELECT count(*) AS n FROM history WHERE id = 'btc-bitcoin'",
    )  # fmt: skip
    assert one.returncode == 0 and one.stdout == "n\n1\n", one.stderr
    written, day = two_days(S04, fake_small, out)
    rows = [json.loads(line) for line in (b"".join([written])).splitlines()]
    btc = [(r["ts"], r["market_cap_usd"]) for r in rows if r["id"] == "btc-bitcoin"]
    names, got = query(
        out,
        "SELECT strftime(ts, '%Y-%m-%dT%H:%M:%SZ'), market_cap_usd FROM history "
        "WHERE id = 'btc-bitcoin' ORDER BY ts",
    )
    assert [(ts, int(cap)) for ts, cap in got[-4:]] == btc
    last = rows[-1]["ts"]
    top = sorted((r for r in rows if r["ts"] == last), key=lambda r: -(r["market_cap_usd"] or 0))
    _, got = query(
        out,
        f"SELECT id FROM history WHERE ts = '{last[:-1]}' "
        "ORDER BY market_cap_usd DESC NULLS LAST, id LIMIT 10",
    )
    assert [r[0] for r in got][:3] == [r["id"] for r in top][:3]
    _, totals = query(out, "SELECT count(*), count(coins_market_cap_usd) FROM totals")
    assert totals == [(5, 5)]
    # No day is counted twice, even while the plain file still holds an archived day.
    _, count = query(out, "SELECT count(*) FROM history")
    assert count == [(5 * fake_small.served,)]


def test_docs_show_the_recipe_the_code_runs():
    from mcap.history.query import user_recipe_sql

    docs = (ROOT / "docs" / "queries.md").read_text()
    assert user_recipe_sql() in docs


def _history_over_days(store: HistoryStore, days: list[str], coins: list[dict]) -> bytes:
    return b"".join(
        _commit(store, f"{day}T{hour}:00:00Z", coins) for day in days for hour in ("06", "18")
    )


def test_a_backlog_is_spread_over_runs_within_the_time_budget(tmp_path, clock_at):
    store = HistoryStore(tmp_path)
    days = ["2026-02-01", "2026-02-02", "2026-02-03"]
    written = _history_over_days(store, days, ODD_COINS)
    clock_at("2026-02-10T00:00:00Z")
    runs = [store.archive_closed_days(budget_s=0) for _ in range(4)]
    assert runs == [["2026-02-01"], ["2026-02-02"], ["2026-02-03"], []]
    assert plain(tmp_path) == b"" and export(tmp_path) == written


def test_a_long_plain_file_is_drained_without_rewriting_it_each_day(
    tmp_path, monkeypatch, clock_at
):
    monkeypatch.setattr(cut_module, "CUT_NOW_BYTES", 100)  # "gigabytes" for this test
    store = HistoryStore(tmp_path)
    days = ["2026-03-01", "2026-03-02", "2026-03-03"]
    written = _history_over_days(store, days, ODD_COINS) + _commit(
        store, "2026-03-09T00:00:00Z", ODD_COINS
    )
    clock_at("2026-03-09T12:00:00Z")
    inode = (tmp_path / "history" / "market_cap_history.jsonl").stat().st_ino
    assert store.archive_closed_days(budget_s=0) == ["2026-03-01"]
    state = store.read_state()
    assert state.archived_bytes > 0  # logically archived, not yet cut
    assert (tmp_path / "history" / "market_cap_history.jsonl").stat().st_ino == inode
    _, count = query(tmp_path, "SELECT count(*) FROM history")
    assert count == [(7 * len(ODD_COINS),)]  # the archived day is not counted twice
    assert export(tmp_path) == written and check_history(tmp_path, 30).ok
    monkeypatch.setattr(cut_module, "CUT_NOW_BYTES", 10**9)
    assert store.archive_closed_days() == ["2026-03-02", "2026-03-03"]
    assert store.read_state().archived_bytes == 0
    assert export(tmp_path) == written and check_history(tmp_path, 30).ok


def _older_version_month(out: Path, month: str, next_month: str) -> tuple:
    """Two last days of `month` and a first one of `next_month`, and `month` in a .jsonl.gz
    as an older version wrote it: (store, every line written, the month's lines)."""
    store = HistoryStore(out)
    written = _history_over_days(store, [f"{month}-29", f"{month}-30"], ODD_COINS)
    written += _commit(store, f"{next_month}-01T06:00:00Z", ODD_COINS)
    lines = written[: written.index(f'{{"ts":"{next_month}'.encode())]
    legacy = out / "history" / f"market_cap_history-{month}.jsonl.gz"
    legacy.write_bytes(gzip.compress(lines))
    return store, written, lines


def test_legacy_monthly_gzip_archives_are_converted_once_and_verified(tmp_path, clock_at):
    store, written, april = _older_version_month(tmp_path, "2026-04", "2026-05")
    # What an older version left: April moved to a gzip archive, the plain file cut.
    history = tmp_path / "history"
    (history / "market_cap_history.jsonl").write_bytes(written[len(april) :])
    state = json.loads((history / ".state.json").read_bytes())
    state["history_size"] -= len(april)
    (history / ".state.json").write_text(json.dumps(state))
    assert export(tmp_path) == written and check_history(tmp_path, 30).ok
    clock_at("2026-05-01T12:00:00Z")
    assert store.archive_closed_days(budget_s=0) == ["2026-04-29"]
    assert (history / "market_cap_history-2026-04.jsonl.gz").exists()  # half converted
    assert export(tmp_path) == written and check_history(tmp_path, 30).ok
    assert store.archive_closed_days() == ["2026-04-30"]
    assert not (history / "market_cap_history-2026-04.jsonl.gz").exists()
    assert export(tmp_path) == written and check_history(tmp_path, 30).ok


def test_a_flipped_byte_in_an_archive_is_found(fake_small, out):
    two_days(S04, fake_small, out)
    archive = next((out / "history" / "archive").glob("2*.parquet"))
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    result = run(S04, None, None, "--out-dir", str(out), "--check-history")
    assert result.returncode == 65 and "SHA-256" in result.stdout


def test_a_lost_state_is_rebuilt_once_with_the_archives(fake_small, out):
    written, _ = two_days(S04, fake_small, out)
    (out / "history" / ".state.json").unlink()
    CLOCK.tick(600)
    fake_small.advance(300)
    assert collect(S04, fake_small, out).returncode == 0
    log = (out / "collection.log").read_text()
    assert log.count("rebuilding it from") == 1
    assert export(out).startswith(written) and check_history(out, 30).ok


def test_the_docs_sql_runs_on_archives_and_the_plain_tail(fake_small, out):
    import re

    import duckdb

    two_days(S04, fake_small, out)
    text = (ROOT / "docs" / "queries.md").read_text()
    statements = [
        statement.strip()
        for block in re.findall(r"```sql\n(.*?)```", text, re.DOTALL)
        for statement in block.split(";\n")
        if statement.strip() and not statement.strip().startswith("--") or "SELECT" in statement
    ]
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{out}'")
    results = [con.execute(statement).fetchall() for statement in statements]
    selects = [
        r for st, r in zip(statements, results, strict=True) if st.startswith(("SELECT", "--"))
    ]
    assert len(statements) >= 5 and len(selects) >= 3 and all(selects)  # every question answers
    coin = next(r for s, r in zip(statements, results, strict=True) if "btc-bitcoin" in s)
    assert len(coin) == 4  # two archived snapshots and two plain ones
    # The recipe answers as --query does, for every question of the docs.
    for statement, result in zip(statements, results, strict=True):
        if statement.startswith(("SELECT", "--")) and "FROM" in statement:
            assert query(out, statement)[1] == result, statement


def test_a_monthly_compaction_interrupted_by_an_older_version_is_finished(tmp_path, clock_at):
    # An older version wrote June's .jsonl.gz and was killed before cutting the plain file.
    store, written, june = _older_version_month(tmp_path, "2026-06", "2026-07")
    history = tmp_path / "history"
    state = json.loads((history / ".state.json").read_bytes())
    state["pending_compaction"] = ["2026-06"]
    (history / ".state.json").write_text(json.dumps(state))
    clock_at("2026-07-01T12:00:00Z")
    assert store.archive_closed_days() == ["2026-06-29", "2026-06-30"]
    assert plain(tmp_path) == written[len(june) :]
    assert not (history / "market_cap_history-2026-06.jsonl.gz").exists()
    assert export(tmp_path) == written and check_history(tmp_path, 30).ok


def test_status_shows_the_archive_and_flags_a_backlog(fake_small, out, tmp_path):
    written, day = two_days(S04, fake_small, out)
    status = run(S04, None, None, "--out-dir", str(out), "--status")
    assert f"Archive: 1 day(s) in Parquet ({day} … {day})" in status.stdout
    assert "archiving is behind" not in status.stdout
    behind = tmp_path / "behind"
    behind.mkdir()
    _history_over_days(HistoryStore(behind), ["2026-08-01"], ODD_COINS)
    at(parse_iso("2026-08-05T00:00:00Z"))
    status = run(S04, None, None, "--out-dir", str(behind), "--status")
    assert status.returncode == 1
    assert "archiving is behind: the plain file still starts at 2026-08-01" in status.stdout


def test_check_history_names_a_years_archives_as_a_span():
    from mcap.views import files_text

    year = [f"archive/2026-{m:02d}-{d:02d}.parquet" for m in range(1, 13) for d in (1, 15)]
    assert files_text([*year, "market_cap_history.jsonl"]) == (
        "24 archive files, archive/2026-01-01.parquet … archive/2026-12-15.parquet, "
        "market_cap_history.jsonl"
    )
    few = ["archive/2026-11-24.parquet", "archive/2026-11-25.parquet", "market_cap_history.jsonl"]
    assert files_text(few) == ", ".join(few)
    assert files_text([]) == "no files"
