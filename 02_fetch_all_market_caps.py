"""Take one snapshot of every coin the plan returns (one /tickers call + one /global call)
and append it to the history."""

import sys

import common

PROFILE = common.ScriptProfile(
    name="02_fetch_all_market_caps",
    description=__doc__,
    interactive=True,
    deadline_s=common.INTERACTIVE_DEADLINE_S,
    min_interval_min=0,
    archives_history=True,
)


def main(argv: list[str] | None = None, env: common.Environment | None = None) -> int:
    return common.run_main(PROFILE, common.collect_snapshot, argv, env=env)


if __name__ == "__main__":
    sys.exit(main())
