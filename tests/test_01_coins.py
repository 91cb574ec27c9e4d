"""End to end: 01_fetch_all_coins_list.py against the fake API (60,000 coins)."""

from __future__ import annotations

import json

from tests.conftest import FAST, N_COINS, PAID_ENV, run_script, tree_digest

SCRIPT = "01_fetch_all_coins_list.py"


def fetch(api, out, *args, **kw):
    return run_script(
        SCRIPT, "--base-url", api.url, "--out-dir", str(out), *FAST, *args, env=PAID_ENV, **kw
    )


def test_catalogue_files_follow_the_contract(api, out):
    result = fetch(api, out)
    assert result.returncode == 0, result.stderr
    assert api.count("/coins") == 1 and api.count() == 1
    doc = json.loads((out / "coins_metadata.json").read_bytes())
    assert set(doc) >= {"fetched_at", "source", "coin_count", "active_count", "coins"}
    assert doc["coin_count"] == len(doc["coins"]) == N_COINS
    assert doc["active_count"] == sum(1 for c in api.coins if c["is_active"])
    assert doc["source"] == api.url and doc["fetched_at"].endswith("Z")
    assert doc["coins"][:100] == api.coins[:100]  # objects as the API gives them
    listing = (out / "coins_list.txt").read_bytes()
    assert listing.count(b"\n") == doc["coin_count"]
    assert listing.decode().split("\n")[:-1] == [c["id"] for c in doc["coins"]]
    assert json.loads((out / "request_ledger.json").read_bytes())["month_requests"] == 1
    assert "60,000" in result.stdout


def test_duplicate_ids_are_dropped(api, out):
    api.coins.extend(api.coins[:25])
    api.invalidate()
    try:
        result = fetch(api, out)
        assert result.returncode == 0, result.stderr
        doc = json.loads((out / "coins_metadata.json").read_bytes())
        assert doc["coin_count"] == N_COINS and doc["duplicates_dropped"] == 25
    finally:
        del api.coins[N_COINS:]
        api.invalidate()


def test_bad_payload_keeps_previous_files(api, out):
    assert fetch(api, out).returncode == 0
    before = tree_digest(out)
    api.add_fault("/coins", "truncated_json", times=-1)
    result = fetch(api, out)
    assert result.returncode == 69
    api.clear_faults()
    api.add_fault("/coins", "body", body='{"error": "not a list"}')
    assert fetch(api, out).returncode == 65
    after = tree_digest(out)
    for name in ("coins_metadata.json", "coins_list.txt"):
        assert after[name] == before[name]


def test_shrunken_catalogue_is_refused(api, out):
    assert fetch(api, out).returncode == 0
    api.add_fault("/coins", "body", body=json.dumps(api.coins[:100]))
    result = fetch(api, out)
    assert result.returncode == 65 and "fewer than half" in result.stderr
    assert json.loads((out / "coins_metadata.json").read_bytes())["coin_count"] == N_COINS
