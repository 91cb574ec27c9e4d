"""Local fake of the CoinPaprika REST API v1 for tests and benchmarks (stdlib only).

In tests::

    from tests.fake_api import FakeCoinPaprika

    with FakeCoinPaprika(n_tickers=12_000, plan="paid") as api:
        run_collector("--base-url", api.url)      # api.url == "http://127.0.0.1:<port>/v1"
        api.add_fault("/tickers", "status", status=429, times=2, retry_after="1")
        api.advance(300)                          # simulate the next API refresh
        assert api.count("/tickers") == 3

Standalone (manual tests, benchmarks; serves until Ctrl-C)::

    uv run python tests/fake_api.py --port 8765 --tickers 12000 --coins 60000 --plan paid

Routes: /v1/tickers (whole list, page/limit ignored; free plan: first 2,000 rows and no
circulating_supply), /v1/tickers/{id}, /v1/tickers/{id}/historical, /v1/global, /v1/coins;
anything else is a text/plain 404.
Fault kinds: see FAULT_KINDS and FakeCoinPaprika.add_fault. If you mutate ``tickers``, ``coins``
or ``global_data`` by hand, call ``invalidate()`` so the cached bodies are rebuilt.

/historical runs on the wall clock (``now()`` = time.time() + ``time_offset``), not on the
``advance()`` clock of /tickers; its plan windows follow ``tier`` (HISTORICAL_WINDOWS). Its values
are a pure function of (seed, coin id, timestamp, quote), anchored to the tickers as generated
(hand edits and ``advance()`` do not move the past); ``historical_series()`` gives the same points
to compare with. ``latency_s`` and ``rate_limit_per_s`` apply to every route.
"""

from __future__ import annotations

import argparse
import calendar
import gzip
import hashlib
import json
import math
import random
import re
import socket
import struct
import sys
import threading
import time
import unicodedata
import zlib
from collections import deque
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

QUOTE_RATES: dict[str, float] = {
    "USD": 1.0, "EUR": 0.92, "BTC": 1 / 67000, "ETH": 1 / 3500, "PLN": 3.98, "KRW": 1380.0,
    "GBP": 0.79, "CAD": 1.37, "JPY": 151.2, "RUB": 92.5, "TRY": 32.4, "NZD": 1.66, "AUD": 1.52,
    "CHF": 0.89, "UAH": 39.6, "HKD": 7.82, "SGD": 1.35, "NGN": 1480.0, "PHP": 56.4, "MXN": 17.1,
    "BRL": 5.05, "THB": 36.3, "CLP": 941.0, "CNY": 7.24, "CZK": 23.3, "DKK": 6.87, "HUF": 362.0,
    "IDR": 15890.0, "ILS": 3.71, "INR": 83.4, "MYR": 4.74, "NOK": 10.8, "PKR": 278.0,
    "SEK": 10.6, "TWD": 32.1, "ZAR": 18.6, "VND": 25400.0, "BOB": 6.91, "COP": 3920.0,
    "PEN": 3.72, "ARS": 872.0, "ISK": 138.0,
}  # fmt: skip
FREE_PLAN_CAP = 2000
START_EPOCH = calendar.timegm((2026, 11, 25, 12, 0, 0, 0, 0, 0))
FAULT_KINDS = frozenset(
    "status html200 truncated truncated_json gzip_truncated hang trickle nan infinity bignum "
    "body duplicate_rows reset chunked redirect echo_key huge gzip_bomb mutate".split()
)
JSON_CT = "application/json"
_ERROR_MESSAGES = {
    400: "Invalid parameters",
    402: "Your plan's monthly request limit has been reached or this endpoint requires a "
    "higher plan",
    403: "invalid api key",
    404: "id not found",
    429: "you have reached maximum request limit",
    500: "internal error",
}
_HTML = (
    b"<!DOCTYPE html>\n<html><head><title>Just a moment...</title></head><body>"
    b"<h1>Cloudflare</h1><p>Checking your browser before accessing api.coinpaprika.com.</p>"
    b"<p>Ray ID: 8c1f00dd0badf00d</p></body></html>\n"
)
_NUM_TOKENS = {"nan": b"NaN", "infinity": b"Infinity", "bignum": b"1e400"}
_SYL = (
    "ba zor ki lum nex vo ra tek qui mo sol fi xa dra pel gon tri va hex lo mi cor zen ar "
    "ul ny sha tor bel kap ri dus"
).split()
_SUFFIX = ["Coin", "Token", "Protocol", "Network", "Finance", "Chain", "Swap", "DAO", "AI"]
_SUFFIX += ["Inu", "Cash", "Labs", "", "", ""]
_PCT_SCALE = (
    ("15m", 0.3), ("30m", 0.5), ("1h", 0.8), ("6h", 2.0), ("12h", 3.0),
    ("24h", 4.0), ("7d", 9.0), ("30d", 18.0), ("1y", 60.0),
)  # fmt: skip
# (name, symbol): every entry is placed once inside the free-plan top 2,000 and once beyond it.
NASTY: list[tuple[str, str]] = [
    ("Ŝtar ⭐ Coin", "STAR"), ("日本円コイン", "JPYC"), ("🚀 Moon Rocket 🌕", "MOON"),
    ("Comma, Separated, Coin", "CSV"), ('The "Quoted" Token', 'QU"OT'),
    ("Line\nBreak", "LNBR"), ("Carriage\r\nReturn", "CRLF"), ("Para\u2028Line Sep", "LSEP"),
    ("Para\u2029Para Sep", "PSEP"), ("Next\u0085Line", "NEL"), ("Tab\tInside", "TAB"),
    ("\tLeading Tab", "LTAB"), ('=HYPERLINK("http://x")', "=HYPR"), ("+SUM(A1)", "+SUM"),
    ("-1+2", "-12"), ("@cmd", "@CMD"), ("=1+1", "=1+1"), ("Bitcoin Classic Wrapped", "BTC"),
    ("Ethereum Fair", "ETH"), ("Sky", "SKY"), ("Zero\u200bWidth", "ZWSP"),
    ("Ελληνικό Νόμισμα", "GRK"), ("عملة عربية", "ARBC"), ("Back\\slash; Semi|Pipe", "BSL"),
    ("<script>alert(1)</script>", "XSS"), ("  Padded Name  ", " PAD "), ("Ünïcödé Çøïñ", "UNI"),
]  # fmt: skip
_TOP3 = [  # id, name, symbol, circ, total, max, beta, first_data_at, usd quote values
    ("btc-bitcoin", "Bitcoin", "BTC", 19912437, 19912437, 21000000, 0.894521, "2010-07-17",
     67432.1587162, 31870431204.117, 108786.05, "2025-05-22T07:15:00Z"),
    ("eth-ethereum", "Ethereum", "ETH", 120703512, 120703512, 0, 1.07214, "2015-08-07",
     3521.4218093, 15203385011.402, 4878.26, "2021-11-10T16:05:00Z"),
    ("usdt-tether", "Tether", "USDT", 158214998034, 161402557714, 0, -0.00021, "2015-02-25",
     1.0001832, 58214773019.44, 1.21549, "2015-02-25T17:04:00Z"),
]  # fmt: skip
_SELF_QUOTE = {("btc-bitcoin", "BTC"), ("eth-ethereum", "ETH")}

