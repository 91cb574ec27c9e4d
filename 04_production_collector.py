"""The cron job: one run at a time, a whole-run deadline, monitoring files (latest_stats.json,
history/gaps.jsonl), missed slots refilled from the historical endpoint while the plan still
serves them, and read-only views: --status, --check-history, --export-history, --query,
--report FILE.html."""

import sys

import common

PROFILE = common.ScriptProfile(
    name="04_production_collector",
    description=__doc__,
    hooks=True,
    min_interval_min=5,
    archives_history=True,
    repairs_gaps=True,
    records_gaps=True,
    views=("status", "check-history", "export-history", "query", "report"),
)


def main(argv: list[str] | None = None, env: common.Environment | None = None) -> int:
    return common.run_main(PROFILE, common.collect_snapshot, argv, env=env)


if __name__ == "__main__":
    sys.exit(main())
