"""End to end: 02_fetch_all_market_caps.py against the fake API, checked against its promises
(README, docs/files.md)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import API_KEY, FAST, PAID_ENV, S02, read_jsonl, run, stats_of, tree_digest

LINE_BREAKS = ("\r", "\n", "\x85", "\u2028", "\u2029")


def test_snapshot_files_follow_the_contract(fake_paid, out):
    result = run(S02, fake_paid, out, key=True)
    assert result.returncode == 0, result.stderr
    # One /tickers call and one /global call, nothing else.
    assert (
        fake_paid.count("/tickers") == 1
        and fake_paid.count("/global") == 1
        and fake_paid.count() == 2
    )
    doc = json.loads((out / "market_cap_snapshot.json").read_bytes())
    expected_ids = [t["id"] for t in fake_paid.tickers]
    assert set(doc) >= {
        "snapshot_id",
        "collected_at",
        "source",
        "quotes",
        "coin_count",
        "global",
        "coins",
    }
    assert doc["coin_count"] == len(doc["coins"]) == len(set(expected_ids)) == 12_000
    assert doc["source"] == fake_paid.url and doc["quotes"] == ["USD"]
    assert doc["collected_at"].endswith("Z")
    assert doc["snapshot_id"] == doc["collected_at"].replace("-", "").replace(":", "")
    assert doc["global"]["market_cap_usd"] == fake_paid.global_data["market_cap_usd"]
    ids = [c["id"] for c in doc["coins"]]
    assert len(ids) == len(set(ids))
    ranks = [c["rank"] for c in doc["coins"]]
    ranked = [r for r in ranks if r]
    assert ranked == sorted(ranked) and ranks[: len(ranked)] == ranked  # unranked at the end
    unranked = [c["id"] for c in doc["coins"] if not c["rank"]]
    assert unranked == sorted(unranked) and unranked
    # Ticker objects as the API gives them.
    by_id = {t["id"]: t for t in fake_paid.tickers}
    btc = next(c for c in doc["coins"] if c["id"] == "btc-bitcoin")
    assert btc == by_id["btc-bitcoin"]

    lines = (out / "market_cap_snapshot.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == doc["coin_count"]
    first = json.loads(lines[0])
    assert first["collected_at"] == doc["collected_at"] and first["id"] == ids[0]
    assert [json.loads(x)["id"] for x in lines[:-1]] == ids

    raw_csv = (out / "market_cap_snapshot.csv").read_bytes()
    assert raw_csv.count(b"\n") == doc["coin_count"] + 1
    rows = list(csv.reader(io.StringIO(raw_csv.decode("utf-8"), newline="")))
    assert rows[0] == [
        "collected_at",
        "id",
        "name",
        "symbol",
        "rank",
        "price_usd",
        "market_cap_usd",
        "volume_24h_usd",
        "percent_change_1h_usd",
        "percent_change_24h_usd",
        "percent_change_7d_usd",
        "circulating_supply",
        "total_supply",
        "max_supply",
        "last_updated",
    ]
    assert [r[1].lstrip("'") for r in rows[1:]][:50] == ids[:50]
    for row in rows[1:]:
        for cell in row[1:4]:
            assert not any(ch in cell for ch in LINE_BREAKS)
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    btc_row = next(r for r in rows if r[1] == "btc-bitcoin")
    usd = by_id["btc-bitcoin"]["quotes"]["USD"]
    assert btc_row[6] == str(usd["market_cap"])  # ints stay ints
    assert float(btc_row[5]) == usd["price"]

    history = read_jsonl(out / "history" / "market_cap_history.jsonl")
    assert len(history) == 12_000 and {h["ts"] for h in history} == {doc["collected_at"]}
    assert {"ts", "id", "rank", "price_usd", "market_cap_usd", "volume_24h_usd"} <= set(history[0])
    entries = read_jsonl(out / "history" / "snapshots.jsonl")
    assert len(entries) == 1
    entry = entries[0]
    assert entry["ts"] == doc["collected_at"] and entry["coin_count"] == 12_000
    assert entry["expected_count"] == fake_paid.global_data["cryptocurrencies_number"]
    assert entry["requests"] == 2 and entry["market_cap_usd"] == doc["global"]["market_cap_usd"]
    assert {"appeared", "disappeared", "appeared_ids", "disappeared_ids"} <= set(entry)

    stats = stats_of(out)
    assert stats["status"] == "ok" and stats["exit_code"] == 0 and stats["error"] is None
    assert stats["coin_count"] == 12_000 and stats["requests_made"] == 2
    assert stats["retries"] == 0 and stats["requests_this_month"] == 2
    assert stats["history_total_bytes"] >= stats["history_bytes_appended"] > 0
    ledger = json.loads((out / "request_ledger.json").read_bytes())
    assert ledger["month_requests"] == 2
    log = (out / "collection.log").read_text()
    assert "run end status=ok" in log and log.split(" ", 1)[0].endswith("Z")
    # Summary on stdout: counts, expected, top coins, global cap.
    assert "12,000 coins received" in result.stdout and "Bitcoin" in result.stdout
    assert "Global market cap" in result.stdout


def test_nasty_text_is_flattened_and_defused_in_csv(fake_paid, out):
    assert run(S02, fake_paid, out, key=True).returncode == 0
    rows = list(
        csv.reader(
            io.StringIO((out / "market_cap_snapshot.csv").read_text(encoding="utf-8"), newline="")
        )
    )
    by_id = {r[1].lstrip("'"): r for r in rows[1:]}
    nasty = [t for t in fake_paid.tickers if any(b in (t["name"] or "") for b in LINE_BREAKS)]
    formula = [
        t for t in fake_paid.tickers if (t["name"] or "").startswith(("=", "+", "-", "@", "\t"))
    ]
    assert nasty and formula
    for ticker in nasty:
        name = by_id[ticker["id"]][2]
        assert not any(b in name for b in LINE_BREAKS)
    for ticker in formula:
        assert by_id[ticker["id"]][2].startswith("'")
    # JSON keeps the API's text exactly.
    doc = json.loads((out / "market_cap_snapshot.json").read_bytes())
    coins = {c["id"]: c for c in doc["coins"]}
    for ticker in nasty + formula:
        assert coins[ticker["id"]]["name"] == ticker["name"]


def test_free_plan_reports_expected_2000_and_has_no_supply(fake_free, out):
    result = run(
        S02,
        fake_free,
        out,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "market_cap_snapshot.json").read_bytes())
    assert doc["coin_count"] == 2_000
    assert all("circulating_supply" not in c for c in doc["coins"])
    stats = stats_of(out)
    assert stats["expected_count"] == 2_000 and stats["plan"] == "free"
    history = read_jsonl(out / "history" / "market_cap_history.jsonl")
    assert all("circulating_supply" not in row for row in history)
    assert "Authorization" not in {h.title() for h in fake_free.requests[0]["headers"]}


def test_api_key_is_sent_bare_and_never_written(fake_paid, out):
    assert run(S02, fake_paid, out, "--verbose", key=True).returncode == 0
    assert fake_paid.requests[0]["headers"]["authorization"] == API_KEY
    for path in out.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_three_quotes_make_columns_and_history_fields(fake_free, out):
    fake_paid = fake_free  # the rule does not depend on the size: 2,000 coins are quicker
    result = run(S02, fake_paid, out, "--quotes", "usd,EUR,btc", key=True)
    assert result.returncode == 0, result.stderr
    assert fake_paid.requests[0]["query"]["quotes"] == "USD,EUR,BTC"
    header = (out / "market_cap_snapshot.csv").read_text().split("\r\n")[0].split(",")
    assert "market_cap_eur" in header and "price_btc" in header
    row = read_jsonl(out / "history" / "market_cap_history.jsonl")[0]
    assert {"price_usd", "price_eur", "price_btc", "market_cap_eur"} <= set(row)


@pytest.mark.parametrize(
    "args",
    [
        ["--quotes", "USD,EUR,BTC,ETH"],
        ["--quotes", "XYZ"],
        ["--base-url", "ftp://x"],
        ["--nope"],
        ["--deadline", "-1"],
    ],
)
def test_bad_command_line_exits_2(fake_paid, out, args):
    result = run(S02, None, None, "--out-dir", str(out), *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "error:" in result.stderr
    assert fake_paid.count() == 0 and not out.exists()


def test_429_then_ok_succeeds_with_retries_counted(fake_free, out):
    fake_paid = fake_free  # the rule does not depend on the size: 2,000 coins are quicker
    fake_paid.add_fault("/tickers", "status", status=429, times=2)
    result = run(S02, fake_paid, out, key=True)
    assert result.returncode == 0, result.stderr
    stats = stats_of(out)
    assert stats["requests_made"] == 4 and stats["retries"] == 2
    assert json.loads((out / "request_ledger.json").read_bytes())["month_requests"] == 4
    assert "retrying" in (out / "collection.log").read_text()


@pytest.mark.long
def test_persistent_5xx_exits_69_and_keeps_previous_files(fake_free, out):
    fake_paid = fake_free  # the rule does not depend on the size: 2,000 coins are quicker
    assert run(S02, fake_paid, out, key=True).returncode == 0
    before = {
        k: v
        for k, v in tree_digest(out).items()
        if not k.startswith(("latest_stats", "request_ledger", "collection.log"))
    }
    fake_paid.advance(300)
    fake_paid.reset_requests()
    fake_paid.add_fault("/tickers", "status", status=503, times=-1)
    result = run(S02, fake_paid, out, key=True)
    assert result.returncode == 69
    assert fake_paid.count("/tickers") == 3  # 1 + --retries 2
    # An interactive run shows each retry and its wait, then one error line.
    *retries, error = result.stderr.strip().splitlines()
    assert [line.split(": ")[-1].split(" failed")[0] for line in retries] == [
        "attempt 1 of 3",
        "attempt 2 of 3",
    ]
    assert all("HTTP 503" in line and "retrying in" in line for line in retries)
    assert "error:" in error and "503" in error and "left untouched" in error
    after = tree_digest(out)
    assert {k: after[k] for k in before} == before
    stats = stats_of(out)
    assert stats["status"] == "failed" and stats["exit_code"] == 69 and "503" in stats["error"]
    assert stats["history_total_bytes"] > 0 and stats["last_success_at"] is not None


def test_html_with_200_exits_65_and_is_quarantined(fake_paid, out):
    fake_paid.add_fault("/tickers", "html200")
    result = run(S02, fake_paid, out, key=True)
    assert result.returncode == 65
    assert fake_paid.count("/tickers") == 1
    assert "HTML" in result.stderr
    assert not (out / "market_cap_snapshot.json").exists()
    assert list((out / "rejected").glob("*tickers*.json"))


def test_403_exits_78_after_exactly_one_request(fake_paid, out):
    fake_paid.add_fault("/tickers", "status", status=403)
    result = run(S02, fake_paid, out, key=True)
    assert result.returncode == 78
    assert fake_paid.count() == 1
    assert "403" in result.stderr and "invalid api key" in result.stderr


@pytest.mark.parametrize("kind", ["nan", "infinity", "bignum"])
def test_non_finite_numbers_exit_65_and_never_reach_disk(fake_free, out, kind):
    fake_paid = fake_free  # the rule does not depend on the size: 2,000 coins are quicker
    assert run(S02, fake_paid, out, key=True).returncode == 0
    before = (out / "market_cap_snapshot.json").read_bytes()
    fake_paid.advance(300)
    fake_paid.add_fault("/tickers", kind)
    result = run(S02, fake_paid, out, key=True)
    assert result.returncode == 65, result.stderr
    assert (out / "market_cap_snapshot.json").read_bytes() == before
    for path in out.rglob("*"):
        if path.is_file() and "rejected" not in path.parts:
            data = path.read_bytes()
            assert b"NaN" not in data and b"Infinity" not in data, path


@pytest.mark.long
def test_hanging_server_ends_within_the_deadline(fake_paid, out):
    fake_paid.add_fault("/tickers", "hang", times=-1, seconds=60)
    result = run(S02, fake_paid, out, "--timeout", "2", "--deadline", "6", key=True)
    assert result.returncode == 69
    # Read timeouts of 2 s inside a 6 s deadline leave room for at most 3 attempts; the
    # server hangs for 60 s, so only the client's own limits can have ended the run.
    assert 1 <= fake_paid.count("/tickers") <= 3
    assert "ReadTimeout" in result.stderr


@pytest.mark.long
def test_trickling_body_is_stopped_by_the_deadline(fake_paid, out):
    fake_paid.add_fault("/tickers", "trickle", times=-1, seconds=60, interval=0.2)
    result = run(S02, fake_paid, out, "--timeout", "5", "--deadline", "4", key=True)
    assert result.returncode == 69
    # Each byte comes within the read timeout: only the whole-run deadline stops this.
    assert "deadline" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("kind", ["truncated", "truncated_json", "gzip_truncated", "reset"])
def test_cut_off_transfers_are_retried(fake_free, out, kind):
    fake_paid = fake_free  # the rule does not depend on the size: 2,000 coins are quicker
    fake_paid.add_fault("/tickers", kind)
    result = run(S02, fake_paid, out, key=True)
    assert result.returncode == 0, result.stderr
    assert fake_paid.count("/tickers") == 2
    assert (
        json.loads((out / "market_cap_snapshot.json").read_bytes())["coin_count"]
        == fake_paid.served
    )


def test_duplicate_rows_are_dropped_and_reported(fake_paid, out):
    fake_paid.add_fault("/tickers", "duplicate_rows")
    result = run(S02, fake_paid, out, key=True)
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "market_cap_snapshot.json").read_bytes())
    assert doc["coin_count"] == 12_000 == len({c["id"] for c in doc["coins"]})
    stats = stats_of(out)
    assert stats["duplicates_dropped"] > 0
    assert "duplicate" in result.stdout


def test_paging_parameters_are_never_sent(fake_paid, out):
    assert run(S02, fake_paid, out, key=True).returncode == 0
    for request in fake_paid.requests:
        assert not {"page", "limit"} & set(request["query"])


def test_unwritable_output_directory_exits_73_without_requests(fake_paid, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run(S02, fake_paid, blocker / "data", key=True)
    assert result.returncode == 73
    assert fake_paid.count() == 0
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("body", ["[]", ""])
def test_empty_answer_exits_65(fake_paid, out, body):
    fake_paid.add_fault("/tickers", "body", body=body)
    assert run(S02, fake_paid, out, key=True).returncode == 65
    assert fake_paid.count("/tickers") == 1


@pytest.mark.parametrize(
    "body",
    [
        '[{"name": "no id"}]',
        '{"error": "x"}',
        '[{"id": "a", "quotes": {"USD": {"price": "12.5"}}}]',
        '[{"id": "a", "id": "b"}]',
    ],
)
def test_wrong_shapes_exit_65(fake_paid, out, body):
    fake_paid.add_fault("/tickers", "body", body=body)
    result = run(S02, fake_paid, out, key=True)
    assert result.returncode == 65, result.stderr
    assert fake_paid.count("/tickers") == 1


def test_400_404_exit_65_without_retry(fake_paid, out):
    fake_paid.add_fault("/tickers", "status", status=400)
    assert run(S02, fake_paid, out, key=True).returncode == 65
    fake_paid.add_fault("/global", "status", status=404)
    assert run(S02, fake_paid, out, key=True).returncode == 65
    assert fake_paid.count() == 3


def test_runs_in_cwd_without_out_dir(fake_free, tmp_path):
    fake_paid = fake_free  # the rule does not depend on the size: 2,000 coins are quicker
    result = run(S02, None, None, "--base-url", fake_paid.url, *FAST, env=PAID_ENV, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "market_cap_snapshot.json").exists()


def test_quiet_prints_nothing(fake_free, out):
    fake_paid = fake_free  # the rule does not depend on the size: 2,000 coins are quicker
    result = run(S02, fake_paid, out, "--quiet", key=True)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""


def test_base_url_from_environment(fake_paid, out):
    env = {**PAID_ENV, "COINPAPRIKA_BASE_URL": fake_paid.url}
    result = run(S02, None, None, "--out-dir", str(out), *FAST, env=env)
    assert result.returncode == 0, result.stderr
    assert fake_paid.count() == 2


def test_key_echoed_by_the_api_is_redacted_everywhere(fake_paid, out):
    fake_paid.add_fault("/tickers", "status", status=402, body=f"key {API_KEY} exceeded its quota")
    result = run(S02, fake_paid, out, key=True)
    assert result.returncode == 78 and API_KEY not in result.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_closed_stdout_does_not_lose_the_snapshot(fake_paid, out):
    import subprocess
    import sys

    from tests.conftest import ROOT

    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / S02),
            "--base-url",
            fake_paid.url,
            "--out-dir",
            str(out),
            *FAST,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**__import__("os").environ, **PAID_ENV},
    )
    proc.stdout.close()  # like `| head -0`
    assert proc.wait(timeout=120) == 0
    assert stats_of(out)["status"] == "ok"
