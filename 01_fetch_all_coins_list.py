"""Fetch the whole CoinPaprika coin catalogue (/coins, ~60k coins) into
coins_metadata.json and coins_list.txt."""

import sys

import common


def main(argv: list[str] | None = None) -> int:
    return common.run_main(
        common.SCRIPT_COINS, __doc__, common.fetch_coin_catalogue, argv, writes_stats=False
    )


if __name__ == "__main__":
    sys.exit(main())
