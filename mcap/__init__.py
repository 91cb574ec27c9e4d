"""The collector's package, one module per job, in layers: each imports only layers above it.

redact, clock, jsonio, errors      leaf helpers
settings, retry                    what a run is set to do
fsio, signals, logsetup            the process's files, signals and log
ledger                             the request quota on disk
body, client                       fetch: HTTP → a bounded body → strict JSON
validate, formats, snapshot        check a payload, serialise it, the snapshot's rules
history                            commit, repair, the reader, archive, gaps, check, views' SQL
context, rejected, publish         a run's outcome and streams, refused payloads, the transaction
report, status, views              what a person reads, the read-only views
option_types, cli                  the command line
collect, catalogue                 the pipelines of 02–04 and of 01
runner                             the process: arguments, lock, exit code, stats
"""

LAYERS = (
    "redact",
    "clock",
    "jsonio",
    "errors",
    "settings",
    "retry",
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
    "history.reader",
    "history.columnar",
    "history.legacy",
    "history.pieces",
    "history.cut",
    "history.archive",
    "history.store",
    "history.gaps",
    "history.check",
    "history.export",
    "history.query",
    "history",
    "context",
    "rejected",
    "publish",
    "report",
    "status",
    "views",
    "option_types",
    "cli",
    "collect",
    "catalogue",
    "runner",
)
