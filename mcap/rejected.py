"""`rejected/`: a bounded copy of each payload the validation refused, for a human to read."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .client import ApiClient, ApiResponse
from .clock import compact_id, utc_iso
from .errors import ApiDataError, LocalStateError
from .fsio import atomic_write_bytes, check_free_space, ensure_subdir

log = logging.getLogger(__name__)

REJECTED_DIR = "rejected"
REJECTED_KEEP = 5
REJECTED_MAX_BYTES = 8 * 1024 * 1024

Result = TypeVar("Result")


def keep_rejected(out_dir: Path, endpoint: str, body: bytes) -> Path | None:
    """Keep (a bounded prefix of) a refused payload; the newest few are kept.

    Best effort: the run fails with the payload's error whatever happens here.
    """
    body = body[:REJECTED_MAX_BYTES]
    name = endpoint.strip("/").replace("/", "_") or "root"
    try:
        folder = ensure_subdir(out_dir / REJECTED_DIR)
        target = folder / f"{compact_id(utc_iso())}-{name}.json"
        for extra in range(2, 100):  # two refusals within one second keep both payloads
            if not target.exists():
                break
            target = folder / f"{compact_id(utc_iso())}-{name}-{extra}.json"
        check_free_space(folder, len(body))
        atomic_write_bytes(target, body)
        for old in sorted(folder.glob("*.json"))[:-REJECTED_KEEP]:
            old.unlink()
    except (LocalStateError, OSError) as exc:
        log.warning("could not keep the rejected payload: %s", exc)
        return None
    log.warning("rejected payload kept in %s", target)
    return target


def fetch_validated(
    out_dir: Path,
    client: ApiClient,
    path: str,
    validate: Callable[[Any], Result],
    params: dict[str, str] | None = None,
) -> Result:
    """GET and validate; a refused payload goes to rejected/ and the error notes where."""
    response: ApiResponse | None = None
    try:
        response = client.get(path, params)
        return validate(response.data)
    except ApiDataError as exc:
        body = exc.body if exc.body is not None else response.body if response else None
        if body is not None:
            kept = keep_rejected(out_dir, exc.endpoint or path, body)
            if kept is not None:
                exc.add_note(f"payload kept in {REJECTED_DIR}/{kept.name}")
        raise
