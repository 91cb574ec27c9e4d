"""The cron job: one run at a time, a whole-run deadline, monitoring files (latest_stats.json,
history/gaps.jsonl), monthly history archives, --status and --check-history."""

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
    # --status and --check-history are read-only: the runner takes no lock and writes no stats.
    if ctx.config.status:
        return common.show_status(ctx)
    if ctx.config.check_history:
        return common.show_history_check(ctx)
    return common.collect_snapshot(ctx)


def main(argv: list[str] | None = None) -> int:
    return common.run_main(PROFILE, pipeline, argv)


if __name__ == "__main__":
    sys.exit(main())
