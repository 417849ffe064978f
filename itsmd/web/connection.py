"""The HTTP edge below aiohttp, per TCP connection: a cap on open connections per client address, and a deadline
for the head of a connection's first request (aiohttp has no header timeout; its keep-alive timer, armed after
each answer, bounds the head of every later request on the connection). The request *body* deadline is the
middleware's (`itsmd.web.server`). A slow client is cut off; it holds a connection, never the event loop."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from aiohttp import web

log = logging.getLogger("itsmd.web")

_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float  # seconds from accept to the end of the first request's head
    max_per_source: int  # open connections from one client address


def _answer(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection (written before aiohttp ever saw a request)."""
    body = orjson.dumps({"error": message})
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


class Sources:
    """Open connections per client address."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def admit(self, source: str) -> bool:
        count = self._open.get(source, 0)
        if count >= self.limit:
            return False
        self._open[source] = count + 1
        return True

    def release(self, source: str) -> None:
        count = self._open.get(source, 0) - 1
        if count > 0:
            self._open[source] = count
        else:
            self._open.pop(source, None)

    def open(self, source: str) -> int:
        return self._open.get(source, 0)


class GuardedConnection(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection: refuses it over the source's cap, and cuts it when the first
    request's head is not complete within the deadline. Everything else is passed through."""

    def __init__(self, inner: asyncio.Protocol, limits: ConnectionLimits, sources: Sources) -> None:
        self._inner = inner
        self._limits = limits
        self._sources = sources
        self._source: str | None = None  # set once admitted
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen while waiting for the head's end (it may span two reads)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio.Transport subclasses
        self._transport = transport
        peer = transport.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) and peer else "local"
        if not self._sources.admit(source):
            transport.write(_answer(429, "Too Many Requests", "too many open connections from this address"))
            transport.close()
            return
        self._source = source
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self._limits.header_timeout, self._head_overdue)
        self._inner.connection_made(transport)

    def _head_overdue(self) -> None:
        self._deadline = None
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_answer(408, "Request Timeout",
                                          f"request head not received within {self._limits.header_timeout:g} s"))
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._source is None:
            return  # refused: whatever it sends is dropped
        if self._deadline is not None:
            seen = self._tail + data
            if any(end in seen for end in _HEAD_ENDS):
                self._deadline.cancel()
                self._deadline = None
                self._tail = b""
            else:
                self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._source is None:
            return None
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._source is None:
            return
        self._sources.release(self._source)
        self._source = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._source is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._source is not None:
            self._inner.resume_writing()


class GuardedSite(web.TCPSite):
    """aiohttp's TCPSite with every connection wrapped in a GuardedConnection (and the TLS handshake bounded by
    the header deadline)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, limits: ConnectionLimits,
                 ssl_context: ssl.SSLContext | None = None, backlog: int = 128) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, backlog=backlog)
        self._limits = limits
        self.sources = Sources(limits.max_per_source)

    async def start(self) -> None:
        self._runner._reg_site(self)  # what BaseSite.start does; TCPSite.start would bind the unwrapped protocol
        server = self._runner.server
        assert server is not None
        inner: Callable[[], Any] = server
        loop = asyncio.get_running_loop()
        extra: dict[str, Any] = {"ssl_handshake_timeout": self._limits.header_timeout} if self._ssl_context else {}
        self._server = await loop.create_server(
            lambda: GuardedConnection(inner(), self._limits, self.sources), self._host, self._port,
            ssl=self._ssl_context, backlog=self._backlog, reuse_address=self._reuse_address,
            reuse_port=self._reuse_port, **extra)
