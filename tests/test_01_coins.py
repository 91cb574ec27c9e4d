"""End to end: 01_fetch_all_coins_list.py against the fake API (60,000 coins)."""

from __future__ import annotations

import json

from tests.conftest import N_COINS, S01, run, tree_digest


def test_catalogue_files_follow_the_contract(fake_paid, out):
    result = run(S01, fake_paid, out, key=True)
    assert result.returncode == 0, result.stderr
    assert fake_paid.count("/coins") == 1 and fake_paid.count() == 1
    doc = json.loads((out / "coins_metadata.json").read_bytes())
    assert set(doc) >= {"fetched_at", "source", "coin_count", "active_count", "coins"}
    assert doc["coin_count"] == len(doc["coins"]) == N_COINS
    assert doc["active_count"] == sum(1 for c in fake_paid.coins if c["is_active"])
    assert doc["source"] == fake_paid.url and doc["fetched_at"].endswith("Z")
    assert doc["coins"][:100] == fake_paid.coins[:100]  # objects as the API gives them
    listing = (out / "coins_list.txt").read_bytes()
    assert listing.count(b"\n") == doc["coin_count"]
    assert listing.decode().split("\n")[:-1] == [c["id"] for c in doc["coins"]]
    assert json.loads((out / "request_ledger.json").read_bytes())["month_requests"] == 1
    assert "60,000" in result.stdout


def test_duplicate_ids_are_dropped(fake_paid, out):
    fake_paid.coins.extend(fake_paid.coins[:25])
    fake_paid.invalidate()
    try:
        result = run(S01, fake_paid, out, key=True)
        assert result.returncode == 0, result.stderr
        doc = json.loads((out / "coins_metadata.json").read_bytes())
        assert doc["coin_count"] == N_COINS and doc["duplicates_dropped"] == 25
    finally:
        del fake_paid.coins[N_COINS:]
        fake_paid.invalidate()


def test_bad_payload_keeps_previous_files(fake_paid, out):
    assert run(S01, fake_paid, out, key=True).returncode == 0
    before = tree_digest(out)
    fake_paid.add_fault("/coins", "truncated_json", times=-1)
    result = run(S01, fake_paid, out, key=True)
    assert result.returncode == 69
    fake_paid.clear_faults()
    fake_paid.add_fault("/coins", "body", body='{"error": "not a list"}')
    assert run(S01, fake_paid, out, key=True).returncode == 65
    after = tree_digest(out)
    for name in ("coins_metadata.json", "coins_list.txt"):
        assert after[name] == before[name]


def test_shrunken_catalogue_is_refused(fake_paid, out):
    assert run(S01, fake_paid, out, key=True).returncode == 0
    fake_paid.add_fault("/coins", "body", body=json.dumps(fake_paid.coins[:100]))
    result = run(S01, fake_paid, out, key=True)
    assert result.returncode == 65 and "fewer than half" in result.stderr
    assert json.loads((out / "coins_metadata.json").read_bytes())["coin_count"] == N_COINS
