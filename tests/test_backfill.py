"""05_backfill_history.py end to end against the fake's /tickers/{id}/historical: exactly the
API's values, once; the plan's windows before any call and as refusals; the quota's reserve;
--max-calls and resuming; kills; the pace; the views over both sources."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mcap.backfill_tasks import reserve_calls
from mcap.clock import parse_iso
from tests.conftest import (
    CLOCK,
    S02,
    S04,
    S05,
    one_error_line,
    query,
    read_jsonl,
    run,
    spawn,
    sync_historical,
    tmpfs,
)

DAY = 86400
STATS = "backfill_stats.json"


def first_snapshot(api, out: Path, key: bool = False) -> list[dict]:
    """02 once: the universe 05 fills by default. Its coins, by rank."""
    sync_historical(api)
    result = run(S02, api, out, "--quiet", key=key)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "market_cap_snapshot.json").read_bytes())["coins"]


def backfill(api, out: Path, *args: str, key: bool = False, **kwargs):
    sync_historical(api)
    return run(S05, api, out, "--rate", "10", *args, key=key, **kwargs)


def points_of(out: Path) -> list[dict]:
    """Every backfilled point through the reader of record (--export-history --source)."""
    result = run(S04, None, None, "--out-dir", str(out), "--export-history", "2000-01-01",
                 "2999-12-31", "--source", "historical")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def expected_points(api, coins: list[str], days: int, interval: str = "1d") -> dict:
    """(ts, id) → (price, market cap, volume) the API serves over the asked span."""
    now = time.time() + CLOCK.offset
    start = now - days * DAY if days else now - 365 * DAY + 3600
    found = {}
    for coin in coins:
        for point in api.historical_series(coin, start, None, interval):
            ts = point["timestamp"][:19] + "Z"
            found[(ts, coin)] = (point["price"], point["market_cap"], point["volume_24h"])
    return found


def stored(points: list[dict]) -> dict:
    return {(p["ts"], p["id"]): (p["price_usd"], p["market_cap_usd"], p["volume_24h_usd"])
            for p in points}  # fmt: skip


def stats(out: Path) -> dict:
    return json.loads((out / STATS).read_bytes())


def test_a_backfill_stores_exactly_what_the_api_sent_once(fake_free, out):
    coins = first_snapshot(fake_free, out)
    ids = [c["id"] for c in coins[:12]] + sorted(fake_free.historical_nasty.values())
    result = backfill(fake_free, out, "--coins", ",".join(ids))
    assert result.returncode == 0, result.stderr
    points = points_of(out)
    want = expected_points(fake_free, ids, 0)
    assert len(points) == len(want) > 12 * 300
    assert stored(points) == want  # every value as sent: a cap beyond 2**53, a price of 1e-08
    assert any(cap > 2**53 for _, cap, _ in want.values())
    assert [(p["ts"], p["id"]) for p in points] == sorted((p["ts"], p["id"]) for p in points)
    figures = stats(out)["backfill"]
    assert figures["calls"] == len(ids) == fake_free.count_historical()
    assert figures["points_added"] == len(want) and figures["coins_filled"] == len(ids)
    assert "Backfilled" in result.stdout and f"{len(want):,} point(s)" in result.stdout
    assert json.loads((out / "latest_stats.json").read_bytes())["script"] == S02[:-3]
    # A second run over the same range asks nothing.
    again = backfill(fake_free, out, "--coins", ",".join(ids))
    assert again.returncode == 0 and "Nothing to fetch" in again.stdout
    assert fake_free.count_historical() == len(ids)
    check = run(S04, None, None, "--out-dir", str(out), "--check-history")
    assert check.returncode == 0 and "every backfilled point once" in check.stdout


def test_the_views_show_both_sources(fake_free, out):
    coins = first_snapshot(fake_free, out)
    top = coins[0]["id"]
    assert backfill(fake_free, out, "--coins", top, "--days", "10").returncode == 0
    names, rows = query(out, f"SELECT source, count(*), count(rank) FROM history "
                             f"WHERE id = '{top}' GROUP BY ALL ORDER BY 1")  # fmt: skip
    assert rows == [("historical", 10, 0), ("snapshot", 1, 1)]
    _, totals = query(out, "SELECT source, count(*), count(market_cap_usd), max(coin_count) "
                           "FROM totals GROUP BY ALL ORDER BY 1")  # fmt: skip
    assert totals == [("historical", 10, 0, 1), ("snapshot", 1, 1, len(coins))]
    status = run(S04, None, None, "--out-dir", str(out), "--status")
    assert "Backfilled: 10 point(s)" in status.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--interval", "5m"), "no 5-minute points"),
        (("--days", "400"), "daily points for the last 365 days"),
        (("--interval", "1h", "--days", "3"), "hourly points for the last 1 day"),
    ],
)
def test_what_the_plan_cannot_serve_is_refused_before_any_call(fake_free, out, args, says):
    first_snapshot(fake_free, out)
    result = backfill(fake_free, out, *args)
    assert result.returncode == 2 and says in one_error_line(result)
    assert fake_free.count_historical() == 0


def test_unknown_options_values_are_usage_errors(fake_free, out):
    for args in (("--rate", "11"), ("--interval", "2d"), ("--tier", "gold"), ("--max-calls", "0")):
        result = run(S05, fake_free, out, *args)
        assert result.returncode == 2 and "error:" in one_error_line(result), args
    assert run(S05, fake_free, out, "--coins", "top:x").returncode == 2
    assert "02_fetch_all_market_caps.py first" in one_error_line(run(S05, fake_free, out))


@pytest.mark.parametrize("status", [402, 400])
def test_a_window_refusal_narrows_the_window_and_never_blocks(fake_paid, out, status):
    """The key's plan reaches a year back, but --tier says 5 years: the API refuses."""
    fake_paid.tier, fake_paid.window_status = "free", status
    top = [c["id"] for c in first_snapshot(fake_paid, out, key=True)[:3]]
    result = backfill(fake_paid, out, "--coins", ",".join(top), "--tier", "starter", key=True)
    assert result.returncode == 0, result.stderr
    assert "refused by the plan: HTTP" in result.stdout
    ledger = json.loads((out / "request_ledger.json").read_bytes())
    assert ledger.get("blocked_until") is None
    assert fake_paid.count_historical() == len(top) + 1  # one refusal, then narrowed
    assert stored(points_of(out)) == expected_points(fake_paid, top, 0)
    state = json.loads((out / "history" / "backfill" / ".state.json").read_bytes())
    assert 364 * DAY < state["windows"]["starter/daily"] < 366 * DAY
    # Later runs know the window: no second refusal.
    more = [c["id"] for c in json.loads((out / "market_cap_snapshot.json").read_bytes())
            ["coins"][3:5]]  # fmt: skip
    again = backfill(fake_paid, out, "--coins", ",".join(more), "--tier", "starter", key=True)
    assert again.returncode == 0 and "refused" not in again.stdout
    assert fake_paid.count_historical() == len(top) + 1 + len(more)


