"""The README documents every option of every script and every exit code."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT, run_script

SCRIPTS = [
    "01_fetch_all_coins_list.py",
    "02_fetch_all_market_caps.py",
    "03_optimized_free_tier_collector.py",
    "04_production_collector.py",
]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_option_is_in_the_readme(script):
    readme = (ROOT / "README.md").read_text()
    result = run_script(script, "--help")
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
