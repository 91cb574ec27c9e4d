"""The one function that keeps the API key out of every byte the collector writes.

The key can reach output in many spellings: as sent, JSON-escaped (`\\u00e9`, `\\/`), inside a
`repr()`, percent-encoded in a URL, or as the repr of its bytes. Every form is masked, in text
and in bytes alike, before anything reaches a file, a log line, stdout or stderr.
"""

from __future__ import annotations

import json
from typing import TypeVar
from urllib.parse import quote

MASK = "<redacted>"
_forms: tuple[str, ...] = ()
_byte_forms: tuple[bytes, ...] = ()

Data = TypeVar("Data", str, bytes)


def set_secret(secret: str | None) -> None:
    """Register the run's API key (None: nothing to hide)."""
    global _forms, _byte_forms
    if not secret:
        _forms, _byte_forms = (), ()
        return
    spellings = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        repr(secret)[1:-1],
        quote(secret, safe=""),
        repr(secret.encode("utf-8", "surrogatepass"))[2:-1],
    }
    # Longest first, so a spelling that contains another is masked whole.
    _forms = tuple(sorted((s for s in spellings if s), key=len, reverse=True))
    _byte_forms = tuple(s.encode("utf-8", "surrogatepass") for s in _forms)


def redact(data: Data) -> Data:
    """`data` with every spelling of the registered key replaced by `<redacted>`."""
    if isinstance(data, bytes):
        for form in _byte_forms:
            if form in data:
                data = data.replace(form, MASK.encode())
        return data
    for text_form in _forms:
        if text_form in data:
            data = data.replace(text_form, MASK)
    return data
