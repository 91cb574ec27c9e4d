"""The snapshot's rules on their own: no files, no HTTP, no clock."""

from __future__ import annotations

import csv
import io
import json

from mcap.clock import parse_iso
from mcap.snapshot import (
    SNAPSHOT_CSV,
    SNAPSHOT_JSON,
    SNAPSHOT_JSONL,
    RunFacts,
    build_snapshot,
    coins_market_cap_usd,
    diff_snapshots,
    expected_coin_count,
    missing_last_updated,
    snapshot_file_bodies,
    snapshots_line,
    too_soon,
    unchanged,
)

T0 = "2026-11-25T10:00:00Z"
FACTS = RunFacts("https://api.example/v1", ("USD",), "free", "02_test", 2, 1)


def coin(ident: str, rank, cap=None, stamp: str | None = "2026-11-25T09:55:00Z") -> dict:
    quotes = {"USD": {"price": 1.5, "market_cap": cap}}
    return {"id": ident, "name": ident.title(), "symbol": ident[:3].upper(), "rank": rank,
            "last_updated": stamp, "quotes": quotes}  # fmt: skip


def test_the_first_snapshot_changes_everything():
    diff = diff_snapshots(None, {}, {"a": "x", "b": "y"})
    assert (diff.appeared, diff.disappeared, diff.changed, diff.previous_ts) == ([], [], 2, None)


def test_appeared_disappeared_and_changed_are_counted_by_last_updated():
    previous = {"a": "t1", "b": "t1", "c": "t1"}
    now = {"a": "t1", "b": "t2", "d": "t1", "e": None, "f": ""}
    diff = diff_snapshots(T0, previous, now)
    assert diff.appeared == ["d", "e", "f"] and diff.disappeared == ["c"]
    assert diff.changed == 4  # b changed; d is new; e and f have no stamp: always changed
    assert missing_last_updated(now) == ["e", "f"]


def test_unchanged_data_is_a_skip_with_a_reason():
    same = diff_snapshots(T0, {"a": "t1"}, {"a": "t1"})
    assert "data unchanged since snapshot 2026-11-25T10:00:00Z" in unchanged(same)
    assert unchanged(diff_snapshots(T0, {"a": "t1"}, {"a": "t2"})) is None
    assert unchanged(diff_snapshots(T0, {"a": "t1"}, {"a": "t1", "b": "t1"})) is None
    assert unchanged(diff_snapshots(None, {}, {"a": "t1"})) is None


def test_too_soon_only_when_younger_than_the_interval():
    now = parse_iso(T0) + 4 * 60
    assert "is 4.0 min old, younger than --min-interval 5 min" in too_soon(300, T0, now)
    assert too_soon(300, T0, now + 60) is None
    assert too_soon(0, T0, now) is None and too_soon(300, None, now) is None


def test_the_expected_count_follows_the_plan():
    assert expected_coin_count("free", {"cryptocurrencies_number": 11_659}) == 2_000
    assert expected_coin_count("free", {"cryptocurrencies_number": 1_500}) == 1_500
    assert expected_coin_count("paid", {"cryptocurrencies_number": 11_659}) == 11_659
    assert expected_coin_count("free", {}) == 2_000
    assert expected_coin_count("paid", {"cryptocurrencies_number": "n/a"}) is None


def test_the_collected_market_cap_sums_numbers_only():
    coins = [coin("a", 1, 10), coin("b", 2, 2.5), coin("c", 3, None), coin("d", 4, "")]
    assert coins_market_cap_usd(coins, ("USD",)) == 12.5
    assert coins_market_cap_usd(coins, ("EUR",)) is None
    assert coins_market_cap_usd([coin("a", 1, 1e308), coin("b", 2, 1e308)], ("USD",)) is None


def test_a_snapshot_is_in_rank_order_unranked_last_by_id():
    rows = [coin("z", 0), coin("b", 2), coin("y", None), coin("a", 1), coin("c", "")]
    snap = build_snapshot(T0, rows, {"cryptocurrencies_number": 5}, 1, "free", None, {})
    assert [c["id"] for c in snap.coins] == ["a", "b", "c", "y", "z"]
    assert snap.snapshot_id == "20261125T100000Z" and snap.expected_count == 5
    assert snap.last_updated == {c["id"]: "2026-11-25T09:55:00Z" for c in snap.coins}
    assert not snap.short
    few = build_snapshot(T0, rows[:2], {"cryptocurrencies_number": 5}, 0, "free", None, {})
    assert few.short  # 2 of 5 expected


def test_the_summary_line_says_what_changed_and_what_it_cost():
    snap = build_snapshot(
        T0, [coin("a", 1, 7), coin("b", 2, 3)], {"market_cap_usd": 99}, 0, "free",
        "2026-11-25T09:30:00Z", {"a": "2026-11-25T09:55:00Z", "c": "t"},
    )  # fmt: skip
    line = snapshots_line(snap, FACTS)
    assert line["ts"] == T0 and line["coin_count"] == 2 and line["market_cap_usd"] == 99
    assert line["coins_market_cap_usd"] == 10 and (line["requests"], line["retries"]) == (2, 1)
    assert (line["appeared_ids"], line["disappeared_ids"]) == (["b"], ["c"])
    assert line["previous_ts"] == "2026-11-25T09:30:00Z" and line["quotes"] == ["USD"]


def test_the_three_files_hold_the_same_coins_in_the_same_order():
    rows = [coin("b", 2, 3), coin("a", 1, 7), coin("=cmd", 3, 1)]
    snap = build_snapshot(T0, rows, {"market_cap_usd": 99}, 0, "free", None, {})
    bodies = snapshot_file_bodies(snap, FACTS)
    document = json.loads(bodies[SNAPSHOT_JSON])
    assert document["coin_count"] == 3 and document["source"] == FACTS.source
    assert [c["id"] for c in document["coins"]] == ["a", "b", "=cmd"]
    lines = [json.loads(x) for x in bodies[SNAPSHOT_JSONL].splitlines()]
    assert [x["id"] for x in lines] == ["a", "b", "=cmd"]
    assert all(x["collected_at"] == T0 for x in lines)
    table = list(csv.reader(io.StringIO(bodies[SNAPSHOT_CSV].decode())))
    assert table[0][:5] == ["collected_at", "id", "name", "symbol", "rank"]
    assert [row[1] for row in table[1:]] == ["a", "b", "'=cmd"]  # formula defused
