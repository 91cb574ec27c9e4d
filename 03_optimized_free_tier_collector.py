"""Take a snapshot while spending the free plan's quota wisely across runs: a request ledger,
a monthly budget, no polling faster than the API refreshes, and --plan for the budget maths."""

import sys

import common

PROFILE = common.ScriptProfile(
    name="03_optimized_free_tier_collector",
    description=__doc__,
    min_interval_min=5,  # the free plan refreshes about every 5 minutes
    archives_history=True,
    has_budget_plan=True,
)


def pipeline(ctx: common.RunContext) -> int:
    if ctx.config.show_plan:
        return common.show_budget_plan(ctx)
    return common.collect_snapshot(ctx)


def main(argv: list[str] | None = None) -> int:
    return common.run_main(PROFILE, pipeline, argv)


if __name__ == "__main__":
    sys.exit(main())
