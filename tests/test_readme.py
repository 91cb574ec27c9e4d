"""The README documents every option of every script and every exit code."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT, run, stats_of

SCRIPTS = [
    "01_fetch_all_coins_list.py",
    "02_fetch_all_market_caps.py",
    "03_optimized_free_tier_collector.py",
    "04_production_collector.py",
    "05_backfill_history.py",
]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_option_is_in_the_readme(script):
    readme = (ROOT / "README.md").read_text()
    result = run(script, None, None, "--help")
    assert result.returncode == 0
    options = set(re.findall(r"--[a-z][a-z-]+", result.stdout)) - {"--help"}
    assert options
    missing = sorted(o for o in options if o not in readme)
    assert not missing, f"{script}: undocumented {missing}"


def test_every_exit_code_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for code in (0, 2, 65, 69, 70, 73, 74, 75, 78, 130, 143):
        assert re.search(rf"\|\s*`?{code}`?\s*\|", readme), code


def test_readme_gives_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    assert "uv run 02_fetch_all_market_caps.py" in readme and "uv run pytest" in readme


def test_readme_cron_line_works_in_a_cron_like_environment(fake_free, tmp_path):
    """The README's 04 cron line, run as cron would: env -i, cwd $HOME, bare PATH."""
    import shutil
    import subprocess

    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    readme = (ROOT / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("*/30 ") and "04_" in x)
    command = line.split(" ", 5)[5]
    out = tmp_path / "data"
    out.mkdir()
    command = (
        command.replace("/path/to/repo", str(ROOT))
        .replace("/usr/local/bin/uv", uv)
        .replace("/srv/mcap/data", str(out))
        .replace(
            "04_production_collector.py", f"04_production_collector.py --base-url {fake_free.url}"
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    result = subprocess.run(
        ["env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin", "sh", "-c", command],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (command, result.stderr)
    assert (out / "cron.log").read_text() == ""  # --quiet: nothing on success
    stats = stats_of(out)
    assert stats["status"] == "ok" and stats["coin_count"] == 2_000
    assert fake_free.count() == 2
