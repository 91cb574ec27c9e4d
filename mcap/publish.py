"""The publish transaction: the files a run replaces, checked before any request, then written
beside their targets, committed, and renamed into place (docs/design.md, "Commit protocol").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from .context import STATS_NAME, RunContext
from .errors import CollectorError
from .fsio import (
    check_dir_target,
    check_file_target,
    check_free_space,
    commit_temp,
    discard_temp,
    remove_orphan_temps,
    write_temp,
)
from .ledger import LEDGER_NAME
from .logsetup import LOG_NAME
from .rejected import REJECTED_DIR
from .signals import GUARD

log = logging.getLogger(__name__)


def check_targets(out_dir: Path, files: tuple[str, ...], dirs: tuple[str, ...] = ()) -> None:
    """Before any request: nothing is in the way of a file or directory the run writes.

    Raises:
        LocalStateError: a target is a directory (or not a regular file), or a directory
            target is a file or cannot be written (74).
    """
    for name in (*files, STATS_NAME, LEDGER_NAME, LOG_NAME):
        check_file_target(out_dir / name)
    for name in (*dirs, REJECTED_DIR):
        check_dir_target(out_dir / name)


def publish(
    ctx: RunContext,
    bodies: dict[Path, bytes],
    commit: Callable[[], bool] | None = None,
    extra_bytes: int = 0,
) -> bool:
    """Write every body to a temp file first; then (optionally) commit history, then rename.

    Any failure before the commit leaves every target as it was. After the commit a
    failed rename is only a warning: the history holds the snapshot, and the next run
    rewrites the snapshot files (it sees they are older than the history). False when the
    commit found the snapshot already there (nothing renamed).

    Raises:
        WriteError: not enough free space (checked first), or the disk refused a write.
    """
    GUARD.checkpoint()
    check_free_space(next(iter(bodies)).parent, sum(map(len, bodies.values())) + extra_bytes)
    temps: dict[Path, Path] = {}
    try:
        for path, body in bodies.items():
            temps[path] = write_temp(path, body)
        with GUARD.critical():
            if commit is not None:
                if not commit():
                    return False
                ctx.committed = True
            for path, tmp in temps.items():
                _rename_into_place(ctx, tmp, path)
        return True
    finally:
        for tmp in temps.values():
            if tmp.exists():
                discard_temp(tmp)


def _rename_into_place(ctx: RunContext, tmp: Path, path: Path) -> None:
    try:
        commit_temp(tmp, path)
    except CollectorError as exc:
        if not ctx.committed:
            raise
        ctx.warn(f"{path.name} not replaced ({exc}); the next run rewrites it")


def clean_orphans(directory: Path, owned: tuple[str, ...] | None) -> None:
    """Temp files of a killed run; call while holding the lock that guards `owned` files."""
    if directory.is_dir():
        for orphan in remove_orphan_temps(directory, owned):
            log.info("removed orphan temp file %s", orphan.name)