# /tickers/{id}/historical. Plan windows: how far back `start` may go, in seconds
# (None = unlimited, 0 = the interval class is not available on that tier).
_DAY = 86400
HISTORICAL_TIERS = ("free", "starter", "pro", "business", "ultimate", "enterprise")
HISTORICAL_WINDOWS: dict[str, dict[str, int | None]] = {
    cls: dict(zip(HISTORICAL_TIERS, windows, strict=True)) for cls, windows in (
        # class   free        starter         pro         business     ultimate enterprise
        ("daily",  (365 * _DAY, 5 * 365 * _DAY, None,       None,        None,    None)),
        ("hourly", (_DAY,       30 * _DAY,      90 * _DAY,  365 * _DAY,  None,    None)),
        ("minute", (0,          7 * _DAY,       30 * _DAY,  365 * _DAY,  None,    None)),
    )
}  # fmt: skip
# interval -> (grid step in seconds, class); every grid is a multiple of 300 s from the epoch.
HISTORICAL_INTERVALS: dict[str, tuple[int, str]] = {
    "5m": (300, "minute"), "10m": (600, "minute"), "15m": (900, "minute"),
    "30m": (1800, "minute"), "45m": (2700, "minute"),
    "1h": (3600, "hourly"), "2h": (7200, "hourly"), "3h": (10800, "hourly"),
    "6h": (21600, "hourly"), "12h": (43200, "hourly"),
    "24h": (_DAY, "daily"), "1d": (_DAY, "daily"), "7d": (7 * _DAY, "daily"),
    "14d": (14 * _DAY, "daily"), "30d": (30 * _DAY, "daily"), "90d": (90 * _DAY, "daily"),
    "365d": (365 * _DAY, "daily"),
}  # fmt: skip
HISTORICAL_BTC_USD = 1 / QUOTE_RATES["BTC"]  # quote=btc: USD values / this fixed price
HISTORICAL_MAX_LIMIT = 5000
_HIST_PATH = re.compile(r"/tickers/[^/]+/historical")
_HIST_FAULT_KEY = "/tickers/*/historical"
_WHEN = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:T([0-9]{2}):([0-9]{2}):([0-9]{2})Z)?")
# Smooth part of a coin's log price: (amplitude, period in seconds) of a few sines.
_WAVES = (
    (0.45, 3.3 * 365 * _DAY), (0.22, 200 * _DAY), (0.09, 37 * _DAY), (0.035, 5.7 * _DAY),
    (0.012, 17 * 3600),
)  # fmt: skip
_M64 = (1 << 64) - 1


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON like the real API; lists row by row (keeps non-ASCII rows cheap)."""
    if isinstance(obj, list):
        return b"[" + b",".join(_ENCODER.encode(x).encode() for x in obj) + b"]"
    return _ENCODER.encode(obj).encode()


def _dumps_any(obj: Any) -> bytes:
    """Like _dumps, but odd strings (lone surrogates) go out \\u-escaped, as JSON allows."""
    try:
        return _dumps(obj)
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":")).encode()


_BOMBS: dict[int, bytes] = {}


def _gzip_bomb(mb: int) -> bytes:
    if mb not in _BOMBS:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        block = b" " * 1_000_000
        _BOMBS[mb] = b"".join(
            [packer.compress(b"[") for _ in range(1)]
            + [packer.compress(block) for _ in range(mb)]
            + [packer.compress(b"]"), packer.flush()]
        )
    return _BOMBS[mb]


def _sig(x: float, digits: int = 7) -> float:
    return float(f"{x:.{digits}g}")


def _accepts_gzip(value: str) -> bool:
    for part in value.lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "x-gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def historical_window(tier: str, interval: str) -> int | None:
    """How far back (seconds) ``start`` may go for ``interval`` on ``tier``.

    None means unlimited, 0 that the interval's class is not available on that tier.

    Raises:
        ValueError: an unknown tier or interval.
    """
    if tier not in HISTORICAL_TIERS or interval not in HISTORICAL_INTERVALS:
        raise ValueError(f"unknown tier or interval: {tier!r}, {interval!r}")
    return HISTORICAL_WINDOWS[HISTORICAL_INTERVALS[interval][1]][tier]


def _parse_when(value: str | float) -> int | None:
    """`start`/`end` as the API takes them: RFC 3339 ...Z to the second, YYYY-MM-DD, or Unix
    seconds (digits). Numbers pass through (floored). None for anything else."""
    if isinstance(value, int | float):
        return math.floor(value)
    if re.fullmatch(r"[0-9]{1,12}", value):
        return int(value)
    m = _WHEN.fullmatch(value)
    if m is None:
        return None
    try:
        parts = [int(x or 0) for x in m.groups()]
        datetime(*parts)  # validates month, day, hour ...
    except ValueError:
        return None
    return calendar.timegm((*parts, 0, 0, 0))


def _iso_ns(epoch: float) -> str:
    """RFC 3339 with 9 fractional digits, like the API's window cutoffs."""
    sec = math.floor(epoch)
    return f"{_iso(sec)[:-1]}.{min(int((epoch - sec) * 1e9), 999_999_999):09d}Z"


_DAY_TEXT: dict[int, str] = {}
_TIME_TEXT = [f"{sec // 3600:02d}:{sec // 60 % 60:02d}:00Z" for sec in range(0, _DAY, 300)]
_HIST_KEYS = ("timestamp", "price", "volume_24h", "market_cap")
_HIST_ROW = '{{"timestamp":"{}","price":{!r},"volume_24h":{},"market_cap":{}}}'


