"""Bench only (bench/ingest --targets itsmd-noedge): run the `itsmd` command line with aiohttp's plain TCPSite in
place of itsmd.web.connection.GuardedSite, i.e. without the per-connection wrapper (per-source connection cap,
head deadline), to measure what that wrapper costs. Not an itsmd option: never run a daemon like this.

Usage: python bench/unguarded.py serve -c CONFIG
"""

from __future__ import annotations

import ssl
import sys

from aiohttp import web

import itsmd.app
from itsmd.cli import main
from itsmd.web.connection import ConnectionLimits


class PlainSite(web.TCPSite):
    """GuardedSite's signature, aiohttp's TCPSite's behaviour (the limits are ignored)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, limits: ConnectionLimits,
                 ssl_context: ssl.SSLContext | None = None, backlog: int = 128) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=backlog)


itsmd.app.GuardedSite = PlainSite  # type: ignore[misc,assignment]  # looked up when the daemon starts its site

if __name__ == "__main__":
    sys.exit(main())
