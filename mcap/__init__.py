"""The collector's package, one module per job, in layers: each imports only layers above it.

redact, clock, jsonio, errors      leaf helpers
settings, retry                    what a run is set to do
fsio, signals, logsetup            the process's files, signals and log
ledger                             the request quota on disk
client                             fetch: HTTP → strict JSON
validate, formats, snapshot        check a payload, serialise it, what changed
history                            commit, repair, the reader, archive, gaps, check, views' SQL
context, rejected                  a run's outcome, refused payloads
report                             what a person reads
pipeline                           fetch → validate → write → commit → report
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
    "client",
    "validate",
    "formats",
    "snapshot",
    "history.files",
    "history.state",
    "history.manifest",
    "history.repair",
    "history.reader",
    "history.columnar",
    "history.legacy",
    "history.archive",
    "history.store",
    "history.gaps",
    "history.check",
    "history.export",
    "history.query",
    "history",
    "context",
    "rejected",
    "report",
    "pipeline",
    "runner",
)
