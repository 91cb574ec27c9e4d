"""The backfill's pure rules, without files or HTTP: refusal texts, the plan's spans, calls of
at most 5,000 points, what coverage leaves, the reserve, answers on and off the grid, the pace."""

from __future__ import annotations

import pytest

from mcap.backfill import parse_points
from mcap.backfill_tasks import Coin, Task, reserve_calls, tasks_for, time_span
from mcap.clock import parse_iso, utc_iso
from mcap.errors import ApiDataError, UsageError
from mcap.history.points_ranges import Coverage, Range
from mcap.plans import parse_refusal
from mcap.ratelimit import TokenBucket

DAY = 86400
NOW = parse_iso("2026-12-01T12:34:56Z")


@pytest.mark.parametrize(
    ("text", "cls", "cutoff"),
    [
        ("Getting daily historical data before 2025-12-01T20:14:03.123456789Z is not allowed in "
         "this plan. Check plans on coinpaprika.com/api", "daily", "2025-12-01T20:14:04Z"),
        ("Getting hourly historical data before 2026-11-30T12:00:00Z is not allowed in this plan",
         "hourly", "2026-11-30T12:00:01Z"),
        ("Getting historical OHLCV data before 2024-01-01 is not allowed in this plan", "unknown",
         "2024-01-01T00:00:01Z"),
        ("Getting minute historical data is not allowed in this plan", "5-minute", None),
    ],
)  # fmt: skip
def test_refusal_texts_give_the_class_and_the_cutoff(text, cls, cutoff):
    refusal = parse_refusal(text)
    assert refusal is not None and refusal.cls == cls
    assert (None if refusal.cutoff is None else utc_iso(refusal.cutoff)) == cutoff


def test_a_quota_text_is_not_a_refusal():
    assert parse_refusal("Your plan's monthly request limit has been reached") is None


def test_spans_follow_the_plan_with_a_margin():
    first, last = time_span("free", "1d", None, NOW, {})
    assert utc_iso(last) == "2026-12-01T00:00:00Z"
    assert utc_iso(first) == "2025-12-02T00:00:00Z"  # 365 days back, less an hour, on the grid
    assert time_span("free", "1h", 0.5, NOW, {})[0] == parse_iso("2026-12-01T01:00:00Z")
    with pytest.raises(UsageError, match="no 5-minute points"):
        time_span("free", "5m", 1, NOW, {})
    with pytest.raises(UsageError, match="daily points for the last 365 days"):
        time_span("free", "1d", 366, NOW, {})
    learned = {"daily": 100 * DAY}  # a refusal said so
    with pytest.raises(UsageError):
        time_span("starter", "1d", 200, NOW, learned)
    assert utc_iso(time_span("pro", "1d", None, NOW, {})[0]) == "2010-07-17T00:00:00Z"


def test_a_call_holds_at_most_5000_points_and_coverage_removes_what_is_stored():
    coin = Coin("btc-bitcoin", 1)
    span = (parse_iso("2010-07-17T00:00:00Z"), parse_iso("2026-12-01T00:00:00Z"))
    tasks = tasks_for([coin], "1d", span, Coverage())
    total = int(span[1] - span[0]) // DAY + 1
    assert [t.points for t in tasks] == [5000, total - 5000] and tasks[1].end == span[1]
    stored = Range("btc-bitcoin", "1d", DAY, span[0], tasks[0].end, 5000)
    left = tasks_for([coin], "1d", span, Coverage([stored]))
    assert [(t.start, t.end) for t in left] == [(tasks[1].start, tasks[1].end)]
    # An hourly range holds the daily grid of its span: no daily call is left there.
    hourly = Range("btc-bitcoin", "1h", 3600, int(span[1]) - 23 * 3600, int(span[1]), 24)
    assert tasks_for([coin], "1d", (span[1], span[1]), Coverage([hourly])) == []
    # A daily range does not hold the hours around it: they are asked in one call, and its
    # midnight, held already, is left out when the answer is committed.
    daily = Coverage([Range("btc-bitcoin", "1d", DAY, int(span[1]), int(span[1]), 1)])
    (task,) = tasks_for([coin], "1h", (span[1] - 3600, span[1] + 3600), daily)
    assert (task.start, task.end) == (span[1] - 3600, span[1] + 3600)
    assert daily.holds("btc-bitcoin", int(span[1])) and not daily.holds("btc-bitcoin", task.end)


def test_a_coin_is_not_asked_before_its_data_starts():
    late = Coin("new-coin", 900, first_data=int(NOW - 10 * DAY + 5))
    (task,) = tasks_for([late], "1d", time_span("free", "1d", None, NOW, {}), Coverage())
    assert task.points == 10  # 2026-11-22 … 2026-12-01: the first midnight after its start


def test_the_reserve_covers_the_rest_of_the_month():
    early, late = parse_iso("2026-12-01T00:00:00Z"), parse_iso("2026-12-31T12:00:00Z")
    assert reserve_calls(30, 4, early) == 3125 + 6  # ⌈1,488 slots × 2 × 1.05⌉, one run's retries
    assert reserve_calls(30, 4, late) < 100 < reserve_calls(5, 4, late)


def _task(interval: str = "1d") -> Task:
    return Task(
        "c", 1, interval, parse_iso("2026-11-01T00:00:00Z"), parse_iso("2026-11-03T00:00:00Z")
    )


