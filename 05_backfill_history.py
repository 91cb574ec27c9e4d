"""Fill the history's past from /tickers/{id}/historical: a year of daily points on the free
plan, more on paid plans; inside the month's quota (the snapshots' calls are never spent),
resumable (each answer is stored as it lands, exactly once), beside the cron job."""

import sys

import common

PROFILE = common.ScriptProfile(
    name="05_backfill_history",
    description=__doc__,
    hooks=True,
    takes_quotes=False,
    backfills=True,
    lock_name=common.BACKFILL_LOCK,
    stats_name=common.BACKFILL_STATS_FILE,
)


def main(argv: list[str] | None = None, env: common.Environment | None = None) -> int:
    return common.run_main(PROFILE, common.backfill_history, argv, env=env)


if __name__ == "__main__":
    sys.exit(main())
