"""File primitives: atomic replace, locks, durable appends (docs/design.md, "Commit protocol")."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import LocalStateError, LockBusy, OutputDirError, WriteError
from .redact import redact

FILE_MODE = 0o644
TEMP_SUFFIX = ".tmp"
FREE_SPACE_MARGIN = 1_000_000
# Crash points for tests: COLLECTOR_CRASH_AT=name kills the process there.
CRASH_ENV = "COLLECTOR_CRASH_AT"


def crash_point(name: str) -> None:
    """Signal ourselves at a named point when a test asks for it.

    `COLLECTOR_CRASH_AT=name` sends SIGKILL; `name:TERM` or `name:INT` that signal.
    """
    wanted = os.environ.get(CRASH_ENV)
    if wanted is None:
        return
    point, _, signame = wanted.partition(":")
    if point == name:
        os.kill(os.getpid(), getattr(signal, f"SIG{signame or 'KILL'}"))


def ensure_dir(path: Path) -> Path:
    """Create the output directory (and parents) or raise OutputDirError (73)."""
    if path.is_dir():
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"cannot create output directory {path}: {exc.strerror}") from exc
    if not path.is_dir():
        raise OutputDirError(f"output path {path} is not a directory")
    return path


def ensure_subdir(path: Path) -> Path:
    """A directory inside the output directory; something else in its place is 74, not 73."""
    if not path.is_dir() and (path.exists() or path.is_symlink()):
        raise LocalStateError(
            f"{path} is in the way: it should be a directory",
            hint="move it away; the collector recreates the directory",
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(f"cannot create directory {path}: {exc.strerror}") from exc
    return path


def check_writable(path: Path) -> None:
    """Fail fast (74) before any request when an existing directory cannot take a file."""
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-probe.", suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise WriteError(f"cannot write in {path}: {exc.strerror}") from exc
    os.close(fd)
    os.unlink(probe)


def check_file_target(path: Path) -> None:
    """A file the run will replace or append to must be a regular file, or absent (74)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LocalStateError(f"cannot inspect {path}: {exc.strerror}") from exc
    if stat.S_ISREG(mode):
        return
    kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
    raise LocalStateError(
        f"{path} is {kind}, so the run could not replace it",
        hint="move it away; nothing was changed and no request was made",
    )


def check_dir_target(path: Path) -> None:
    """A directory the run may write into must be a writable directory, or absent (74)."""
    if path.is_dir():
        check_writable(path)
    elif path.exists() or path.is_symlink():
        raise LocalStateError(
            f"{path} is in the way: it should be a directory",
            hint="move it away; nothing was changed and no request was made",
        )


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """os.write may write less than asked; loop until everything is out."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_error(path: Path, exc: OSError) -> WriteError:
    reason = "disk full (ENOSPC)" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return WriteError(f"cannot write {path.name}: {reason}")


def write_temp(path: Path, data: bytes) -> Path:
    """Write data (key redacted) to a fsynced temp file beside path; the caller renames it."""
    data = redact(data)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600 and os.replace would carry it over
        write_all(fd, data)
        os.fsync(fd)
    except BaseException as exc:
        os.close(fd)
        os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise
    os.close(fd)
    return Path(tmp)


def commit_temp(tmp: Path, path: Path) -> None:
    """Rename a finished temp file over its target and make the rename durable."""
    try:
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc


def discard_temp(tmp: Path | None) -> None:
    if tmp is not None:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace path with data so readers see the old or the new file, never half of one."""
    tmp = write_temp(path, data)
    try:
        commit_temp(tmp, path)
    except BaseException:
        discard_temp(tmp)
        raise


def append_durably(path: Path, data: bytes) -> None:
    """Append data (key redacted) with one write and an fsync; the caller holds the lock."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        write_all(fd, redact(data))
        os.fsync(fd)
    finally:
        os.close(fd)


def check_free_space(directory: Path, needed: int) -> None:
    """Atomic replace needs room for old and new copies side by side (docs/design.md)."""
    free = shutil.disk_usage(directory).free
    if free < needed + FREE_SPACE_MARGIN:
        raise WriteError(
            f"not enough free space in {directory}: this run writes {needed / 1e6:.1f} MB, "
            f"{free / 1e6:.1f} MB free (keeping {FREE_SPACE_MARGIN / 1e6:.0f} MB spare)"
        )


STALE_TEMP_AGE_S = 3600.0


def remove_orphan_temps(directory: Path, owned: tuple[str, ...] | None = None) -> list[Path]:
    """Delete `.*.tmp` files a killed run left behind.

    Temps of files the caller's lock protects (`owned` target names; None: the whole
    directory) go at once; any other temp only when older than an hour, since another
    script may be writing it right now.
    """
    removed: list[Path] = []
    now = time.time()
    for tmp in directory.glob(f".*{TEMP_SUFFIX}"):
        mine = owned is None or any(tmp.name.startswith(f".{name}.") for name in owned)
        try:
            if mine or now - tmp.stat().st_mtime >= STALE_TEMP_AGE_S:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:
            continue
    return removed


class FileLock:
    """An flock on a lock file that is never deleted (docs/design.md, "Locks")."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, blocking: bool = True, note: str | None = None) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise WriteError(f"cannot open lock file {self.path}: {exc.strerror}") from exc
        flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            raise LockBusy(f"previous run still active ({holder or 'unknown holder'})") from None
        self._fd = fd
        if note is not None:
            # For humans only; the kernel lock, not this text, decides who runs.
            os.ftruncate(fd, 0)
            os.pwrite(fd, note.encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold a blocking flock on path for the duration of the block."""
    with FileLock(path):
        yield


def copy_range(path: Path, start: int, end: int, target: Path) -> None:
    """Bytes [start, end) of `path` into a new `target`, durably, with the files' mode."""
    with open(path, "rb") as src, open(target, "wb") as dst:
        src.seek(start)
        remaining = end - start
        while remaining > 0 and (block := src.read(min(remaining, 1 << 20))):
            dst.write(block)
            remaining -= len(block)
        dst.flush()
        os.fsync(dst.fileno())
    os.chmod(target, FILE_MODE)