def test_a_quota_402_blocks_and_keeps_what_was_stored(fake_free, out):
    coins = [c["id"] for c in first_snapshot(fake_free, out)[:6]]
    assert backfill(fake_free, out, "--coins", ",".join(coins[:3])).returncode == 0
    kept = points_of(out)
    quota = "You have exceeded your monthly API calls limit"
    fake_free.add_fault("/tickers/*/historical", "status", status=402, times=50, body=quota)
    result = backfill(fake_free, out, "--coins", ",".join(coins))
    assert result.returncode == 78
    line = one_error_line(result)
    assert "monthly quota used up" in line and "are kept" in line
    ledger = json.loads((out / "request_ledger.json").read_bytes())
    assert ledger["blocked_until"] is not None
    assert points_of(out) == kept


def test_max_calls_stops_with_75_and_the_next_run_continues(fake_free, out):
    coins = [c["id"] for c in first_snapshot(fake_free, out)[:9]]
    spec = ",".join(coins)
    first = backfill(fake_free, out, "--coins", spec, "--max-calls", "4")
    assert first.returncode == 75
    assert "--max-calls 4 reached; 5 call(s) left" in one_error_line(first)
    assert fake_free.count_historical() == 4 and stats(out)["backfill"]["calls_left"] == 5
    second = backfill(fake_free, out, "--coins", spec)
    assert second.returncode == 0 and fake_free.count_historical() == 9
    assert stored(points_of(out)) == expected_points(fake_free, coins, 0)


def test_a_longer_window_after_a_shorter_one_asks_only_for_the_rest(fake_free, out):
    coins = [c["id"] for c in first_snapshot(fake_free, out)[:3]]
    spec = ",".join(coins)
    assert backfill(fake_free, out, "--coins", spec, "--days", "3").returncode == 0
    assert fake_free.count_historical() == 3
    longer = backfill(fake_free, out, "--coins", spec, "--days", "30")
    assert longer.returncode == 0, longer.stderr  # the answered ranges' times are whole seconds
    assert fake_free.count_historical() == 6  # one call per coin, for the days before
    assert stored(points_of(out)) == expected_points(fake_free, coins, 30)


