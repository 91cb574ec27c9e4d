"""Gap repair in 03/04: after a committed snapshot, the slots missed while the plan still
serves them are refilled from /tickers/{id}/historical, highest rank first, inside the spare
budget and a time limit, continued over later runs, recorded in gaps.jsonl, shown by --status."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import mcap.gap_repair as gap_repair
from mcap.backfill_tasks import reserve_calls
from mcap.clock import parse_iso
from tests.conftest import S03, S04, at, query, read_jsonl, run, sync_historical

HOUR = 3600


def snapshot_at(api, out: Path, epoch: float, script: str = S04, repair: bool = False, **kw):
    """A committed snapshot at `epoch` (fresh data), repairing gaps if asked."""
    at(epoch)
    sync_historical(api)
    api.advance(300)
    result = run(script, api, out, repair=repair, **kw)
    assert result.returncode == 0, result.stderr
    return result


def repairs(out: Path) -> list[dict]:
    return [r for r in read_jsonl(out / "history" / "gaps.jsonl") if r["type"] == "repair"]


def hole(api, out: Path, hours: float, script: str = S04, **kw) -> float:
    """Two snapshots `hours` + 0.5 h ago, then none: returns now."""
    now = time.time()
    snapshot_at(api, out, now - (hours + 0.5) * HOUR, script, **kw)
    snapshot_at(api, out, now - hours * HOUR, script, **kw)
    return now


@pytest.fixture
def quick(monkeypatch):
    """Gap repair at a fast pace (the pace itself is 05's test)."""
    monkeypatch.setattr(gap_repair, "REPAIR_RATE", 100.0)


def test_a_six_hour_hole_is_refilled_over_the_next_runs_and_says_so(fake_small, out, monkeypatch):
    now = hole(fake_small, out, 6)
    monkeypatch.setattr(gap_repair, "REPAIR_RATE", 20.0)
    monkeypatch.setattr(gap_repair, "REPAIR_SECONDS", 2.0)  # "60 s" for a 400-coin universe
    first = snapshot_at(fake_small, out, now, repair=True)
    assert "Gap repair:" in first.stdout and "1 partly" in first.stdout
    (partly,) = repairs(out)
    assert partly["status"] == "partly" and partly["interval"] == "1h"
    assert 0 < partly["coins"] < partly["of_coins"] == 400
    coins = json.loads((out / "market_cap_snapshot.json").read_bytes())["coins"]
    _, filled = query(out, "SELECT DISTINCT id FROM history WHERE source = 'historical'")
    assert {row[0] for row in filled} == {c["id"] for c in coins[: partly["coins"]]}  # top first
    calls = fake_small.count_historical()
    assert calls == json.loads((out / "latest_stats.json").read_bytes())["repair"]["calls"]
    monkeypatch.setattr(gap_repair, "REPAIR_RATE", 100.0)
    monkeypatch.setattr(gap_repair, "REPAIR_SECONDS", 60.0)
    snapshot_at(fake_small, out, now + 1800, repair=True)
    done = repairs(out)[-1]
    assert done["status"] == "repaired" and done["coins"] == 400
    assert fake_small.count_historical() == 400  # each coin asked once, over two runs
    # The points are the API's, on the hours inside the hole (half a cadence from its ends).
    gap_from, gap_to = parse_iso(done["from"]), parse_iso(done["to"])
    _, rows = query(out, "SELECT DISTINCT epoch(ts)::BIGINT FROM history "
                         "WHERE source = 'historical' ORDER BY 1")  # fmt: skip
    hours = [row[0] for row in rows]
    inside = [h for h in range(int(gap_from) // HOUR * HOUR, int(gap_to), HOUR)
              if gap_from + 900 < h < gap_to - 900]  # fmt: skip
    assert hours == inside and len(inside) >= 5
    _, (count,) = query(out, "SELECT count(*) FROM history WHERE source = 'historical'")
    assert done["points"] == count[0] > 0.9 * len(inside) * 400
    status = run(S04, None, None, "--out-dir", str(out), "--status", "--min-coverage", "0")
    assert "repaired 1, partly 0" in status.stdout
    assert "refilled from the historical endpoint" in status.stdout
    # Nothing more to do: the next runs ask nothing and write no record.
    snapshot_at(fake_small, out, now + 3600, repair=True)
    assert fake_small.count_historical() == 400 and len(repairs(out)) == 2


def test_gaps_beyond_the_window_are_unrepairable_and_say_why(fake_small, out, quick):
    now = time.time()
    snapshot_at(fake_small, out, now - 72 * HOUR)
    snapshot_at(fake_small, out, now - 71.5 * HOUR)
    snapshot_at(fake_small, out, now - 48 * HOUR)  # a hole of 23.5 h, two days ago
    snapshot_at(fake_small, out, now, repair=True)  # and one of 48 h up to now
    old, recent = sorted(repairs(out), key=lambda r: r["from"])
    assert old["status"] == "unrepairable" and "aged out" in old["reason"]
    assert recent["status"] == "partly" and recent["coins"] == recent["of_coins"]
    assert parse_iso(recent["aged_out_before"]) > now - 24 * HOUR
    # The reachable part is done: later runs neither call nor write.
    calls = fake_small.count_historical()
    snapshot_at(fake_small, out, now + 1800, repair=True)
    assert fake_small.count_historical() == calls and len(repairs(out)) == 2


def test_no_repair_asks_nothing(fake_small, out):
    now = hole(fake_small, out, 3)
    snapshot_at(fake_small, out, now)  # conftest passes --no-repair unless asked
    assert fake_small.count_historical() == 0
    assert not [r for r in read_jsonl(out / "history" / "gaps.jsonl") if r["type"] == "repair"]


def test_a_tight_budget_keeps_the_reserve(fake_small, out, quick):
    now = hole(fake_small, out, 3, S03)
    used = json.loads((out / "request_ledger.json").read_bytes())["month_requests"]
    reserve = reserve_calls(30, 3, now)
    budget = used + 2 + reserve + 7  # the snapshot's 2 calls, then 7 spare
    at(now)
    sync_historical(fake_small)
    fake_small.advance(300)
    result = run(S03, fake_small, out, "--monthly-budget", str(budget), repair=True)
    assert result.returncode == 0 and "Gap repair: " in result.stdout
    assert fake_small.count_historical() == 7
    ledger = json.loads((out / "request_ledger.json").read_bytes())
    assert ledger["month_requests"] == budget - reserve
    assert repairs(out)[-1]["status"] == "partly"


def test_starter_refills_at_the_cadence(fake_paid, out, monkeypatch):
    monkeypatch.setattr(gap_repair, "REPAIR_RATE", 50.0)
    monkeypatch.setattr(gap_repair, "REPAIR_SECONDS", 3.0)
    now = hole(fake_paid, out, 2, key=True)
    snapshot_at(fake_paid, out, now, repair=True, key=True)
    (record,) = repairs(out)
    assert record["interval"] == "30m" and record["status"] == "partly"
    _, rows = query(out, "SELECT DISTINCT epoch(ts)::BIGINT % 1800 FROM history "
                         "WHERE source = 'historical'")  # fmt: skip
    assert rows == [(0,)]
