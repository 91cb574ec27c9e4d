"""End to end: 03_optimized_free_tier_collector.py — ledger, budget, quota block, history."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import S03, S04, next_second, read_jsonl, run, stats_of, tree_digest


def ledger(out: Path) -> dict:
    return json.loads((out / "request_ledger.json").read_bytes())


def test_three_runs_three_whole_snapshots_and_ledger_matches_server(fake_free, out):
    fake_free.add_fault("/global", "status", status=500)  # one retry, counted too
    for _ in range(3):
        result = run(S03, fake_free, out)
        assert result.returncode == 0, result.stderr
        fake_free.advance(300)
        next_second()
    entries = read_jsonl(out / "history" / "snapshots.jsonl")
    assert len(entries) == 3 and len({e["ts"] for e in entries}) == 3
    rows = read_jsonl(out / "history" / "market_cap_history.jsonl")
    assert len(rows) == 3 * 2_000
    assert len({(r["ts"], r["id"]) for r in rows}) == len(rows)
    assert ledger(out)["month_requests"] == fake_free.count() == 7
    assert entries[0]["requests"] == 3 and entries[1]["requests"] == 2
    stats = stats_of(out)
    assert stats["requests_this_month"] == 7 and stats["monthly_budget"] == 20_000
    check = run(S04, None, None, "--out-dir", str(out), "--check-history")
    assert check.returncode == 0, check.stdout + check.stderr


def test_unchanged_data_appends_nothing(fake_free, out):
    assert run(S03, fake_free, out).returncode == 0
    history = out / "history"
    before = tree_digest(history)
    next_second()
    result = run(S03, fake_free, out)  # same data: every last_updated unchanged
    assert result.returncode == 0, result.stderr
    assert tree_digest(history) == before
    stats = stats_of(out)
    assert stats["status"] == "skipped" and "unchanged" in stats["skipped_reason"]


def test_appeared_and_disappeared_are_recorded(fake_paid, out):
    env = {"COINPAPRIKA_API_KEY": "sk-test-9f8e7d6c5b4a-SECRET"}
    fake_paid.set_ticker_count(11_990)
    assert run(S03, fake_paid, out, env=env).returncode == 0
    fake_paid.set_ticker_count(12_000)
    fake_paid.advance(300)
    next_second()
    assert run(S03, fake_paid, out, env=env).returncode == 0
    second = read_jsonl(out / "history" / "snapshots.jsonl")[-1]
    assert second["appeared"] == 10 and second["disappeared"] == 0
    assert sorted(second["appeared_ids"]) == sorted(
        t["id"] for t in fake_paid.tickers[11_990:12_000]
    )


def test_min_interval_skips_without_a_request(fake_free, out):
    assert run(S03, fake_free, out).returncode == 0
    fake_free.reset_requests()
    fake_free.advance(300)
    result = run(S03, None, None, "--base-url", fake_free.url, "--out-dir", str(out))
    assert result.returncode == 0
    assert fake_free.count() == 0
    stats = stats_of(out)
    assert stats["status"] == "skipped" and "min-interval" in stats["skipped_reason"]


def test_budget_too_small_exits_75_without_requests(fake_free, out):
    result = run(S03, fake_free, out, "--monthly-budget", "1")
    assert result.returncode == 75
    assert fake_free.count() == 0
    assert "resets" in result.stderr
    stats = stats_of(out)
    assert stats["exit_code"] == 75 and stats["status"] == "failed"


def test_budget_must_cover_the_worst_case_retries(fake_free, out):
    fake_free.add_fault("/tickers", "status", status=503, times=-1)
    # --retries 2: 2 calls × 3 attempts = 6 in the worst case.
    refused = run(S03, fake_free, out, "--monthly-budget", "5")
    assert refused.returncode == 75 and fake_free.count() == 0
    assert "up to 6" in refused.stderr
    storm = run(S03, fake_free, out, "--monthly-budget", "6")
    assert storm.returncode == 69
    assert fake_free.count() == 3 and ledger(out)["month_requests"] == 3


def test_quota_402_blocks_later_runs_until_force(fake_free, out):
    fake_free.add_fault("/tickers", "status", status=402)
    first = run(S03, fake_free, out)
    assert first.returncode == 78
    assert fake_free.count() == 1
    until = ledger(out)["blocked_until"]
    assert until and until.endswith("-01T00:00:00Z")
    before = tree_digest(out / "history") if (out / "history").exists() else {}
    second = run(S03, fake_free, out)
    assert second.returncode == 78 and fake_free.count() == 1
    assert "blocked until" in second.stderr
    assert (tree_digest(out / "history") if (out / "history").exists() else {}) == before
    forced = run(S03, fake_free, out, "--force")
    assert forced.returncode == 0, forced.stderr
    assert fake_free.count() == 3
    assert ledger(out)["blocked_until"] is None


def test_month_rollover_resets_the_count(fake_free, out):
    out.mkdir(parents=True)
    (out / "request_ledger.json").write_text(
        json.dumps(
            {
                "month": "2026-10",
                "month_requests": 19_999,
                "hour": "2026-10-31T23",
                "hour_requests": 5,
                "by_script": {},
                "past_months": {},
                "blocked_until": "2026-11-01T00:00:00Z",
                "blocked_reason": "HTTP 402",
            }
        )
    )
    result = run(S03, fake_free, out)
    assert result.returncode == 0, result.stderr
    data = ledger(out)
    assert data["month"] == time.strftime("%Y-%m", time.gmtime())
    assert data["month_requests"] == 2 and data["past_months"]["2026-10"] == 19_999
    assert data["blocked_until"] is None


def test_plan_prints_budget_maths_without_requests(fake_free, out):
    result = run(
        S03,
        None,
        None,
        "--base-url",
        fake_free.url,
        "--out-dir",
        str(out),
        "--plan",
        "--every",
        "5",
    )
    assert result.returncode == 0, result.stderr
    assert fake_free.count() == 0
    assert "calls" in result.stdout and "Fastest cadence that fits the budget: every 5 min" in (
        result.stdout
    )
    every_min = run(
        S03,
        None,
        None,
        "--out-dir",
        str(out),
        "--plan",
        "--every",
        "1",
        "--monthly-budget",
        "20000",
    )
    assert "DOES NOT FIT" in every_min.stdout


def test_shrunken_snapshot_is_rejected_unless_accepted(fake_free, out):
    assert run(S03, fake_free, out).returncode == 0
    before = (out / "market_cap_snapshot.json").read_bytes()
    fake_free.set_ticker_count(300)
    fake_free.advance(300)
    next_second()
    result = run(S03, fake_free, out)
    assert result.returncode == 65 and "fewer than half" in result.stderr
    assert (out / "market_cap_snapshot.json").read_bytes() == before
    accepted = run(S03, fake_free, out, "--accept-shrink")
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads((out / "market_cap_snapshot.json").read_bytes())["coin_count"] == 300