def _iso_fast(epoch: int) -> str:
    """_iso, faster on the 5-minute grid (memoises the date part)."""
    day, sec = divmod(epoch, _DAY)
    text = _DAY_TEXT.get(day)
    if text is None:
        text = _DAY_TEXT[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * _DAY))
    if sec % 300 == 0:
        return text + _TIME_TEXT[sec // 300]
    return f"{text}{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}Z"


def _hist_body(rows: list[tuple[str, float, int, int]]) -> bytes:
    """What _dumps() makes of the rows as dicts (float repr is JSON's), about 3x faster."""
    return ("[" + ",".join([_HIST_ROW.format(*row) for row in rows]) + "]").encode()


class _HistCoin:
    """What a coin's historical series is made of (see FakeCoinPaprika._hist_coin)."""

    __slots__ = ("cid", "key", "price", "supply", "volume", "first", "last", "waves", "anchor")
    __slots__ += ("noise", "digits", "zero_volume")

    def __init__(self, cid: str, key: int, price: float, supply: float, volume: float,
                 first: int, last: int | None, sigma: float, anchor_t: int,
                 zero_volume: float = 0.0) -> None:  # fmt: skip
        self.cid, self.key, self.price, self.supply, self.volume = cid, key, price, supply, volume
        self.first, self.last, self.zero_volume = first, last, zero_volume
        self.noise, self.digits = 0.006 * sigma, 7 + key % 4
        self.waves = tuple(
            (sigma * amp, 2 * math.pi / period, (key >> (8 + 6 * i)) % 6283 / 1000)
            for i, (amp, period) in enumerate(_WAVES)
        )
        self.anchor = self.smooth(anchor_t)

    def smooth(self, t: int) -> float:
        return sum(amp * math.sin(omega * t + phase) for amp, omega, phase in self.waves)

    def rows(self, first: int, n: int, step: int, quote: str) -> list[tuple[str, float, int, int]]:
        """(timestamp, price, volume_24h, market_cap) at first, first + step, ... (n points)."""
        (a0, w0, p0), (a1, w1, p1), (a2, w2, p2), (a3, w3, p3), (a4, w4, p4) = self.waves
        sin, exp, iso, m64 = math.sin, math.exp, _iso_fast, _M64
        key, anchor, noise = self.key, self.anchor, self.noise
        base, supply, base_volume = self.price, self.supply, self.volume
        zero_volume, fmt = self.zero_volume, f".{self.digits}g"
        # quote=btc: USD values / a fixed BTC price; Bitcoin's own / its price (1 BTC = 1 BTC).
        btc, own = quote == "btc", self.cid == "btc-bitcoin"
        out = []
        for t in range(first, first + n * step, step):
            h = ((key ^ t) + 0x9E3779B97F4A7C15) & m64  # splitmix64: noise per (coin, t)
            h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & m64
            h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & m64
            h ^= h >> 31
            smooth = (
                a0 * sin(w0 * t + p0) + a1 * sin(w1 * t + p1) + a2 * sin(w2 * t + p2)
                + a3 * sin(w3 * t + p3) + a4 * sin(w4 * t + p4) - anchor
            )  # fmt: skip
            price = base * exp(smooth + noise * ((h >> 32) / 4294967296 - 0.5))
            u = (h & 0xFFFFFFFF) / 4294967296
            volume = 0.0
            if base_volume and u >= zero_volume:
                volume = base_volume * exp(0.5 * smooth + 0.4 * (u - 0.5))
            if btc:
                rate = price if own else HISTORICAL_BTC_USD
                price, volume = price / rate, volume / rate
            price = float(format(price, fmt))
            out.append((iso(t), price, round(volume), round(price * supply)))
        return out


class _Body:
    """A response body with a lazily built, cached gzip version."""

    __slots__ = ("plain", "_gz", "_lock")

    def __init__(self, plain: bytes) -> None:
        self.plain, self._gz, self._lock = plain, None, threading.Lock()

    def gz(self) -> bytes:
        with self._lock:
            if self._gz is None:
                self._gz = gzip.compress(self.plain, compresslevel=1, mtime=0)
            return self._gz


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120

    def version_string(self) -> str:
        return "cloudflare"

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)  # type: ignore[attr-defined]

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.fake._track(self.connection, add=False)  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self.server.fake._handle(self)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # hang-ups are expected; bugs are not
            super().handle_error(request, client_address)


