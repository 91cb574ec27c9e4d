"""The docs tell the truth: every shell example of README.md and docs/ runs against the fake.

Each ```bash block runs as a script (bash -euo pipefail) in an output directory that looks
like a fresh install in its first month: one 04 run and one 01 run, no archive yet, no
gaps.jsonl. `/srv/mcap/data` and `/path/to/repo` stand for that directory and the project;
COINPAPRIKA_BASE_URL points the collectors at the fake. A block preceded by
`<!-- not run: reason -->` is skipped (the reason is in the docs).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run

DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "benchmarks" / "README.md",
]
BLOCK = re.compile(r"(<!-- not run: [^\n]*-->\n)?```bash\n(.*?)```", re.DOTALL)


def shell_examples() -> list[tuple[str, str]]:
    examples = []
    for doc in DOCS:
        if not doc.exists():
            continue
        text = doc.read_text()
        for match in BLOCK.finditer(text):
            if match.group(1):
                continue
            line = text.count("\n", 0, match.start(2)) + 1
            examples.append((f"{doc.relative_to(ROOT)}:{line}", match.group(2)))
    return examples


EXAMPLES = shell_examples()


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory, free_server) -> Path:
    out = tmp_path_factory.mktemp("docs") / "data"
    free_server.clear_faults()
    free_server.advance(300)
    for script in ("04_production_collector.py", "01_fetch_all_coins_list.py"):
        result = run(script, None, None, "--base-url", free_server.url, "--out-dir", str(out))
        assert result.returncode == 0, result.stderr
    return out


def test_the_docs_have_shell_examples():
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize(("where", "block"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_every_shell_example_runs(where, block, fresh_install, free_server):
    if "jq " in block and shutil.which("jq") is None:
        pytest.skip("jq is not installed")
    script = (
        block.replace("/srv/mcap/data", str(fresh_install))
        .replace("/path/to/repo", str(ROOT))
        # The project's interpreter directly: `uv run` would resolve the same environment,
        # a second slower each time (the cron test runs the real `uv run` line).
        .replace("uv run python ", f"{sys.executable} ")
        .replace("uv run ", f"{sys.executable} ")
    )
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(fresh_install.parent),
        "COINPAPRIKA_BASE_URL": free_server.url,
    }
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=fresh_install,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{where}\n{script}\n{result.stdout[-2000:]}\n{result.stderr}"
    assert "error" not in result.stderr, f"{where}\n{result.stderr}"
