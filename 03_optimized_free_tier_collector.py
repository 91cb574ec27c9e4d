"""Take a snapshot while spending the free plan's quota wisely across runs: a request ledger,
a monthly budget, no polling faster than the API refreshes, and --plan for the budget maths."""

import sys

import common

PROFILE = common.ScriptProfile(
    name="03_optimized_free_tier_collector",
    description=__doc__,
    hooks=True,
    min_interval_min=5,  # the free plan refreshes about every 5 minutes
    archives_history=True,
    repairs_gaps=True,
    views=("plan",),
)


def main(argv: list[str] | None = None, env: common.Environment | None = None) -> int:
    return common.run_main(PROFILE, common.collect_snapshot, argv, env=env)


if __name__ == "__main__":
    sys.exit(main())