class FakeCoinPaprika:
    """In-process fake CoinPaprika API v1 server; see the module docstring."""

    def __init__(
        self,
        n_tickers: int = 12_000,
        n_coins: int = 60_000,
        plan: str = "paid",
        api_key: str | None = None,
        seed: int = 7,
        port: int = 0,
        *,
        tier: str | None = None,
        window_status: int = 402,
        latency_s: float = 0.0,
        rate_limit_per_s: int | None = None,
    ) -> None:
        if plan not in ("free", "paid"):
            raise ValueError(f"plan must be 'free' or 'paid', not {plan!r}")
        tier = tier or ("free" if plan == "free" else "starter")
        if tier not in HISTORICAL_TIERS:
            raise ValueError(f"tier must be one of {HISTORICAL_TIERS}, not {tier!r}")
        self.plan, self.api_key, self.seed, self.port = plan, api_key, seed, port
        self.tier, self.window_status = tier, window_status
        self.time_offset: float = 0.0  # /historical's clock: now() = time.time() + time_offset
        self.latency_s: float = 0.0
        self.rate_limit_per_s: int | None = None
        self.rate_limited = 0  # requests answered 429 by the rate limit
        self._arrivals: deque[float] = deque()
        self.requests: list[dict] = []
        self._lock = threading.RLock()  # data + caches
        self._req_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._faults: dict[str, deque[list]] = {}
        self._cache: dict[tuple, _Body] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._now, self._step = START_EPOCH, 0
        self._pool, self._lag, types = self._gen_tickers(n_tickers, random.Random(seed))
        self._hist_init()
        self.set_latency(latency_s)
        self.set_rate_limit(rate_limit_per_s)
        self.coins: list[dict] = self._gen_coins(n_coins, types, random.Random(seed + 1))
        self.tickers: list[dict] = []
        self.global_data: dict = {}
        self.set_ticker_count(len(self._pool))

    # ------------------------------------------------------------------ data generation
    def _gen_tickers(self, n: int, rng: random.Random) -> tuple[list[dict], list[int], list]:
        n_unranked = n // 100 if n >= 100 else 0
        n_ranked = n - n_unranked
        cap = min(n_ranked, FREE_PLAN_CAP)
        lo, hi = range(3, cap), range(cap, n_ranked)
        special = dict(zip(rng.sample(lo, min(len(lo), len(NASTY))), NASTY, strict=False))
        special.update(zip(rng.sample(hi, min(len(hi), len(NASTY))), NASTY, strict=False))
        seen: set[str] = set()
        pool, lags, types = [], [], []
        for i in range(n):
            rank = i + 1 if i < n_ranked else 0
            if i < len(_TOP3):
                t = self._top_ticker(*_TOP3[i])
            else:
                if i in special:
                    name, sym = special[i]
                    base_id = f"{_slug(sym) or 'x'}-{_slug(name) or 'coin'}"
                else:
                    name, sym, base_id = self._gen_name(rng)
                    if i % 397 == 0:
                        sym, base_id = "SKY", "sky-" + base_id.partition("-")[2]
                cid, k = base_id, 1
                while cid in seen:
                    k += 1
                    cid = f"{base_id}-{k}"
                t = self._gen_ticker(rng, cid, name, sym, rank or n_ranked + rng.randint(1, 900))
            t["rank"] = rank
            seen.add(t["id"])
            pool.append(t)
            lags.append(rng.choice((60, 120, 600, 3600, 86400)) if rng.random() < 0.02 else 0)
            types.append("coin" if i < 2 or rng.random() < 0.3 else "token")
        for t, lag in zip(pool, lags, strict=True):
            t["last_updated"] = _iso(START_EPOCH - lag)
        return pool, lags, types

    @staticmethod
    def _gen_name(rng: random.Random) -> tuple[str, str, str]:
        r, n = rng.random, len(_SYL)  # random() indexing: ~3x faster than choice()/randint()
        base = "".join(_SYL[int(r() * n)] for _ in range(2 + (r() < 0.4))).capitalize()
        suffix = _SUFFIX[int(r() * len(_SUFFIX))]
        name = f"{base} {suffix}" if suffix else base
        sym = base[: 3 + int(r() * 3)].upper()
        return name, sym, f"{sym.lower()}-{name.lower().replace(' ', '-')}"

    @staticmethod
    def _top_ticker(cid, name, sym, circ, total, mx, beta, first, price, vol, ath, ath_date):
        quote = {"price": price, "volume_24h": vol, "volume_24h_change_24h": -8.9}
        quote["market_cap"] = round(price * circ)
        quote["market_cap_change_24h"] = 1.07
        for key, scale in _PCT_SCALE:
            quote[f"percent_change_{key}"] = round(scale / 4, 2)
        quote.update(ath_price=ath, ath_date=ath_date)
        quote["percent_from_price_ath"] = round((price / ath - 1) * 100, 2)
        return {
            "id": cid, "name": name, "symbol": sym, "rank": 0, "circulating_supply": circ,
            "total_supply": total, "max_supply": mx, "beta_value": beta,
            "first_data_at": f"{first}T00:00:00Z", "last_updated": "", "quotes": {"USD": quote},
        }  # fmt: skip

    @staticmethod
    def _gen_ticker(rng: random.Random, cid: str, name: str, sym: str, r: int) -> dict:
        target = 1.1e12 * r**-1.6 * rng.uniform(0.6, 1.4)
        supply = int(10 ** rng.uniform(3, 14.8))
        price = _sig(target / supply)
        roll = rng.random()
        circ: float = 0 if roll < 0.04 else supply
        if 0.04 <= roll < 0.14:
            circ = round(supply + rng.random(), 6)  # fractional supply
        if rng.random() < 0.02:
            total: float | None = None
        elif circ:
            total = circ if rng.random() < 0.4 else int(circ * rng.uniform(1, 2.5))
        else:
            total = int(supply * rng.uniform(1, 5))
        mx = 0 if total is None or rng.random() < 0.35 else int(total * rng.choice((1, 1, 1.5, 3)))
        t = {
            "id": cid, "name": name, "symbol": sym, "rank": 0, "circulating_supply": circ,
            "total_supply": total, "max_supply": mx,
            "beta_value": 0 if rng.random() < 0.04 else round(rng.uniform(-0.3, 2.2), 6),
        }  # fmt: skip
        if rng.random() >= 0.03:
            day = rng.randint(START_EPOCH - 13 * 365 * 86400, START_EPOCH - 2 * 86400)
            t["first_data_at"] = _iso(day - day % 86400)
        t["last_updated"] = ""
        pct = {f"percent_change_{k}": round(rng.gauss(0, s), 2) + 0.0 for k, s in _PCT_SCALE}
        pct["percent_change_1y"] = max(pct["percent_change_1y"], -99.9)
        volume = 0 if rng.random() < 0.04 else round(target * rng.uniform(0.002, 0.3), 3)
        quote = {
            "price": price,
            "volume_24h": volume,
            "volume_24h_change_24h": round(rng.gauss(0, 15), 2) if volume else 0,
            "market_cap": round(price * circ),
            "market_cap_change_24h": pct["percent_change_24h"],
            **pct,
        }
        if rng.random() < 0.05:
            quote.update(ath_price=None, ath_date=None, percent_from_price_ath=None)
        else:
            ath = _sig(price * rng.uniform(1, 40))
            quote["ath_price"] = ath
            quote["ath_date"] = _iso(rng.randint(START_EPOCH - 8 * 365 * 86400, START_EPOCH))
            quote["percent_from_price_ath"] = round((price / ath - 1) * 100, 2)
        t["quotes"] = {"USD": quote}
        return t

    def _gen_coins(self, n: int, types: list, rng: random.Random) -> list[dict]:
        coins = [
            {"id": t["id"], "name": t["name"], "symbol": t["symbol"], "rank": t["rank"],
             "is_new": rng.random() < 0.01, "is_active": True, "type": ty}
            for t, ty in zip(self._pool[:n], types, strict=False)
        ]  # fmt: skip
        seen = {c["id"] for c in coins}
        while len(coins) < n:
            name, sym, base_id = self._gen_name(rng)
            cid, k = base_id, 1
            while cid in seen:
                k += 1
                cid = f"{base_id}-{k}"
            seen.add(cid)
            coin_type = "coin" if rng.random() < 0.3 else "token"
            coins.append(
                {"id": cid, "name": name, "symbol": sym, "rank": 0, "is_new": False,
                 "is_active": False, "type": coin_type}
            )  # fmt: skip
        return coins

    def _recompute_global(self) -> None:
        usd = [t["quotes"]["USD"] for t in self.tickers]
        mcap = round(sum(q["market_cap"] for q in usd))
        vol = round(sum(q["volume_24h"] for q in usd))
        btc = self._index.get("btc-bitcoin")
        btc_mcap = btc["quotes"]["USD"]["market_cap"] if btc else 0
        vol_ath = 33401557439370
        self.global_data = {
            "market_cap_usd": mcap, "volume_24h_usd": vol,
            "bitcoin_dominance_percentage": round(btc_mcap / mcap * 100, 2) if mcap else 0,
            "cryptocurrencies_number": len(self.tickers),
            "market_cap_ath_value": max(mcap, 3874105529318),
            "market_cap_ath_date": "2025-10-06T18:05:00Z", "volume_24h_ath_value": vol_ath,
            "volume_24h_ath_date": "2021-10-22T12:50:00Z",
            "volume_24h_percent_from_ath": round((vol / vol_ath - 1) * 100, 2),
            "volume_24h_percent_to_ath": 9999.99,
            "market_cap_change_24h": round(0.92 + self._step * 0.01, 2),
            "volume_24h_change_24h": -10.37, "last_updated": self._now,
        }  # fmt: skip

    # ------------------------------------------------------------------ public data API
    def invalidate(self) -> None:
        """Drop cached response bodies (call after mutating tickers/coins by hand)."""
        with self._lock:
            self._cache.clear()
            self._index = {t["id"]: t for t in self.tickers}

    def set_ticker_count(self, n: int) -> None:
        """Serve only the first ``n`` tickers of the generated pool (0 <= n <= pool size)."""
        if not 0 <= n <= len(self._pool):
            raise ValueError(f"ticker count must be within 0..{len(self._pool)}")
        with self._lock:
            self.tickers = self._pool[:n]
            self.invalidate()
            self._recompute_global()
        self.warm()

    @property
    def served(self) -> int:
        """How many rows /tickers answers with (the free plan's cap applied)."""
        return min(len(self.tickers), FREE_PLAN_CAP) if self.plan == "free" else len(self.tickers)

    def advance(self, seconds: int = 300) -> None:
        """Simulate an API refresh: timestamps move by ``seconds``, prices move a little."""
        with self._lock:
            self._step += 1
            self._now += int(seconds)
            rng = random.Random(self.seed * 1_000_003 + self._step)
            stamps: dict[int, str] = {}
            for t, lag in zip(self._pool, self._lag, strict=True):
                epoch = self._now - lag
                t["last_updated"] = stamps.get(epoch) or stamps.setdefault(epoch, _iso(epoch))
                q = t["quotes"]["USD"]
                factor = 1 + rng.gauss(0, 0.004)
                q["price"] = price = _sig(q["price"] * factor)
                q["market_cap"] = round(price * (t.get("circulating_supply") or 0))
                q["percent_change_15m"] = round((factor - 1) * 100, 2) + 0.0
                if q["volume_24h"]:
                    q["volume_24h"] = round(q["volume_24h"] * (1 + rng.gauss(0, 0.01)), 3)
                if q["ath_price"] is not None:
                    if price > q["ath_price"]:
                        q["ath_price"], q["ath_date"] = price, t["last_updated"]
                    q["percent_from_price_ath"] = round((price / q["ath_price"] - 1) * 100, 2)
            self.invalidate()
            self._recompute_global()
        self.warm()

    def warm(self) -> None:
        """Build the usual /tickers body (USD, plain and gzip) now, in the caller's thread: a
        body built inside a request on a busy machine could outlast the client's timeout."""
        self._cached((self.plan, ("USD",)), lambda: _dumps(self._rows(("USD",)))).gz()

    # ------------------------------------------------------------------ faults / observation
    @staticmethod
    def _norm(path: str) -> str:
        return path[3:] if path.startswith("/v1/") else path

    def add_fault(self, path: str, kind: str, times: int = 1, **opts: Any) -> None:
        """Queue a fault for the next ``times`` requests to ``path`` ("*" = any; -1 = forever).

        "/tickers/*/historical" matches any coin's /historical call (checked after the exact
        path, before "*").
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if times == 0 or times < -1:
            raise ValueError("times must be positive or -1")
        if kind == "gzip_bomb":  # built now: a slow body inside the request would time out
            _gzip_bomb(int(opts.get("mb", 1000)))
        with self._req_lock:
            self._faults.setdefault(self._norm(path), deque()).append([kind, times, opts])

    def clear_faults(self) -> None:
        with self._req_lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> tuple[str, dict] | None:
        keys = (path, _HIST_FAULT_KEY, "*") if _HIST_PATH.fullmatch(path) else (path, "*")
        with self._req_lock:
            for key in keys:
                queue = self._faults.get(key)
                if queue:
                    entry = queue[0]
                    if entry[1] > 0:
                        entry[1] -= 1
                        if entry[1] == 0:
                            queue.popleft()
                    return entry[0], entry[2]
        return None

    def count(self, path: str | None = None) -> int:
        with self._req_lock:
            if path is None:
                return len(self.requests)
            path = self._norm(path)
            return sum(1 for r in self.requests if r["path"] == path)

    def reset_requests(self) -> None:
        with self._req_lock:
            self.requests.clear()

    def count_historical(self) -> int:
        """How many /tickers/{id}/historical requests arrived (any coin)."""
        with self._req_lock:
            return sum(1 for r in self.requests if _HIST_PATH.fullmatch(r["path"]))

    def set_latency(self, seconds: float) -> None:
        """Sleep ``seconds`` before answering every request (any route)."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self.latency_s = float(seconds)

    def set_rate_limit(self, per_s: int | None) -> None:
        """Answer 429 to a request that makes more than ``per_s`` arrivals within the last
        second (sliding, every route and client; refused ones count too). None = no limit."""
        if per_s is not None and per_s < 1:
            raise ValueError("rate limit must be >= 1 or None")
        with self._req_lock:
            self.rate_limit_per_s = per_s
            self._arrivals.clear()

    def reset_limits(self) -> None:
        """No latency, no rate limit."""
        self.set_latency(0.0)
        self.set_rate_limit(None)

    def _over_limit(self, arrival: float) -> bool:
        """Count an arrival (caller holds _req_lock); True when it is over the rate limit."""
        limit = self.rate_limit_per_s
        if limit is None:
            return False
        window = self._arrivals
        while window and window[0] <= arrival - 1.0:
            window.popleft()
        window.append(arrival)
        if len(window) > limit:
            self.rate_limited += 1
            return True
        return False

    # ------------------------------------------------------------------ historical
    def now(self) -> float:
        """The clock of /historical (plan windows, newest point): wall clock + time_offset."""
        return time.time() + self.time_offset

    def _hist_init(self) -> None:
        """Snapshot what the past is anchored to (advance() and hand edits do not move it)."""
        self._hist_lock = threading.Lock()
        self._hist_meta: dict[str, _HistCoin] = {}
        self._hist_catalogue: tuple[int, int, dict[str, bool]] = (0, -1, {})
        self._hist_base = {
            t["id"]: (i, t["quotes"]["USD"]["price"], t.get("circulating_supply") or 0,
                      t["quotes"]["USD"]["volume_24h"] or 0, t.get("first_data_at"))
            for i, t in enumerate(self._pool)
        }  # fmt: skip
        # Nasty series: a market cap above 2**53, a price around 1e-08.
        usable = [t["id"] for t in self._pool[10:FREE_PLAN_CAP] if t.get("circulating_supply")]
        picks = random.Random(self.seed + 2).sample(usable, 2) if len(usable) >= 2 else []
        self.historical_nasty: dict[str, str] = dict(zip(("bigcap", "tiny"), picks, strict=False))

    def _hist_key(self, cid: str) -> int:
        digest = hashlib.blake2b(f"{self.seed}:{cid}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def _catalogue(self) -> dict[str, bool]:
        """id -> is_active of ``coins`` (rebuilt when the list is replaced or resized)."""
        with self._hist_lock:
            ident, size, index = self._hist_catalogue
            if ident != id(self.coins) or size != len(self.coins):
                index = {c["id"]: bool(c.get("is_active")) for c in self.coins}
                self._hist_catalogue = (id(self.coins), len(self.coins), index)
            return index

    def _hist_coin(self, cid: str) -> _HistCoin | None:
        """The series parameters of a known coin (pool ticker or catalogue coin), else None."""
        coin = self._hist_meta.get(cid)
        if coin is not None:
            return coin
        base = self._hist_base.get(cid)
        if base is None:
            active = self._catalogue().get(cid)
            if active is None:
                return None
        key = self._hist_key(cid)
        rng = random.Random(f"{self.seed}:{cid}:historical")
        if base is not None:
            i, price, supply, volume, first_text = base
            if first_text:
                first = calendar.timegm(time.strptime(first_text, "%Y-%m-%dT%H:%M:%SZ"))
            else:
                first = START_EPOCH // _DAY * _DAY - rng.randint(30, 3650) * _DAY
            sigma = {"usdt-tether": 0.002, "btc-bitcoin": 0.6, "eth-ethereum": 0.8}.get(cid)
            if sigma is None:
                sigma = 0.5 + key % 1001 / 1000
            zero = 0.02 if i >= 1000 else 0.0
            if cid == self.historical_nasty.get("bigcap"):
                sigma, supply = 0.3, round(40 * 2**53 / price)
            elif cid == self.historical_nasty.get("tiny"):
                price, supply = 1e-08 * (1 + key % 9 / 10), 420_690_000_000_000
                volume = price * supply * 0.05
            coin = _HistCoin(cid, key, price, supply, volume, first, None, sigma, START_EPOCH, zero)
        else:
            midnight = START_EPOCH // _DAY * _DAY
            last = None if active else midnight - _DAY * rng.randint(2 * 365, 8 * 365)
            first = (last or midnight) - _DAY * rng.randint(365, 6 * 365)
            price = 10 ** rng.uniform(-7, 1)
            supply = 0 if rng.random() < 0.15 else int(10 ** rng.uniform(5, 12))
            volume = 0.0 if rng.random() < 0.2 else 10 ** rng.uniform(1, 6)
            coin = _HistCoin(cid, key, price, supply, volume, first, last, 1.5,
                             last or START_EPOCH, 0.03)  # fmt: skip
        with self._hist_lock:
            return self._hist_meta.setdefault(cid, coin)

    @staticmethod
    def _hist_rows(c: _HistCoin, start: int, end: int, step: int, now: float, quote: str,
                   limit: int | None = None) -> list[tuple[str, float, int, int]]:  # fmt: skip
        """The grid points start <= t <= end, t <= now (to 5 minutes), within the coin's data."""
        lo = max(start, c.first)
        hi = min(end, math.floor(now) // 300 * 300)
        if c.last is not None:
            hi = min(hi, c.last)
        first, last = -(-lo // step) * step, hi // step * step
        if first > last:
            return []
        n = (last - first) // step + 1
        return c.rows(first, n if limit is None else min(n, limit), step, quote)

    def historical_point(self, coin_id: str, epoch: float, quote: str = "usd") -> dict | None:
        """The point the API has for ``coin_id`` at ``epoch`` (any second; the endpoint only
        serves grid points up to now); None for an unknown coin or outside its data."""
        quote = quote.lower()
        if quote not in ("usd", "btc"):
            raise ValueError(f"quote must be 'usd' or 'btc', not {quote!r}")
        c, t = self._hist_coin(coin_id), math.floor(epoch)
        if c is None or t < c.first or (c.last is not None and t > c.last):
            return None
        return dict(zip(_HIST_KEYS, c.rows(t, 1, 1, quote)[0], strict=True))

    def historical_series(self, coin_id: str, start: str | float, end: str | float | None,
                          interval: str, quote: str = "usd") -> list[dict]:  # fmt: skip
        """Exactly the points /historical answers now for these parameters, without ``limit``
        (and without the plan window check). start/end: as the endpoint takes them, or epochs;
        end None = now.

        Raises:
            KeyError: an unknown coin id.
            ValueError: an unparsable start/end, an unknown interval or quote.
        """
        now = self.now()
        c = self._hist_coin(coin_id)
        if c is None:
            raise KeyError(coin_id)
        lo, hi = _parse_when(start), _parse_when(math.floor(now) if end is None else end)
        quote = quote.lower()
        if lo is None or hi is None or interval not in HISTORICAL_INTERVALS:
            raise ValueError(f"bad start/end/interval: {start!r}, {end!r}, {interval!r}")
        if quote not in ("usd", "btc"):
            raise ValueError(f"quote must be 'usd' or 'btc', not {quote!r}")
        rows = self._hist_rows(c, lo, hi, HISTORICAL_INTERVALS[interval][0], now, quote)
        return [dict(zip(_HIST_KEYS, row, strict=True)) for row in rows]

    def _historical(self, coin_id: str, query: dict) -> tuple[int, _Body, str]:
        coin = self._hist_coin(coin_id)
        if coin is None:
            return self._error(404, "id not found")
        now = self.now()
        if not query.get("start"):
            return self._error(400, "start is required")
        start = _parse_when(query["start"])
        end = _parse_when(query["end"]) if query.get("end") else math.floor(now)
        if start is None or end is None:
            return self._error(400, "Invalid parameters")
        raw_limit = query.get("limit") or "1000"
        if not re.fullmatch(r"[+-]?[0-9]{1,18}", raw_limit):
            return self._error(400, "Invalid parameters")
        limit = int(raw_limit)
        if not 1 <= limit <= HISTORICAL_MAX_LIMIT:
            return self._error(400, f"limit must be between 1 and {HISTORICAL_MAX_LIMIT}")
        quote = (query.get("quote") or "usd").lower()
        spec = HISTORICAL_INTERVALS.get(query.get("interval") or "5m")
        if quote not in ("usd", "btc") or spec is None:
            return self._error(400, "Invalid parameters")
        step, cls = spec
        window = HISTORICAL_WINDOWS[cls][self.tier]
        tail = " is not allowed in this plan. Check plans on coinpaprika.com/api"
        if window == 0:
            return self._error(self.window_status, f"Getting {cls} historical data{tail}")
        if window is not None and start < now - window:
            cutoff = _iso_ns(now - window)
            return self._error(
                self.window_status, f"Getting {cls} historical data before {cutoff}{tail}"
            )
        rows = self._hist_rows(coin, start, end, step, now, quote, limit)
        return 200, _Body(_hist_body(rows)), JSON_CT

    # ------------------------------------------------------------------ server lifecycle
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeCoinPaprika is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeCoinPaprika:
        if self._server is None:
            self._stopping.clear()
            self._server = _Server(("127.0.0.1", self.port), _Handler)
            self._server.fake = self  # type: ignore[attr-defined]
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes hang/trickle handlers
        server.shutdown()
        with self._req_lock:
            conns = list(self._conns)
        for conn in conns:  # wake handlers idling on keep-alive connections
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeCoinPaprika:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._req_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # ------------------------------------------------------------------ request handling
    def _quotes(self, raw: str | None) -> tuple[str, ...] | str:
        items = (raw or "USD").split(",")
        if len(items) > 3:
            return "Max number of quotes is 3"
        if any(q not in QUOTE_RATES for q in items):
            return "Invalid parameters"
        return tuple(sorted(set(items)))  # Go marshals map keys sorted

    def _quote(self, t: dict, usd: dict, code: str) -> dict:
        if code == "USD":
            return usd
        rate, q = QUOTE_RATES[code], dict(usd)
        for key in ("price", "volume_24h", "market_cap", "ath_price"):
            if q[key] is not None:
                q[key] = q[key] * rate
        if rate >= 1 and isinstance(usd["market_cap"], int):
            q["market_cap"] = round(usd["market_cap"] * rate)
        if (t["id"], code) in _SELF_QUOTE:
            q.update({k: 0 for k in q if "change" in k}, price=1)
            q.update(market_cap=t.get("circulating_supply") or 0, ath_price=None, ath_date=None)
            q.update(percent_from_price_ath=None)
        return q

    def _render(self, t: dict, quotes: tuple[str, ...]) -> dict:
        free = self.plan == "free"
        if quotes == ("USD",) and not free:
            return t
        out = {k: v for k, v in t.items() if not (free and k == "circulating_supply")}
        usd = t["quotes"]["USD"]
        out["quotes"] = {code: self._quote(t, usd, code) for code in quotes}
        return out

    def _rows(self, quotes: tuple[str, ...]) -> list[dict]:
        rows = self.tickers[:FREE_PLAN_CAP] if self.plan == "free" else self.tickers
        return [self._render(t, quotes) for t in rows]

    def _cached(self, key: tuple, build: Any) -> _Body:
        with self._lock:
            body = self._cache.get(key)
            if body is None:
                body = self._cache[key] = _Body(build())
            return body

    @staticmethod
    def _error(status: int, message: str) -> tuple[int, _Body, str]:
        return status, _Body(_dumps({"error": message})), JSON_CT

    def _route(self, raw_path: str, query: dict, headers: dict) -> tuple[int, _Body, str]:
        path = raw_path[3:] if raw_path.startswith("/v1/") else ""
        if self.api_key is not None and headers.get("authorization") != self.api_key:
            return self._error(403, "invalid api key")
        if path == "/global":
            with self._lock:
                return 200, _Body(_dumps(self.global_data)), JSON_CT
        if path == "/coins":
            return 200, self._cached(("coins",), lambda: _dumps(self.coins)), JSON_CT
        coin_id = path[9:] if path.startswith("/tickers/") else ""
        if path == "/tickers" or (coin_id and "/" not in coin_id):
            quotes = self._quotes(query.get("quotes"))
            if isinstance(quotes, str):
                return self._error(400, quotes)
            if path == "/tickers":
                build = lambda: _dumps(self._rows(quotes))  # noqa: E731
                return 200, self._cached((self.plan, quotes), build), JSON_CT
            with self._lock:
                t = self._index.get(coin_id)
                if t is None:
                    return self._error(404, "id not found")
                return 200, _Body(_dumps(self._render(t, quotes))), JSON_CT
        if _HIST_PATH.fullmatch(path):
            return self._historical(coin_id[: -len("/historical")], query)
        return 404, _Body(b"404 page not found"), "text/plain; charset=utf-8"

    @staticmethod
    def _write(h: _Handler, status: int, data: bytes, ctype: str, gz: bool = False,
               extra: dict | None = None, length: int | None = None) -> None:  # fmt: skip
        """Send a response; ``length`` overrides Content-Length (to announce more than is sent)."""
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data) if length is None else length))
        if gz:
            h.send_header("Content-Encoding", "gzip")
        h.send_header("Vary", "Accept-Encoding")
        for name, value in (extra or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)

    @staticmethod
    def _start_chunked(h: _Handler, status: int, ctype: str, gz: bool) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Transfer-Encoding", "chunked")
        if gz:
            h.send_header("Content-Encoding", "gzip")
        h.end_headers()

    @staticmethod
    def _chunk(h: _Handler, data: bytes) -> None:
        h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _handle(self, h: _Handler) -> None:
        parts = urlsplit(h.path)
        path = self._norm(parts.path)  # "/v1/tickers" -> "/tickers"; others stay as they are
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in h.headers.items()}
        record = {"path": path, "query": query, "headers": headers, "time": time.monotonic()}
        with self._req_lock:
            self.requests.append(record)
            limited = self._over_limit(record["time"])
            if limited:
                record["rate_limited"] = True
        gz = _accepts_gzip(headers.get("accept-encoding", ""))
        fault = None if limited else self._take_fault(path)
        try:
            if self.latency_s > 0:
                self._stopping.wait(self.latency_s)
            if limited:
                body = _Body(_dumps({"error": _ERROR_MESSAGES[429]}))
                self._write(h, 429, body.gz() if gz else body.plain, JSON_CT, gz)
            elif fault is None:
                status, body, ctype = self._route(parts.path, query, headers)
                self._write(h, status, body.gz() if gz else body.plain, ctype, gz)
            else:
                self._fault(h, parts.path, query, headers, gz, *fault)
        except OSError:  # client went away, or socket closed by stop()
            h.close_connection = True

    def _fault(self, h: _Handler, raw_path: str, query: dict, headers: dict, gz: bool, kind: str,
               opts: dict) -> None:  # fmt: skip
        if kind == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True
        elif kind == "hang":
            self._stopping.wait(float(opts.get("seconds", 30)))
            h.close_connection = True
        elif kind == "status":
            status = int(opts.get("status", 500))
            message = opts.get("body") or _ERROR_MESSAGES.get(status)
            body = _Body(_dumps({"error": message or HTTPStatus(status).phrase.lower()}))
            retry = opts.get("retry_after")
            extra = {"Retry-After": str(retry)} if retry is not None else None
            self._write(h, status, body.gz() if gz else body.plain, JSON_CT, gz, extra)
        elif kind == "html200":
            self._write(h, 200, gzip.compress(_HTML) if gz else _HTML, "text/html", gz)
        elif kind == "body":
            data = opts.get("body", b"")
            data = data.encode() if isinstance(data, str) else data
            self._write(h, int(opts.get("status", 200)), data, opts.get("content_type", JSON_CT))
        elif kind == "redirect":
            # A 3xx the real API never sends; Location may be anything (another host, ftp://,
            # garbage). A client that follows it spends requests the ledger never saw.
            status = int(opts.get("status", 302))
            location = opts.get("location", self.url + raw_path[3:])
            h.send_response(status)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()
        elif kind == "huge":
            # A valid-looking JSON array that goes on for `mb` megabytes, chunked (no length).
            row = _dumps(self.tickers[min(5, len(self.tickers) - 1)])
            total, sent = int(float(opts.get("mb", 200)) * 1_000_000), 0
            self._start_chunked(h, 200, JSON_CT, gz=False)
            self._chunk(h, b"[")
            block = b",".join([row] * max(1, 256_000 // len(row)))
            while sent < total and not self._stopping.is_set():
                self._chunk(h, block + b",")
                sent += len(block) + 1
            self._chunk(h, row + b"]")
            self._chunk(h, b"")
        elif kind == "gzip_bomb":
            # About 1 MB on the wire, `mb` megabytes of whitespace once decompressed.
            self._write(h, 200, _gzip_bomb(int(opts.get("mb", 1000))), JSON_CT, gz=True)
        elif kind == "mutate":
            # opts["tickers"] / opts["global_"]: callables that edit a deep copy of the data.
            path = self._norm(urlsplit(raw_path).path)
            if path == "/tickers":
                quotes = self._quotes(query.get("quotes"))
                rows = json.loads(
                    _dumps(self._rows(quotes if isinstance(quotes, tuple) else ("USD",)))
                )
                data = _dumps_any(opts["tickers"](rows) if "tickers" in opts else rows)
            elif path == "/global":
                doc = json.loads(_dumps(self.global_data))
                data = _dumps_any(opts["global_"](doc) if "global_" in opts else doc)
            else:
                _, body, _ = self._route(raw_path, query, headers)
                data = body.plain
            self._write(h, 200, gzip.compress(data, 1, mtime=0) if gz else data, JSON_CT, gz)
        elif kind == "echo_key":
            # A 200 body that carries the caller's Authorization header inside a coin's name,
            # raw and JSON-escaped, as a misbehaving proxy or API might.
            key = headers.get("authorization", "")
            status, body, ctype = self._route(raw_path, query, headers)
            text = body.plain
            if key and status == 200:
                escaped = json.dumps(key)[1:-1].replace("/", "\\/").encode()
                text = text.replace(
                    b'"name":"Bitcoin"', b'"name":"Bitcoin ' + key.encode() + b'"', 1
                )
                text = text.replace(b'"symbol":"BTC"', b'"symbol":"' + escaped + b'"', 1)
            self._write(h, status, gzip.compress(text, 1, mtime=0) if gz else text, ctype, gz)
        else:
            self._mangled(h, *self._route(raw_path, query, headers), gz, kind, opts)

    def _mangled(self, h: _Handler, status: int, body: _Body, ctype: str, gz: bool, kind: str,
                 opts: dict) -> None:  # fmt: skip
        if kind == "truncated":
            data = body.gz() if gz else body.plain
            self._write(h, status, data[: len(data) // 2], ctype, gz, length=len(data))
            h.close_connection = True
        elif kind == "truncated_json":
            half = _Body(body.plain[: len(body.plain) // 2])
            self._write(h, status, half.gz() if gz else half.plain, ctype, gz)
        elif kind == "gzip_truncated":
            data = body.gz()
            self._write(h, status, data[: len(data) // 2], ctype, gz=True)
        elif kind == "trickle":
            data = body.gz() if gz else body.plain
            self._write(h, status, b"", ctype, gz, length=len(data))
            chunk, interval = int(opts.get("chunk", 1)), float(opts.get("interval", 0.5))
            deadline = time.monotonic() + float(opts.get("seconds", 30))
            for pos in range(0, len(data), chunk):
                h.wfile.write(data[pos : pos + chunk])
                if self._stopping.wait(interval) or time.monotonic() >= deadline:
                    break
            h.close_connection = True
        elif kind in _NUM_TOKENS:
            text = body.plain
            num = re.compile(rb'"(?:price|market_cap_usd)":(-?[0-9][0-9.eE+-]*)')
            m = (
                num.search(text, len(text) // 2)
                or num.search(text)
                or re.search(rb":(-?\d[0-9.eE+-]*)", text)
            )
            if m:
                text = text[: m.start(1)] + _NUM_TOKENS[kind] + text[m.end(1) :]
            data = _Body(text)
            self._write(h, status, data.gz() if gz else data.plain, ctype, gz)
        elif kind == "chunked":
            # Transfer-Encoding: chunked, no Content-Length, in pieces of `chunk` bytes.
            gz = gz and not opts.get("plain")
            data = body.gz() if gz else body.plain
            self._start_chunked(h, status, ctype, gz)
            step = int(opts.get("chunk", 65536))
            for pos in range(0, len(data), step):
                self._chunk(h, data[pos : pos + step])
            if not opts.get("cut"):
                self._chunk(h, b"")
            h.close_connection = True
        elif kind == "duplicate_rows":
            rows = json.loads(body.plain) if ctype == JSON_CT else None
            if isinstance(rows, list):
                body = _Body(_dumps(rows + rows[: int(opts.get("n", 50))]))
            self._write(h, status, body.gz() if gz else body.plain, ctype, gz)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake CoinPaprika API v1 on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tickers", type=int, default=12_000)
    parser.add_argument("--coins", type=int, default=60_000)
    parser.add_argument("--plan", choices=("free", "paid"), default="paid")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--advance-every", type=float, default=0, help="auto refresh, seconds")
    parser.add_argument("--tier", choices=HISTORICAL_TIERS, default=None, help="/historical plan")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per second")
    args = parser.parse_args()
    t0 = time.perf_counter()
    api = FakeCoinPaprika(args.tickers, args.coins, args.plan, args.api_key, args.seed, args.port)
    api.tier = args.tier or api.tier
    api.set_latency(args.latency)
    api.set_rate_limit(args.rate_limit)
    print(f"generated in {time.perf_counter() - t0:.2f}s; serving {api.start().url}", flush=True)
    try:
        while True:
            time.sleep(args.advance_every or 3600)
            if args.advance_every:
                api.advance(int(args.advance_every))
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()


if __name__ == "__main__":
    main()
