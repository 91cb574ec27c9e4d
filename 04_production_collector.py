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


# The health and history views are read-only: no lock, no stats, no log.
VIEWS = {
    "status": common.show_status,
    "check-history": common.show_history_check,
    "export-history": common.export_history,
    "query": common.query_history,
}


def pipeline(ctx: common.RunContext) -> int:
    if ctx.config.view is not None:
        return VIEWS[ctx.config.view](ctx)
    return common.collect_snapshot(ctx)


def main(argv: list[str] | None = None) -> int:
    return common.run_main(PROFILE, pipeline, argv)


if __name__ == "__main__":
    sys.exit(main())
