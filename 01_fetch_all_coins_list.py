"""Fetch the whole CoinPaprika coin catalogue (/coins, ~60k coins) into
coins_metadata.json and coins_list.txt."""

import sys

import common

PROFILE = common.ScriptProfile(
    name="01_fetch_all_coins_list",
    description=__doc__,
    takes_quotes=False,
    interactive=True,
    deadline_s=common.INTERACTIVE_DEADLINE_S,
    writes_stats=False,
    lock_name=".coins.lock",
)


def main(argv: list[str] | None = None, env: common.Environment | None = None) -> int:
    return common.run_main(PROFILE, common.fetch_catalogue, argv, env=env)


if __name__ == "__main__":
    sys.exit(main())
