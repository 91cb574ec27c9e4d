"""04 --report FILE.html: the page of a real history, drawn in headless Chromium (offline).

The history is built by the real scripts against the fake: 04 every 6 hours across three
days by the test clock (one run refused by the API, one slot never run: a gap), then a 05
backfill of the top 3 coins. The browser tests skip when there is no Chromium, unless
MCAP_REQUIRE_BROWSER=1 (CI), where they fail instead.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from mcap.clock import day_key
from tests.browser import Chromium, chromium_path
from tests.conftest import (
    S04,
    S05,
    at,
    next_midnight,
    one_error_line,
    query,
    read_jsonl,
    run,
    sync_historical,
)

EVERY = ("--every", "360")
# Hours after the first midnight at which 04 runs; "fail": the API answers HTML (exit 65).
# 42 h is never run, so 30 h → 48 h misses two slots: a gap.
RUNS = ((0, "ok"), (6, "ok"), (12, "ok"), (18, "ok"), (24, "ok"), (30, "ok"), (36, "fail"),
        (48, "ok"), (54, "ok"), (60, "ok"))  # fmt: skip
READY = "document.documentElement.dataset.ready === 'yes'"


def browser() -> Path:
    found = chromium_path()
    if found is None:
        reason = "no Chromium at /usr/bin/chromium (apt-get install chromium)"
        if os.environ.get("MCAP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"MCAP_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return found


def build_history(api, out: Path) -> float:
    """The realistic history; returns the first midnight (epoch seconds)."""
    base = next_midnight()
    for hour, outcome in RUNS:
        at(base + hour * 3600 + 600)
        api.advance(300)
        if outcome == "fail":
            api.add_fault("/tickers", "html200")
        result = run(S04, api, out, *EVERY)
        assert result.returncode == (65 if outcome == "fail" else 0), result.stderr
        api.clear_faults()
    at(base + 60 * 3600 + 900)
    sync_historical(api)
    result = run(S05, api, out, "--coins", "top:3", "--days", "5", "--rate", "10")
    assert result.returncode == 0, result.stderr
    at(base + 60 * 3600 + 1200)
    return base


def report(out: Path, page: Path, *args: str) -> None:
    result = run(S04, None, out, *EVERY, "--report", str(page), *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Report: {page} (") and result.stderr == ""


def payload(page: Path) -> dict:
    """The figures the page carries (what its script draws)."""
    text = page.read_text(encoding="utf-8")
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text)
    assert found, "no report-data in the page"
    return json.loads(found.group(1).replace("<\\/", "</"))


def render(page: Path, screenshot: Path) -> tuple[dict, dict]:
    """Open the page offline; (what each chart drew, the page's facts), a screenshot saved."""
    with Chromium(browser()) as chrome:
        chrome.open(page)
        chrome.wait_for(READY)
        drawn = chrome.evaluate("window.reportSummary()")
        facts = chrome.evaluate(
            "({cells: [...document.querySelectorAll('#calendar .c[data-day]')].map(c => "
            "[c.dataset.day, c.className, c.title]), gaps: [...document.querySelectorAll("
            "'#gaps-table tbody tr')].map(r => [...r.cells].map(c => c.textContent)), "
            "empty: [...document.querySelectorAll('.empty, .notice')].map(e => e.id), "
            "charts: document.querySelectorAll('.chart').length})"
        )
        chrome.screenshot(screenshot)
        chrome.evaluate("1")  # events that arrived meanwhile are noted
        requests = chrome.requests_beyond(page)
        assert requests == [], f"the page asked the network for {requests}"
        assert chrome.log.errors == [], chrome.log.errors
    print(f"screenshot: {screenshot}")
    return drawn, facts


def tree(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory below, locks included: (size, mtime in ns)."""
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
    }


@pytest.mark.long
def test_the_report_of_a_real_history_draws_every_chart_offline(fake_small, out, tmp_path):
    base = build_history(fake_small, out)
    before = tree(out)
    page = tmp_path / "report.html"
    report(out, page)
    assert tree(out) == before  # nothing created, locked, logged or written in the out-dir
    drawn, facts = render(page, tmp_path / "report.png")

    snapshots = read_jsonl(out / "history" / "snapshots.jsonl")
    _, [(points_times,)] = query(
        out, "SELECT count(DISTINCT ts) FROM history WHERE source = 'historical'"
    )
    _, top = query(
        out, "SELECT id, rank FROM history WHERE ts = (SELECT max(ts) FROM totals WHERE source "
        "= 'snapshot') AND rank > 0 ORDER BY rank LIMIT 10",
    )  # fmt: skip
    _, backfilled = query(out, "SELECT DISTINCT id FROM history WHERE source = 'historical'")
    filled = {coin for (coin,) in backfilled}
    assert len(snapshots) == 9 and points_times == 5 and len(filled) == 3

    series = {s["label"]: s["points"] for s in drawn["totals"]["series"]}
    assert list(series.values()) == [9, 9, 5]
    assert "Derived" in list(series)[2]
    labels = [s["label"] for s in drawn["top"]["series"]]
    assert labels == [f"#{rank} {coin}" for coin, rank in top] + [
        f"#{rank} {coin} (backfilled)" for coin, rank in top if coin in filled
    ]
    _, counts = query(
        out, "SELECT id, source, count(*) FROM history WHERE market_cap_usd > 0 GROUP BY ALL"
    )  # a log scale draws no zero (the fake has a ranked coin with a zero market cap)
    drawable = {(coin, source): n for coin, source, n in counts}
    assert [s["points"] for s in drawn["top"]["series"]] == [
        drawable.get((coin, "snapshot"), 0) for coin, _ in top
    ] + [drawable[(coin, "historical")] for coin, _ in top if coin in filled]
    assert [s["points"] for s in drawn["dominance"]["series"]] == [9]
    for chart in drawn.values():
        assert chart["inked"] > 1000  # the canvas holds lines, not only a blank plot

    quota = json.loads((out / "request_ledger.json").read_bytes())
    spec = payload(page)["charts"]
    assert sum(v for v in spec["quota"]["perDay"] if v) == quota["month_requests"]
    assert spec["quota"]["budget"] == 20_000
    runs = {s["label"]: sum(s["values"]) for s in spec["runs"]["series"]}
    assert runs == {"ok": 9, "failed, exit 65": 1}
    assert [s["label"] for s in drawn["runs"]["series"]] == ["failed, exit 65", "ok"]

    cells = {day: (classes.split()[1:], title) for day, classes, title in facts["cells"]}
    _, rows = query(out, "SELECT DISTINCT strftime(ts, '%Y-%m-%d') FROM history "
                         "WHERE source = 'historical'")  # fmt: skip
    filled_days = {day for (day,) in rows}
    days = [day_key(base + k * 86400) for k in range(3)]
    assert min(cells) == min(filled_days) and max(cells) == days[2]
    assert len(cells) == len(set(cells) | filled_days | set(days))  # one cell a day, no hole
    for day, (classes, _) in cells.items():
        snapshot_day = day in days
        assert ("bf" in classes) == (snapshot_day and day in filled_days), (day, classes)
        assert (classes[0] == "bfonly") == (not snapshot_day), (day, classes)
    assert cells[days[0]][0][0] == "full" and "4 snapshot(s) of 4 slot(s)" in cells[days[0]][1]
    assert {"mid", "gap", "fail"} <= set(cells[days[1]][0])
    assert "2 snapshot(s) of 4 slot(s) (50.0 %); 2 missed slot(s)" in cells[days[1]][1]
    assert "1 failed run(s) (exit 65)" in cells[days[1]][1]
    assert cells[days[2]][0][0] == "full" and "3 snapshot(s) of 3 slot(s)" in cells[days[2]][1]
    assert facts["gaps"] == [[snapshots[5]["ts"], snapshots[6]["ts"], "2", "not tried",
                              "1 failed run(s)"]]  # fmt: skip
    assert facts["empty"] == [] and facts["charts"] == 5


@pytest.mark.parametrize("history", ["empty", "one snapshot"])
def test_a_report_with_nothing_to_draw_says_so(fake_small, out, tmp_path, history):
    out.mkdir()
    if history == "one snapshot":
        assert run(S04, fake_small, out).returncode == 0
    page = tmp_path / "report.html"
    report(out, page)
    drawn, facts = render(page, tmp_path / "report.png")
    time_charts = {"totals-empty", "top-empty", "dominance-empty"}
    if history == "empty":
        assert {"nothing-yet", "calendar-empty", "gaps-empty", "quota-empty", "runs-empty"} | (
            time_charts
        ) == set(facts["empty"])
        assert drawn == {} and facts["charts"] == 0
    else:
        assert {"one-snapshot", "gaps-empty"} | time_charts <= set(facts["empty"])
        assert not time_charts & set(drawn)
        assert len(facts["cells"]) == 1
    for chart in drawn.values():  # what is drawn holds figures
        assert all(s["points"] for s in chart["series"]) and chart["inked"] > 0


# --- without a browser ----------------------------------------------------------------------


def test_report_options_are_checked_like_export_history(fake_small, out, tmp_path):
    assert run(S04, fake_small, out).returncode == 0
    before = tree(out)
    page = tmp_path / "r.html"
    refused = {
        ("--from", "2026-02-30"): "not a valid date",
        ("--from", "2026-11-26", "--to", "2026-11-25"): "--from 2026-11-26 is after --to",
        ("--from", "2026-11-25"): "give --report FILE.html too",
    }
    for args, text in refused.items():
        report_args = () if "give" in text else ("--report", str(page))
        result = run(S04, None, out, *report_args, *args)
        assert result.returncode == 2 and text in one_error_line(result), result.stderr
    for target, text in (
        (tmp_path / "r.txt", "must end in .html"),
        (tmp_path / "missing" / "r.html", "creates none"),
        (out / "history" / "r.html", "write the page elsewhere"),
        (tmp_path / "pages.html", "is a directory"),
    ):
        if target.name == "pages.html":
            target.mkdir()
        result = run(S04, None, out, "--report", str(target))
        assert result.returncode == 2 and text in one_error_line(result), result.stderr
    assert not (tmp_path / "missing").exists() and not page.exists()
    assert run(S04, None, tmp_path / "nowhere", "--report", str(page)).returncode == 2
    assert tree(out) == before


def test_a_damaged_archive_gives_one_line_exit_74_and_no_page(fake_small, out, tmp_path):
    for _ in range(2):  # two days: the first one archived
        at(next_midnight() + 600)
        fake_small.advance(300)
        assert run(S04, fake_small, out).returncode == 0
    (piece,) = (out / "history" / "archive").glob("????-??-??.parquet")
    piece.write_bytes(piece.read_bytes() + b"\0")
    page = tmp_path / "r.html"
    result = run(S04, None, out, "--report", str(page))
    assert result.returncode == 74 and result.stdout == ""
    assert "cannot be read truthfully" in one_error_line(result)
    assert not page.exists() and list(tmp_path.glob(".r.html.*")) == []


def test_a_clock_behind_the_last_snapshot_is_said_on_the_page_and_the_line(
    fake_small, out, tmp_path
):
    base = next_midnight()
    at(base + 600)
    assert run(S04, fake_small, out).returncode == 0
    at(base - 5 * 86400)  # the clock moved back five days
    page = tmp_path / "r.html"
    result = run(S04, None, out, "--report", str(page))
    assert result.returncode == 0, result.stderr
    warning = result.stdout.splitlines()[1]
    assert warning.startswith("Warning: The last snapshot") and "clock moved back" in warning
    assert "was the clock moved back?" in page.read_text()


def test_from_and_to_limit_the_range(fake_small, out, tmp_path):
    base = next_midnight()
    for day in range(3):
        for hour in (3, 9):
            at(base + day * 86400 + hour * 3600)
            fake_small.advance(300)
            assert run(S04, fake_small, out, *EVERY).returncode == 0
    middle = day_key(base + 86400)
    page = tmp_path / "r.html"
    report(out, page, "--from", middle, "--to", middle)
    charts = payload(page)["charts"]
    assert [s["values"].count(None) for s in charts["totals"]["series"]] == [0, 0]
    assert len(charts["totals"]["x"]) == 2
    assert min(charts["totals"]["x"]) >= base + 86400
    assert max(charts["totals"]["x"]) < base + 2 * 86400
    assert sum(sum(s["values"]) for s in charts["runs"]["series"]) == 2
    text = page.read_text()
    assert f'data-day="{middle}"' in text and f'data-day="{day_key(base)}"' not in text


def test_a_collector_run_never_imports_the_report(fake_small, out):
    """The cron path stays as small as before: the report's modules load only for --report."""
    result = run(S04, fake_small, out, process=True, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    imported = set(re.findall(r"\|\s+(mcap\.[\w.]+)\s*$", result.stderr, re.MULTILINE))
    assert "mcap.views" in imported  # the measurement sees the package
    report_modules = {
        "mcap.html_report", "mcap.html_sections", "mcap.report_data", "mcap.report_charts",
        "mcap.report_ops", "mcap.history.report_sql",
    }  # fmt: skip
    assert imported & report_modules == set()
    page = out.parent / "r.html"
    asked = run(S04, None, out, "--report", str(page), process=True,
                env={"PYTHONPROFILEIMPORTTIME": "1"})  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    assert report_modules <= set(re.findall(r"\|\s+(mcap\.[\w.]+)\s*$", asked.stderr, re.M))


# --- the figures' rules ---------------------------------------------------------------------


def test_the_calendar_counts_slots_and_marks_gaps_by_their_repair():
    from mcap.clock import parse_iso
    from mcap.report_ops import calendar, open_gaps, slots_of_day

    first = parse_iso("2026-03-01T10:00:00Z")
    assert slots_of_day("2026-03-01", first, first, parse_iso("2026-03-02T00:00:00Z"), 3600) == 14
    assert slots_of_day("2026-02-28", first, first, first + 86400, 3600) == 0
    gaps = [
        {"type": "gap", "from": "2026-03-01T22:00:00Z", "to": "2026-03-02T02:00:00Z",
         "missing_slots": 3, "reason": "no run recorded"},
        {"type": "gap", "from": "2026-03-02T05:00:00Z", "to": "2026-03-02T08:00:00Z",
         "missing_slots": 2, "reason": "2 failed run(s)"},
        {"type": "failed_run", "at": "2026-03-02T06:00:05Z", "exit_code": 69, "error": "x"},
        {"type": "repair", "from": "2026-03-01T22:00:00Z", "to": "2026-03-02T02:00:00Z",
         "status": "partly"},
        {"type": "repair", "from": "2026-03-01T22:00:00Z", "to": "2026-03-02T02:00:00Z",
         "status": "repaired"},
        {"type": "repair", "from": "2026-03-02T05:00:00Z", "to": "2026-03-02T08:00:00Z",
         "status": "unrepairable"},
        {"type": "gap", "from": "broken"},
    ]  # fmt: skip
    limit = parse_iso("2026-03-02T12:00:00Z")
    days = calendar({"2026-03-01": 14, "2026-03-02": 8}, {"2026-02-27": (5, 5)}, gaps,
                    (first, first - 7 * 86400, limit), 60)  # fmt: skip
    by_day = {day.day: day for day in days}
    assert list(by_day) == ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]
    assert by_day["2026-02-28"].slots == 0 and by_day["2026-02-27"].backfilled_points == 5
    march_1, march_2 = by_day["2026-03-01"], by_day["2026-03-02"]
    assert (march_1.missed, march_1.repaired) == (1, 1)  # 23:00; 00:00 and 01:00 are the 2nd's
    assert (march_2.slots, march_2.missed, march_2.repaired) == (13, 4, 2)
    assert march_2.failed_exits == (69,) and march_1.coverage == 1.0
    rows, more = open_gaps(gaps, ("2026-03-01T00:00:00Z", "2026-03-31T23:59:59Z"), None)
    assert [(g.start, g.repair) for g in rows] == [("2026-03-02T05:00:00Z", "unrepairable")]
    assert more == 0


def test_runs_come_from_the_log_and_its_rotations(tmp_path):
    from mcap.report_ops import runs

    line = "{ts}.123Z INFO {script} run=abcd1234 run end status={status} exit={code} coins=1\n"
    (tmp_path / "collection.log.2").write_text(
        line.format(ts="2026-03-01T10:00:00", script="04_production_collector", status="ok",
                    code=0) + "2026-03-01T10:30:00.000Z INFO 04_x run=1 budget plan: …\n"
    )  # fmt: skip
    (tmp_path / "collection.log").write_text(
        line.format(ts="2026-03-03T10:00:00", script="04_production_collector",
                    status="failed", code=69)
        + line.format(ts="2026-03-03T11:00:00", script="03_optimized_free_tier_collector",
                      status="skipped", code=0)
        + line.format(ts="2026-03-03T12:00:00", script="05_backfill_history", status="failed",
                      code=75)
        + "2026-03-03T12:30:00.000Z WARNING 04_production_collector run=ffff refused, exit 75: "
        "busy; nothing done\n"
        + line.format(ts="2026-04-01T00:00:00", script="04_production_collector", status="ok",
                      code=0)
    )  # fmt: skip
    found = runs(tmp_path, ("2026-03-01T00:00:00Z", "2026-03-31T23:59:59Z"))
    assert found.days == ("2026-03-01", "2026-03-02", "2026-03-03")
    assert dict(found.outcomes) == {
        "ok": (1, 0, 0), "skipped": (0, 0, 1), "failed, exit 69": (0, 0, 1),
        "refused (another run held the lock), exit 75": (0, 0, 1),
    }  # fmt: skip
    assert found.others == (("05_backfill_history", 1, 1),)
    assert found.log_since == "2026-03-01T10:00:00Z" and found.log_files == 2


def test_quota_projects_the_months_pace_and_says_what_was_not_counted_by_day(tmp_path):
    from mcap.clock import parse_iso
    from mcap.report_ops import quota

    now = parse_iso("2026-04-11T00:00:00Z")  # 10 days of a 30-day month
    (tmp_path / "request_ledger.json").write_text(json.dumps({
        "month": "2026-04", "month_requests": 1000, "hour": "2026-04-10T23", "hour_requests": 1,
        "by_script": {}, "past_months": {}, "day_requests": {"2026-04-09": 100, "2026-04-10": 200},
    }))  # fmt: skip
    found = quota(tmp_path, now, 20_000, "test")
    assert found.used == 1000 and found.uncounted == 700 and found.projected == 3000
    assert len(found.days) == 30 and found.days[8:11] == (
        ("2026-04-09", 100),
        ("2026-04-10", 200),
        ("2026-04-11", 0),
    )
    assert found.days[11] == ("2026-04-12", None)


def test_buckets_keep_a_chart_within_its_points_and_breaks_mark_missed_slots(fake_small, out):
    from mcap.history import open_picture
    from mcap.history.query import history_views
    from mcap.history.report_sql import MAX_POINTS, Extent, Window, bucket_seconds
    from mcap.report_charts import gap_times, totals_chart

    assert bucket_seconds({"snapshot": Extent(MAX_POINTS, 0, 10**6)}) == 1
    year = Extent(17_520, 0, 365 * 86400)  # a year every 30 minutes
    assert bucket_seconds({"snapshot": year}) == 3 * 3600
    assert gap_times([(0, 0, 100), (3600, 3700, 3800), (7200, 9500, 9600)], 60) == [5400]
    base = next_midnight()
    for hour in (1, 2, 3, 7, 25):
        at(base + hour * 3600)
        fake_small.advance(300)
        assert run(S04, fake_small, out, "--every", "60").returncode == 0
    with open_picture(out) as picture, history_views(picture) as con:
        window = Window.of("1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z")
        daily, gaps = totals_chart(con, window, 86400, 60)
        hourly, _ = totals_chart(con, window, 1, 60)
    assert daily.x == (int(base), int(base) + 43200, int(base) + 86400) and len(gaps) == 1
    assert daily.gaps == (1,)
    snapshots = read_jsonl(out / "history" / "snapshots.jsonl")
    global_caps = daily.series[0].values
    assert global_caps == (snapshots[3]["market_cap_usd"], None, snapshots[4]["market_cap_usd"])
    assert len(hourly.x) == 5 + 2 and len(hourly.gaps) == 2  # 3 h → 7 h, 7 h → 25 h
