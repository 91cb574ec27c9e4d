"""The options of the scripts with hooks (03, 04, 05): --ping-url (or COLLECTOR_PING_URL) and
--metrics-file. What they do, and when, is hooks.py's."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import urllib3

PING_URL_ENV = "COLLECTOR_PING_URL"


def ping_url_text(text: str) -> str:
    """An http(s) URL with a host, without spaces or control characters (else exit 2)."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise argparse.ArgumentTypeError("the ping URL contains spaces or control characters")
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError("the ping URL must start with http:// or https://")
    try:
        host = urllib3.util.parse_url(text).host
    except ValueError as exc:  # urllib3's LocationParseError is a ValueError
        raise argparse.ArgumentTypeError(f"invalid ping URL: {exc}") from None
    if not host:
        raise argparse.ArgumentTypeError("the ping URL has no host")
    return text


def add_hook_options(parser: argparse.ArgumentParser) -> None:
    """A monitoring ping and a Prometheus textfile (docs/operations.md, "Pings and metrics")."""
    parser.add_argument(
        "--ping-url",
        type=ping_url_text,
        metavar="URL",
        help="ping URL/start when a run begins, URL on success, URL/<exit code> on a failure "
        f"(healthchecks.io's convention; env {PING_URL_ENV}); views never ping",
    )
    parser.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="after every run, write its outcome to PATH in the Prometheus textfile format "
        "(node_exporter's textfile collector); views write none",
    )


def hook_targets(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[str | None, Path | None]:
    """The ping URL (the option, else the environment's) and the metrics file, or None.

    Raises:
        argparse.ArgumentTypeError: COLLECTOR_PING_URL is not a usable URL (exit 2).
    """
    url = args.ping_url
    if url is None and (from_env := environ.get(PING_URL_ENV, "").strip()):
        try:
            url = ping_url_text(from_env)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{PING_URL_ENV}: {exc}") from None
    return url, Path(args.metrics_file).expanduser() if args.metrics_file else None
