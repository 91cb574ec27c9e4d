"""The fake's GET /v1/tickers/{id}/historical: plan windows, grid, limits, faults, rate limit."""

from __future__ import annotations

import calendar
import http.client
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode

import pytest

from tests.fake_api import (
    HISTORICAL_WINDOWS,
    START_EPOCH,
    FakeCoinPaprika,
    historical_window,
)

DAY = 86400
KEY = "sk-historical-test"
TAIL = " is not allowed in this plan. Check plans on coinpaprika.com/api"
MINUTE_TEXT = "Getting minute historical data" + TAIL
CUTOFF = re.compile(
    r"Getting (daily|hourly|minute) historical data before "
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})Z" + re.escape(TAIL)
)
KEYS = ["timestamp", "price", "volume_24h", "market_cap"]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeCoinPaprika]:
    with FakeCoinPaprika(n_tickers=300, n_coins=600, plan="free") as api:
        yield api


@pytest.fixture(scope="module")
def paid_server() -> Iterator[FakeCoinPaprika]:
    with FakeCoinPaprika(n_tickers=300, n_coins=600, plan="paid", api_key=KEY) as api:
        yield api


def _reset(api: FakeCoinPaprika, tier: str) -> FakeCoinPaprika:
    api.time_offset, api.tier, api.window_status = 0.0, tier, 402
    api.clear_faults()
    api.reset_limits()
    api.reset_requests()
    return api


@pytest.fixture
def api(server: FakeCoinPaprika) -> Iterator[FakeCoinPaprika]:
    yield _reset(server, "free")
    _reset(server, "free")


@pytest.fixture
def paid(paid_server: FakeCoinPaprika) -> Iterator[FakeCoinPaprika]:
    yield _reset(paid_server, "starter")
    _reset(paid_server, "starter")


