"""The collector's package, one module per job, in layers: each imports only layers above it.

redact, clock, jsonio, errors      leaf helpers
settings, plans, retry, ratelimit  what a run is set to do, the plans' limits, the pace
fsio, signals, logsetup            the process's files, signals and log
ledger                             the request quota on disk
body, client                       fetch: HTTP → a bounded body → strict JSON
validate, formats, snapshot        check a payload, serialise it, the snapshot's rules
history                            commit, repair, the reader, archive, gaps, check, views' SQL
                                   (--query's, --report's); the backfilled points beside the
                                   snapshots
context, rejected, publish         a run's outcome and streams, refused payloads, the transaction
report, status                     what a person reads: a run's summary, --status
report_charts, report_ops,         --report: its figures (charts, calendar, quota, runs) and
  report_data, html_sections,        its page, section by section
  html_report
views                              the read-only views, declared once
option_types, historical_options,  the command line
  hook_options, cli
backfill_tasks, backfill,          what to ask /tickers/{id}/historical, the engine that asks,
  gap_repair                       the cron jobs' refill of missed slots
collect, fill, catalogue           the pipelines of 02–04, of 05 and of 01
metrics, hooks                     03–05's Prometheus textfile and monitoring pings
runner                             the process: arguments, lock, exit code, stats
"""

LAYERS = (
    "redact",
    "clock",
    "jsonio",
    "errors",
    "settings",
    "plans",
    "retry",
    "ratelimit",
    "fsio",
    "signals",
    "logsetup",
    "ledger",
    "body",
    "client",
    "validate",
    "formats",
    "snapshot",
    "history.files",
    "history.state",
    "history.manifest",
    "history.repair",
    "history.locks",
    "history.summaries",
    "history.points_ranges",
    "history.points",
    "history.points_reader",
    "history.reader",
    "history.columnar",
    "history.points_archive",
    "history.legacy",
    "history.pieces",
    "history.cut",
    "history.archive",
    "history.store",
    "history.gaps",
    "history.points_check",
    "history.check",
    "history.export",
    "history.query",
    "history.report_sql",
    "history",
    "context",
    "rejected",
    "publish",
    "report",
    "status",
    "report_charts",
    "report_ops",
    "report_data",
    "html_sections",
    "html_report",
    "views",
    "option_types",
    "historical_options",
    "hook_options",
    "cli",
    "backfill_tasks",
    "backfill",
    "gap_repair",
    "collect",
    "fill",
    "catalogue",
    "metrics",
    "hooks",
    "runner",
)
