"""Benchmarks for the collector scripts, run against the local fake API (tests/fake_api.py).

Run with ``uv run python -m benchmarks`` (see ``--help``). It reports figures with targets and
PASS/FAIL; it is not a test and always exits 0.
"""
