"""The cron job: one run at a time, a whole-run deadline, monitoring files (latest_stats.json,
history/gaps.jsonl), and read-only views: --status, --check-history, --export-history, --query."""

import sys

import common

PROFILE = common.ScriptProfile(
    name="04_production_collector",
    description=__doc__,
    min_interval_min=5,
    archives_history=True,
    records_gaps=True,
    has_health_checks=True,
)


def pipeline(ctx: common.RunContext) -> int:
    # The health and history views are read-only: no lock, no stats, no log.
    if ctx.config.status:
        return common.show_status(ctx)
    if ctx.config.check_history:
        return common.show_history_check(ctx)
    if ctx.config.export_range:
        return common.export_history(ctx)
    if ctx.config.query:
        return common.query_history(ctx)
    return common.collect_snapshot(ctx)


def main(argv: list[str] | None = None) -> int:
    return common.run_main(PROFILE, pipeline, argv)


if __name__ == "__main__":
    sys.exit(main())