def test_the_snapshots_reserve_is_never_spent(fake_free, out):
    coins = [c["id"] for c in first_snapshot(fake_free, out)[:10]]
    now = time.time() + CLOCK.offset
    reserve = reserve_calls(30, 3, now)  # FAST: --retries 2
    used = json.loads((out / "request_ledger.json").read_bytes())["month_requests"]
    budget = used + reserve + 6
    result = backfill(fake_free, out, "--coins", ",".join(coins), "--monthly-budget", str(budget))
    assert result.returncode == 75, result.stderr
    assert "kept for the regular snapshots" in one_error_line(result)
    ledger = json.loads((out / "request_ledger.json").read_bytes())
    assert ledger["month_requests"] == budget - reserve
    assert fake_free.count_historical() == 6
    # The cron job still runs: the reserve is its.
    CLOCK.tick(1800)
    fake_free.advance(300)
    assert run(S04, fake_free, out, "--monthly-budget", str(budget)).returncode == 0
    # With nothing spare, a backfill makes no request at all.
    again = backfill(fake_free, out, "--coins", ",".join(coins), "--monthly-budget", str(budget))
    assert again.returncode == 75 and "stay for" not in again.stdout
    assert fake_free.count_historical() == 6


def test_unknown_coins_and_coins_without_data_are_not_gaps(fake_free, out):
    coins = first_snapshot(fake_free, out)
    late = max(coins[:200], key=lambda c: c.get("first_data_at") or "")
    assert parse_iso(late["first_data_at"]) > time.time() - 30 * DAY, "fake data changed"
    result = backfill(fake_free, out, "--coins", f"{late['id']},no-such-coin", "--days", "60")
    assert result.returncode == 0, result.stderr
    figures = stats(out)["backfill"]
    assert figures["coins_unknown"] == 1 and figures["coins_filled"] == 1
    assert "unknown to the API (404)" in result.stdout
    assert all(p["ts"] >= late["first_data_at"][:10] for p in points_of(out))


def test_an_unusable_answer_is_65_and_asked_again_next_run(fake_free, out):
    coins = [c["id"] for c in first_snapshot(fake_free, out)[:4]]
    # Valid JSON, not a list of points: nothing of it is stored, the coin is asked again.
    fake_free.add_fault("/tickers/*/historical", "body", times=1, body='{"timestamp": 1}')
    result = backfill(fake_free, out, "--coins", ",".join(coins))
    assert result.returncode == 65 and "1 answer(s) were not usable" in one_error_line(result)
    assert backfill(fake_free, out, "--coins", ",".join(coins)).returncode == 0
    assert stored(points_of(out)) == expected_points(fake_free, coins, 0)


def test_the_catalogue_includes_dead_coins(fake_free, out):
    first_snapshot(fake_free, out)
    assert run("01_fetch_all_coins_list.py", fake_free, out, "--quiet").returncode == 0
    catalogue = json.loads((out / "coins_metadata.json").read_bytes())["coins"]
    dead = [c["id"] for c in catalogue if not c.get("is_active")][:3]
    result = backfill(fake_free, out, "--coins", ",".join(dead))
    assert result.returncode == 0, result.stderr
    result = backfill(fake_free, out, "--coins", "catalogue", "--max-calls", "5")
    assert result.returncode == 75  # every coin of the catalogue: far more than 5 calls
    assert f"Backfill: {len(catalogue):,} coins" in result.stdout


def test_the_default_pace_makes_no_429(fake_free, out):
    coins = [c["id"] for c in first_snapshot(fake_free, out)[:25]]
    fake_free.set_latency(0.05)
    fake_free.set_rate_limit(10)
    sync_historical(fake_free)
    result = run(S05, fake_free, out, "--coins", ",".join(coins))  # the default 5/s
    assert result.returncode == 0, result.stderr
    assert fake_free.rate_limited == 0 and fake_free.count_historical() == 25


def test_429s_slow_the_pace_until_the_api_accepts_it(fake_free, out):
    coins = [c["id"] for c in first_snapshot(fake_free, out)[:20]]
    fake_free.set_latency(0.02)
    fake_free.set_rate_limit(4)  # below --rate 10: the API refuses until 05 slows down
    sync_historical(fake_free)
    result = run(S05, fake_free, out, "--coins", ",".join(coins), "--rate", "10")
    assert result.returncode == 0, result.stderr
    assert fake_free.rate_limited > 0  # it was refused, and finished anyway
    log = (out / "collection.log").read_text()
    assert log.count("HTTP 429, pace") == fake_free.rate_limited  # each one heard
    assert len({p["id"] for p in points_of(out)}) == 20