def test_answers_are_taken_on_the_grid_and_within_the_task():
    payload = [
        {"timestamp": "2026-10-31T00:00:00Z", "price": 1, "volume_24h": 2, "market_cap": 3},
        {"timestamp": "2026-11-01T00:00:00Z", "price": 1.5, "volume_24h": 2, "market_cap": 2**60},
        {"timestamp": "2026-11-02T00:00:00Z", "price": None, "volume_24h": None, "market_cap": 0},
    ]
    points = parse_points(payload, _task())
    assert points == [(parse_iso("2026-11-01T00:00:00Z"), 1.5, 2**60, 2),
                      (parse_iso("2026-11-02T00:00:00Z"), None, 0, None)]  # fmt: skip
    assert parse_points([], _task()) == []


@pytest.mark.parametrize(
    "payload",
    [{"timestamp": "x"}, [{"price": 1}], [{"timestamp": "yesterday"}],
     [{"timestamp": "2026-11-01T00:00:00Z", "price": "1"}],
     [{"timestamp": "2026-11-01T07:00:00Z", "price": 1}]],
)  # fmt: skip
def test_unusable_answers_store_nothing(payload):
    with pytest.raises(ApiDataError):
        parse_points(payload, _task())


def test_the_bucket_spaces_requests_without_a_burst():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(5, clock=lambda: now[0], sleep=sleep)
    assert all(bucket.take() for _ in range(4))
    assert slept == pytest.approx([0.2, 0.2, 0.2])
    assert not bucket.take(lambda: 0.1)  # the next slot is after the time left


def test_a_429_slows_the_bucket_and_answers_bring_it_back():
    now = [0.0]
    bucket = TokenBucket(10, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert bucket.slow_down() == pytest.approx(10 / 1.5)
    assert bucket.slow_down() == pytest.approx(10 / 1.5)  # the same crowded second
    for _ in range(10):
        now[0] += 1.0
        bucket.slow_down()
    assert bucket.interval == 1.0 and bucket.at_slowest  # never slower than one a second
    for _ in range(200):
        bucket.speed_up()
    assert bucket.interval == pytest.approx(0.1)  # never faster than asked
    assert not bucket.at_slowest
    assert bucket.slowdowns == 11


def test_two_archivers_at_once_store_each_point_once(tmp_path, monkeypatch):
    import duckdb

    from mcap.history import points_archive
    from mcap.history.points import Answer, PointsStore

    store = PointsStore(tmp_path)
    _, coverage = store.open()
    day, base = 86400, 19_676 * 86400
    for c in range(30):
        points = [(base + k * day, 1.0 + k, 100 + k, 5) for k in range(365)]
        store.commit(Answer(f"coin-{c:03d}", "1d", base, base + 364 * day, points), coverage)
    monkeypatch.setattr(points_archive, "PIECE_ROWS", 4_000)
    real, raced = points_archive._prepare_piece, []

    def racing(files, head):  # another archiver switches while this one prepares
        prepared = real(files, head)
        if not raced:
            raced.append(None)  # once: the other archiver's own preparations do not race
            raced[0] = points_archive.compact_points(files, 1, 60.0)
        return prepared

    monkeypatch.setattr(points_archive, "_prepare_piece", racing)
    head = points_archive.compact_points(store.files, 1, 60.0)
    assert len(raced[0].pieces) == 3 and head.pieces == raced[0].pieces
    assert sum(piece.rows for piece in head.pieces) == head.points == 30 * 365
    assert store.files.points.stat().st_size == head.points_size == 0
    files = [str(store.files.piece(piece.file)) for piece in head.pieces]
    ((rows, distinct),) = duckdb.sql(
        f"SELECT count(*), count(DISTINCT (id, ts)) FROM read_parquet({files!r})"
    ).fetchall()
    assert rows == distinct == 30 * 365
    assert sorted(p.name for p in store.files.archive_dir.iterdir()) == [
        "000001.parquet",
        "000002.parquet",
        "000003.parquet",
    ]  # no temp file left behind


def test_recent_snapshots_are_read_from_the_tail_only_as_far_back_as_needed(tmp_path):
    import io
    import json

    from mcap.clock import utc_iso
    from mcap.history.summaries import committed_snapshots, tail_start

    base = 1_700_000_000
    lines = [json.dumps({"ts": utc_iso(base + k * 300), "coin_count": 5}) for k in range(40_000)]
    lines[39_000] = "{damaged"  # a damaged line near the end is not taken for a boundary
    body = ("\n".join(lines) + "\n").encode()
    (tmp_path / "snapshots.jsonl").write_bytes(body)
    handle = open(tmp_path / "snapshots.jsonl", "rb")  # noqa: SIM115 - closed below
    for since_k in (0, 1, 20_000, 38_999, 39_001, 39_999, 50_000):
        since = utc_iso(base + since_k * 300)
        start = tail_start(handle, len(body), since)
        assert start == 0 or body[start - 1 : start] == b"\n"
        tail, _ = committed_snapshots(handle, len(body), start)
        whole, _ = committed_snapshots(handle, len(body))
        assert [r.ts for r in tail if r.ts >= since] == [r.ts for r in whole if r.ts >= since]
        needed = len(body) - len("".join(line + "\n" for line in lines[:since_k]).encode())
        assert len(body) - start <= max(1 << 18, 4 * needed) + 100  # not the whole file
    handle.close()
    small = io.BytesIO(b'{"ts": "2026-01-01T00:00:00Z", "coin_count": 1}\n')
    assert tail_start(small, len(small.getvalue()), "2027-01-01T00:00:00Z") == 0
