"""The cron job: one run at a time, a whole-run deadline, monitoring files (latest_stats.json,
history/gaps.jsonl), monthly history archives, --status and --check-history."""

import sys

import common


def pipeline(ctx: common.RunContext) -> int:
    if ctx.config.status:
        return common.show_status(ctx)
    if ctx.config.check_history:
        return common.run_check_history(ctx)
    return common.collect_snapshot(ctx)


def main(argv: list[str] | None = None) -> int:
    # --status and --check-history take no lock, so they never write latest_stats.json.
    return common.run_main(common.SCRIPT_PRODUCTION, __doc__, pipeline, argv)


if __name__ == "__main__":
    sys.exit(main())
