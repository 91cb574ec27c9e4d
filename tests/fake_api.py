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
circulating_supply), /v1/tickers/{id}, /v1/global, /v1/coins; anything else is a text/plain 404.
Fault kinds: see FAULT_KINDS and FakeCoinPaprika.add_fault. If you mutate ``tickers``, ``coins``
or ``global_data`` by hand, call ``invalidate()`` so the cached bodies are rebuilt.
"""

from __future__ import annotations

import argparse
import calendar
import gzip
import json
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
    ) -> None:
        if plan not in ("free", "paid"):
            raise ValueError(f"plan must be 'free' or 'paid', not {plan!r}")
        self.plan, self.api_key, self.seed, self.port = plan, api_key, seed, port
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

    # ------------------------------------------------------------------ faults / observation
    @staticmethod
    def _norm(path: str) -> str:
        return path[3:] if path.startswith("/v1/") else path

    def add_fault(self, path: str, kind: str, times: int = 1, **opts: Any) -> None:
        """Queue a fault for the next ``times`` requests to ``path`` ("*" = any; -1 = forever)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if times == 0 or times < -1:
            raise ValueError("times must be positive or -1")
        with self._req_lock:
            self._faults.setdefault(self._norm(path), deque()).append([kind, times, opts])

    def clear_faults(self) -> None:
        with self._req_lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> tuple[str, dict] | None:
        with self._req_lock:
            for key in (path, "*"):
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
        gz = _accepts_gzip(headers.get("accept-encoding", ""))
        fault = self._take_fault(path)
        try:
            if fault is None:
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
    args = parser.parse_args()
    t0 = time.perf_counter()
    api = FakeCoinPaprika(args.tickers, args.coins, args.plan, args.api_key, args.seed, args.port)
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
