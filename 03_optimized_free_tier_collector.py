"""Take a snapshot while spending the free plan's quota wisely across runs: a request ledger,
a monthly budget, no polling faster than the API refreshes, and --plan for the budget maths."""

import sys

import common


def pipeline(ctx: common.RunContext) -> int:
    if ctx.config.show_plan:
        return common.show_budget_plan(ctx)
    return common.collect_snapshot(ctx)


def main(argv: list[str] | None = None) -> int:
    return common.run_main(common.SCRIPT_FREE_TIER, __doc__, pipeline, argv)


if __name__ == "__main__":
    sys.exit(main())
