"""Take one snapshot of every coin the plan returns (one /tickers call + one /global call)
and append it to the history."""

import sys

import common


def main(argv: list[str] | None = None) -> int:
    return common.run_main(common.SCRIPT_SNAPSHOT, __doc__, common.collect_snapshot, argv)


if __name__ == "__main__":
    sys.exit(main())