def call(api: FakeCoinPaprika, path: str, key: str | None = None, **params: Any):
    """(status, raw body, headers) of one GET."""
    url = api.url + path + ("?" + urlencode(params) if params else "")
    request = urllib.request.Request(url, headers={"Authorization": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), response.headers
    except HTTPError as err:
        with err:
            return err.code, err.read(), err.headers


def hist(api: FakeCoinPaprika, coin: str = "btc-bitcoin", key: str | None = None, **params: Any):
    """(status, decoded JSON) of one /historical call."""
    status, body, _ = call(api, f"/tickers/{coin}/historical", key, **params)
    return status, json.loads(body)


def epoch(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def midnight(t: float) -> int:
    return int(t) // DAY * DAY


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def ticker(api: FakeCoinPaprika, coin: str) -> dict:
    return next(t for t in api._pool if t["id"] == coin)


def assert_cutoff(body: dict, cls: str, expected: float) -> None:
    m = CUTOFF.fullmatch(body["error"])
    assert m, body
    assert m[1] == cls
    assert abs(epoch(m[2] + "Z") + int(m[3]) / 1e9 - expected) < 5


# ---------------------------------------------------------------- plans and windows
def test_window_table() -> None:
    assert HISTORICAL_WINDOWS["daily"]["free"] == 365 * DAY
    assert historical_window("starter", "1d") == 5 * 365 * DAY
    assert historical_window("pro", "365d") is None
    assert historical_window("free", "12h") == DAY
    assert historical_window("business", "1h") == 365 * DAY
    assert historical_window("free", "45m") == 0
    assert historical_window("starter", "5m") == 7 * DAY
    assert historical_window("enterprise", "5m") is None
    with pytest.raises(ValueError):
        historical_window("gold", "1d")
    assert FakeCoinPaprika(n_tickers=5, n_coins=5, plan="paid").tier == "starter"
    with pytest.raises(ValueError):
        FakeCoinPaprika(n_tickers=5, n_coins=5, tier="gold")


def test_daily_points_for_the_last_year_on_free(api: FakeCoinPaprika) -> None:
    now = api.now()
    start = int(now) - 364 * DAY
    status, points = hist(api, start=start, interval="1d", limit=5000)
    assert status == 200
    stamps = [epoch(p["timestamp"]) for p in points]
    assert all(p["timestamp"].endswith("T00:00:00Z") for p in points)
    assert stamps[0] >= start and stamps[0] - start < DAY
    assert stamps[-1] == midnight(now)  # newest point: today's midnight
    assert all(b - a == DAY for a, b in zip(stamps, stamps[1:], strict=False))
    assert len(points) in (364, 365)  # 365 only when now is exactly midnight
    for p in points:
        assert list(p) == KEYS
        assert isinstance(p["price"], float) and p["price"] > 0
        assert isinstance(p["volume_24h"], int) and isinstance(p["market_cap"], int)
    price = ticker(api, "btc-bitcoin")["quotes"]["USD"]["price"]
    assert all(price / 5 < p["price"] < price * 5 for p in points)
    assert all(p["market_cap"] == round(p["price"] * 19912437) for p in points)


def test_interval_missing_means_5m_which_free_does_not_have(api: FakeCoinPaprika) -> None:
    assert hist(api, start=int(api.now()) - 3600) == (402, {"error": MINUTE_TEXT})
    assert hist(api, start=int(api.now()) - 3600, interval="30m") == (402, {"error": MINUTE_TEXT})


def test_start_older_than_the_window_is_refused_with_the_cutoff(api: FakeCoinPaprika) -> None:
    before = api.now()
    status, body = hist(api, start=iso(before - 366 * DAY), interval="1d")
    assert status == 402
    assert_cutoff(body, "daily", before - 365 * DAY)
    assert hist(api, start=int(before) - 365 * DAY + 60, interval="1d")[0] == 200


def test_window_status_400_for_a_client_that_expects_it() -> None:
    with FakeCoinPaprika(n_tickers=20, n_coins=30, plan="free", window_status=400) as api:
        now = api.now()
        status, body = hist(api, start=int(now) - 400 * DAY, interval="1d")
        assert status == 400
        assert_cutoff(body, "daily", now - 365 * DAY)
        assert hist(api, start=int(now) - 60) == (400, {"error": MINUTE_TEXT})


def test_hourly_window_on_free_is_one_day(api: FakeCoinPaprika) -> None:
    now = api.now()
    status, points = hist(api, start=int(now) - 23 * 3600, interval="1h")
    assert status == 200 and 22 <= len(points) <= 23
    assert all(p["timestamp"].endswith(":00:00Z") for p in points)
    status, body = hist(api, start=int(now) - 25 * 3600, interval="6h")
    assert status == 402
    assert_cutoff(body, "hourly", now - DAY)


def test_5m_on_starter_reads_7_days_not_8(paid: FakeCoinPaprika) -> None:
    now = paid.now()
    status, points = hist(paid, key=KEY, start=int(now) - 7 * DAY + 60, interval="5m", limit=5000)
    assert status == 200
    stamps = [epoch(p["timestamp"]) for p in points]
    assert all(t % 300 == 0 for t in stamps)
    assert all(b - a == 300 for a, b in zip(stamps, stamps[1:], strict=False))
    assert abs(len(points) - 7 * 288) <= 1
    assert now - 300 < stamps[-1] <= now + 5
    status, body = hist(paid, key=KEY, start=int(now) - 8 * DAY, interval="5m")
    assert status == 402
    assert_cutoff(body, "minute", now - 7 * DAY)
    assert hist(paid, start=int(now) - 3600, interval="5m") == (403, {"error": "invalid api key"})
    # Starter's daily window is 5 years.
    assert hist(paid, key=KEY, start=int(now) - 4 * 365 * DAY, interval="7d")[0] == 200
    assert hist(paid, key=KEY, start=int(now) - 6 * 365 * DAY, interval="7d")[0] == 402


# ---------------------------------------------------------------- parameters
def test_parameter_errors(api: FakeCoinPaprika) -> None:
    start = int(api.now()) - 10 * DAY
    invalid = (400, {"error": "Invalid parameters"})
    limit_text = (400, {"error": "limit must be between 1 and 5000"})
    assert hist(api, interval="1d") == (400, {"error": "start is required"})
    assert hist(api, start=start, interval="1d", limit=5001) == limit_text
    assert hist(api, start=start, interval="1d", limit=0) == limit_text
    assert hist(api, start=start, interval="1d", limit="ten") == invalid
    assert hist(api, start=start, interval="1d", quote="eur") == invalid
    assert hist(api, start=start, interval="1w") == invalid
    assert hist(api, start=start, interval="1D") == invalid
    for bad in ("2026-01-01T00:00:00.5Z", "2026-13-01", "2026-01-01T00:00:00+00:00", "yesterday"):
        assert hist(api, start=bad, interval="1d") == invalid, bad
    assert hist(api, start=start, end="soon", interval="1d") == invalid
    assert hist(api, "nope-not-a-coin", start=start, interval="1d") == (
        404,
        {"error": "id not found"},
    )
    assert hist(api, start=start, interval="1d", limit=5000)[0] == 200


def test_limit_caps_points_oldest_first(api: FakeCoinPaprika) -> None:
    start = midnight(api.now()) - 100 * DAY
    status, points = hist(api, start=start, interval="1d", limit=10)
    assert status == 200
    assert [p["timestamp"] for p in points] == [iso(start + i * DAY) for i in range(10)]


def test_end_is_inclusive_and_formats_agree(api: FakeCoinPaprika) -> None:
    day = midnight(api.now())
    want = [iso(day - k * DAY) for k in (5, 4, 3, 2)]
    for start, end in (
        (iso(day - 5 * DAY), iso(day - 2 * DAY)),
        (time.strftime("%Y-%m-%d", time.gmtime(day - 5 * DAY)), str(day - 2 * DAY)),
        (str(day - 6 * DAY + 1), iso(day - 2 * DAY + 3600)),
    ):
        status, points = hist(api, start=start, end=end, interval="24h")
        assert status == 200 and [p["timestamp"] for p in points] == want, (start, end)


def test_quote_btc(api: FakeCoinPaprika) -> None:
    start = midnight(api.now()) - 3 * DAY
    usd = hist(api, "eth-ethereum", start=start, interval="1d")[1]
    btc = hist(api, "eth-ethereum", start=start, interval="1d", quote="BTC")[1]
    assert [p["timestamp"] for p in usd] == [p["timestamp"] for p in btc]
    for u, b in zip(usd, btc, strict=True):
        assert b["price"] == pytest.approx(u["price"] / 67000, rel=1e-6)
    assert {p["price"] for p in hist(api, start=start, interval="1d", quote="btc")[1]} == {1.0}


def test_empty_answers_are_200(api: FakeCoinPaprika) -> None:
    now = int(api.now())
    assert hist(api, start=now + DAY, interval="1d") == (200, [])
    assert hist(api, start=now - 10 * DAY, end=now - 20 * DAY, interval="1d") == (200, [])


# ---------------------------------------------------------------- coins
def test_inactive_catalogue_coin_resolves_with_data_ending_in_the_past(
    api: FakeCoinPaprika,
) -> None:
    dead = next(c["id"] for c in api.coins if not c["is_active"])
    assert dead not in {t["id"] for t in api._pool}
    now = api.now()
    assert hist(api, dead, start=int(now) - 300 * DAY, interval="1d") == (200, [])  # long dead
    api.tier = "enterprise"
    status, points = hist(api, dead, start="2000-01-01", interval="1d", limit=5000)
    assert status == 200 and len(points) > 300
    last = epoch(points[-1]["timestamp"])
    assert START_EPOCH - 8 * 365 * DAY - DAY <= last <= START_EPOCH - 2 * 365 * DAY
    status, after = hist(api, dead, start=last - 2 * DAY, interval="1d")
    assert [p["timestamp"] for p in after] == [iso(last - 2 * DAY), iso(last - DAY), iso(last)]
    assert api.historical_point(dead, last + DAY) is None


def test_series_starts_at_first_data_at(api: FakeCoinPaprika) -> None:
    # Pin the clock a few days after the generated data (time_offset, as the scripts' clock).
    api.time_offset = START_EPOCH + 3 * DAY - time.time()
    now = api.now()
    young = [
        t
        for t in api._pool
        if "first_data_at" in t and now - 300 * DAY < epoch(t["first_data_at"]) < now - 30 * DAY
    ]
    assert young
    coin = young[0]
    status, points = hist(api, coin["id"], start=int(now) - 360 * DAY, interval="1d", limit=5000)
    assert status == 200
    assert points[0]["timestamp"] == coin["first_data_at"]
    assert points[-1]["timestamp"] == iso(midnight(now))
    if not coin["circulating_supply"]:
        assert {p["market_cap"] for p in points} == {0}


def test_nasty_coins(api: FakeCoinPaprika) -> None:
    start = int(api.now()) - 30 * DAY
    big = hist(api, api.historical_nasty["bigcap"], start=start, interval="1d")[1]
    assert big and all(p["market_cap"] > 2**53 for p in big)
    tiny = hist(api, api.historical_nasty["tiny"], start=start, interval="1d")[1]
    assert tiny and all(5e-9 < p["price"] < 5e-8 for p in tiny)
    status, raw, _ = call(
        api, f"/tickers/{api.historical_nasty['tiny']}/historical", start=start, interval="1d"
    )
    assert b"e-08" in raw


# ---------------------------------------------------------------- determinism
def test_identical_responses_twice(api: FakeCoinPaprika) -> None:
    day = midnight(api.now())
    params = {"start": day - 200 * DAY, "end": day - DAY, "interval": "1d"}
    first = call(api, "/tickers/eth-ethereum/historical", **params)
    again = call(api, "/tickers/eth-ethereum/historical", **params)
    assert first[0] == 200 and first[1] == again[1]
    hourly = {"start": int(api.now()) - 20 * 3600, "end": int(api.now()) - 3600, "interval": "1h"}
    assert (
        call(api, "/tickers/usdt-tether/historical", **hourly)[1]
        == (call(api, "/tickers/usdt-tether/historical", **hourly)[1])
    )


def test_series_equals_what_the_endpoint_sent(api: FakeCoinPaprika) -> None:
    day = midnight(api.now())
    coins = ["btc-bitcoin", "usdt-tether", api._pool[57]["id"], *api.historical_nasty.values()]
    for coin in coins:
        for quote in ("usd", "btc"):
            params = {"start": day - 300 * DAY, "end": day, "interval": "1d", "quote": quote}
            status, body, _ = call(api, f"/tickers/{coin}/historical", **params)
            series = api.historical_series(coin, day - 300 * DAY, day, "1d", quote=quote)
            assert status == 200 and json.loads(body) == series and series, coin
            assert api.historical_point(coin, day, quote) == series[-1]
    # neighbouring 5-minute points are close (a smooth walk, not noise around nothing)
    api.tier = "enterprise"
    points = api.historical_series("btc-bitcoin", int(api.now()) - 2 * DAY, None, "5m")
    prices = [p["price"] for p in points]
    assert max(abs(b / a - 1) for a, b in zip(prices, prices[1:], strict=False)) < 0.01
    with pytest.raises(KeyError):
        api.historical_series("nope-coin", day - DAY, day, "1d")


# ---------------------------------------------------------------- clock, faults, limits
def test_windows_and_newest_point_follow_time_offset(api: FakeCoinPaprika) -> None:
    real = time.time()
    start = int(real) - 300 * DAY
    assert hist(api, start=start, interval="1d")[0] == 200
    api.time_offset = 100 * DAY  # now is 100 days later: start is 400 days back
    status, body = hist(api, start=start, interval="1d")
    assert status == 402
    assert_cutoff(body, "daily", real + 100 * DAY - 365 * DAY)
    api.time_offset = -50 * DAY
    points = hist(api, start=start, interval="1d", limit=5000)[1]
    assert points[-1]["timestamp"] == iso(midnight(real - 50 * DAY))


def test_faults_match_exact_pattern_and_star(api: FakeCoinPaprika) -> None:
    start = int(api.now()) - 10 * DAY
    api.add_fault("/tickers/*/historical", "status", status=500, times=2)
    api.add_fault("/tickers/eth-ethereum/historical", "status", status=402, body="quota")
    assert hist(api, "eth-ethereum", start=start, interval="1d") == (402, {"error": "quota"})
    assert hist(api, "usdt-tether", start=start, interval="1d")[0] == 500
    assert hist(api, "eth-ethereum", start=start, interval="1d")[0] == 500
    assert hist(api, "eth-ethereum", start=start, interval="1d")[0] == 200
    assert call(api, "/tickers/eth-ethereum")[0] == 200  # the pattern is /historical only
    api.add_fault("*", "truncated_json")
    status, raw, _ = call(api, "/tickers/btc-bitcoin/historical", start=start, interval="1d")
    assert status == 200 and raw.startswith(b'[{"timestamp"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    assert api.count_historical() == 5 and api.count() == 6
    assert api.requests[0]["path"] == "/tickers/eth-ethereum/historical"
    assert api.requests[0]["query"] == {"start": str(start), "interval": "1d"}


def test_rate_limit_bursts_get_429_paced_calls_do_not(api: FakeCoinPaprika) -> None:
    api.set_rate_limit(10)
    start = int(api.now()) - 5 * DAY
    # Connections opened first, one at a time: the server's listen backlog is 5, and SYNs
    # dropped in a burst of new connections would spread the requests over seconds.
    port = int(api.url.split(":")[2].split("/")[0])
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(20)]
    for conn in conns:
        conn.connect()
        time.sleep(0.01)
    statuses: list[tuple[int, bytes, Any]] = []
    gate = threading.Barrier(len(conns))

    def one(i: int, conn: http.client.HTTPConnection) -> None:
        path = "/global" if i % 4 == 0 else "/tickers/btc-bitcoin/historical"
        gate.wait()
        conn.request("GET", f"/v1{path}?start={start}&interval=1d")
        response = conn.getresponse()
        statuses.append((response.status, response.read(), response.headers))
        conn.close()

    threads = [threading.Thread(target=one, args=item) for item in enumerate(conns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(statuses) == 20
    refused = [r for r in statuses if r[0] == 429]
    assert len(refused) == 10 and sum(1 for r in statuses if r[0] == 200) == 10
    assert api.rate_limited == len(refused)
    for _, body, headers in refused:
        assert json.loads(body) == {"error": "you have reached maximum request limit"}
        assert headers.get("Retry-After") is None
    api.set_rate_limit(10)  # a fresh window
    before = api.rate_limited
    for _ in range(7):  # 5/s for 1.4 s
        assert call(api, "/tickers/btc-bitcoin/historical", start=start, interval="1d")[0] == 200
        time.sleep(0.2)
    assert api.rate_limited == before


def test_latency_is_added_to_every_request(api: FakeCoinPaprika) -> None:
    api.set_latency(0.15)
    start = int(api.now()) - 5 * DAY
    for path in ("/tickers/btc-bitcoin/historical", "/global", "/tickers/btc-bitcoin"):
        t0 = time.monotonic()
        assert call(api, path, start=start, interval="1d")[0] == 200
        assert time.monotonic() - t0 >= 0.15
    api.reset_limits()
    t0 = time.monotonic()
    call(api, "/global")
    assert time.monotonic() - t0 < 0.15