@pytest.mark.long
def test_kills_at_random_moments_never_lose_or_double_a_point(fake_free, out):
    coins = [c["id"] for c in first_snapshot(fake_free, out)[:100]]
    spec = ",".join(coins)
    fake_free.set_latency(0.02)
    rng = random.Random(15)
    for _ in range(4):
        sync_historical(fake_free)
        proc = spawn(S05, fake_free, out, "--coins", spec, "--rate", "10")
        time.sleep(rng.uniform(0.8, 2.5))
        proc.send_signal(rng.choice([signal.SIGKILL, signal.SIGTERM]))
        proc.communicate(timeout=60)
    # Killed in a commit (points written, range not), then in the archive's switch.
    for crash in ("backfill.mid_commit", "backfill.mid_switch"):
        result = backfill(fake_free, out, "--coins", spec, env={"COLLECTOR_CRASH_AT": crash})
        assert result.returncode != 0, crash
    assert (out / "history" / "backfill" / "archive" / "000001.parquet").exists()
    final = backfill(fake_free, out, "--coins", spec)
    assert final.returncode == 0 and "Nothing to fetch" in final.stdout, final.stderr
    points = points_of(out)
    assert len(points) == len({(p["ts"], p["id"]) for p in points})
    assert stored(points) == expected_points(fake_free, coins, 0)
    check = run(S04, None, None, "--out-dir", str(out), "--check-history")
    assert check.returncode == 0 and "1 Parquet piece(s)" in check.stdout, check.stdout


def test_a_query_racing_a_backfill_sees_whole_calls(fake_free, out):
    coins = [c["id"] for c in first_snapshot(fake_free, out)[:20]]
    fake_free.set_latency(0.05)
    sync_historical(fake_free)
    proc = spawn(S05, fake_free, out, "--coins", ",".join(coins), "--rate", "10")
    seen = []
    while proc.poll() is None:
        sql = "SELECT count(*), count(DISTINCT id) FROM history WHERE source = 'historical'"
        result = run(S04, None, None, "--out-dir", str(out), "--query", sql)
        assert result.returncode == 0, result.stderr
        seen.append(tuple(int(x) for x in result.stdout.splitlines()[1].split(",")))
    assert proc.wait() == 0
    ranges = read_jsonl(out / "history" / "backfill" / "ranges.jsonl")
    # Every answer is a whole number of calls, in commit order: never part of one.
    commits = [0]
    for entry in ranges:
        commits.append(commits[-1] + entry["points"])
    assert seen and all(count in commits for count, _ in seen), (seen, commits)
    assert all(distinct <= len(coins) for _, distinct in seen)
    assert seen == sorted(seen)


def test_a_full_disk_stops_with_74_and_keeps_every_committed_point(fake_free, tmp_path):
    with tmpfs(tmp_path / "small", "64m", "a full disk") as mount:
        out = mount / "data"
        coins = [c["id"] for c in first_snapshot(fake_free, out)[:40]]
        assert backfill(fake_free, out, "--coins", ",".join(coins[:3])).returncode == 0
        filler = mount / "filler"
        with open(filler, "wb") as handle:  # room for a few calls' points, not 37
            handle.write(b"\0" * max(0, shutil.disk_usage(mount).free - 300_000))
        result = backfill(fake_free, out, "--coins", ",".join(coins))
        assert result.returncode == 74, result.stderr
        line = one_error_line(result)
        assert "No space left on device" in line and "are kept" in line
        ranges = read_jsonl(out / "history" / "backfill" / "ranges.jsonl")
        done = [r["id"] for r in ranges]  # committed, possibly followed by an uncommitted tail
        check = run(S04, None, None, "--out-dir", str(out), "--check-history")
        assert check.returncode == 0, check.stdout
        assert set(stored(points_of(out))) <= set(expected_points(fake_free, coins, 0))
        assert {p["id"] for p in points_of(out)} <= set(done)
        filler.unlink()
        assert backfill(fake_free, out, "--coins", ",".join(coins)).returncode == 0
        assert stored(points_of(out)) == expected_points(fake_free, coins, 0)


def test_a_terminal_gets_a_progress_bar_and_cron_gets_log_lines(fake_free, out):
    import fcntl
    import os
    import pty
    import struct
    import sys
    import termios

    from tests.conftest import ROOT, script_args, script_env

    universe = [c["id"] for c in first_snapshot(fake_free, out)]
    coins = ",".join(universe[:8])
    sync_historical(fake_free)
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    argv = script_args(S05, fake_free, out, ("--coins", coins, "--rate", "10"))
    proc = subprocess.Popen([sys.executable, str(ROOT / S05), *argv], stderr=secondary,
                            stdout=subprocess.PIPE, env=script_env())  # fmt: skip
    os.close(secondary)
    shown = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    assert proc.wait(timeout=60) == 0
    os.close(primary)
    bar = shown.decode(errors="replace")
    assert "8/8" in bar and "coin" in bar and "calls" in bar and "left" in bar
    # Without a terminal (cron), no bar: a line in the log at each quarter.
    result = backfill(fake_free, out, "--coins", f"{coins},{universe[8]}")
    assert result.returncode == 0 and "\r" not in result.stderr
    log = (out / "collection.log").read_text()
    assert "backfill: 1/1 coins" in log
