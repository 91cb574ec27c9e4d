"""The collector's package, one module per job, in layers: each imports only layers above it.

redact, clock, jsonio, errors      leaf helpers
settings, retry                    what a run is set to do
fsio, signals, logsetup            the process's files, signals and log
ledger                             the request quota on disk
client                             fetch: HTTP → strict JSON
validate, formats                  check a payload, serialise a snapshot
history                            commit, repair, archive, gaps, check
snapshot, context, rejected        a run's data, its outcome, refused payloads
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
    "history.files",
    "history.state",
    "history.repair",
    "history.columnar",
    "history.legacy",
    "history.archive",
    "history.store",
    "history.gaps",
    "history.check",
    "history.export",
    "history.query",
    "history",
    "snapshot",
    "context",
    "rejected",
    "report",
    "pipeline",
    "runner",
)
