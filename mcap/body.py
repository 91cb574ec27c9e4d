"""A response body read within its limits: the download and decoded sizes, and our own
incremental decompression, so a gzip bomb or a cut-off stream is caught while it arrives."""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

from .errors import ApiDataError, BodyTooLarge
from .retry import TransientError


class BodyReader:
    """Collects a response body within the download and decoded limits, decoding as it goes.

    Decompression is ours and incremental (`max_length`), so a gzip bomb stops at the
    decoded limit instead of filling memory, and a compressed stream that ends early is
    detected as a cut-off transfer instead of silently yielding half a body.
    """

    def __init__(self, path: str, encoding: str, max_download: int, max_body: int) -> None:
        self.path = path
        self.encoding = encoding.strip().lower()
        self.max_download, self.max_body = max_download, max_body
        self.received = 0
        self.decoded = 0
        self._parts: list[bytes] = []
        self._decoder: Any = None
        if self.encoding in ("gzip", "x-gzip", "deflate"):
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        elif self.encoding not in ("", "identity"):
            # Not a passing fault: the same answer would come again, so it is not retried.
            raise ApiDataError(
                f"{path}: the API answered with Content-Encoding {encoding.strip()!r}, which "
                "this client did not ask for and cannot decode (it asks for gzip or deflate)",
                hint="check --base-url (a proxy in between?); the next run tries again",
            )

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.max_download:
            raise BodyTooLarge(
                f"{self.path}: response larger than the download limit of "
                f"{mb_text(self.max_download)} (--max-download-mb)"
            )
        if self._decoder is None:
            self._keep(chunk)
            return
        data = chunk
        while data:
            try:
                piece = self._decoder.decompress(data, self.max_body - self.decoded + 1)
            except zlib.error as exc:
                if self.encoding == "deflate" and self.received == len(chunk):
                    # Some servers send raw deflate without the zlib header.
                    self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                    piece = self._decoder.decompress(data, self.max_body - self.decoded + 1)
                else:
                    raise TransientError(
                        f"{self.path}: corrupt {self.encoding} body ({exc})"
                    ) from exc
            self._keep(piece)
            data = self._decoder.unconsumed_tail

    def _keep(self, piece: bytes) -> None:
        self.decoded += len(piece)
        if self.decoded > self.max_body:
            raise BodyTooLarge(
                f"{self.path}: body larger than the limit of {mb_text(self.max_body)} once "
                "decompressed (--max-body-mb)"
            )
        if piece:
            self._parts.append(piece)

    def prefix(self, size: int) -> bytes:
        """The first `size` decoded bytes (what rejected/ keeps of an oversized body)."""
        kept: list[bytes] = []
        for part in self._parts:
            kept.append(part[: size - sum(map(len, kept))])
            if sum(map(len, kept)) >= size:
                break
        return b"".join(kept)

    def body(self, complete: bool = True) -> bytes:
        if self._decoder is not None:
            self._keep(self._decoder.flush())
            if complete and not self._decoder.eof:
                raise TransientError(
                    f"{self.path}: {self.encoding} body cut off after {self.received} bytes"
                )
        data = b"".join(self._parts)
        self._parts = []
        return data


def mb_text(size: int) -> str:
    return f"{size / 1_000_000:g} MB"


def error_text(body: bytes) -> str:
    """The API's `{"error": ...}` message, or the first line of a non-JSON body."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return data["error"][:200]
    except (ValueError, RecursionError):
        pass  # not the API's JSON error shape: fall back to the text below
    text = body.decode("utf-8", "replace").strip()
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title:
        return "HTML page titled " + " ".join(title.group(1).split())[:150]
    first = text.splitlines()[0] if text else "(empty body)"
    return first[:200]
