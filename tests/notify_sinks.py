"""Local servers speaking the notifiers' protocols, on loopback: an HTTP sink that records what it is sent (the
webhook, Slack and PagerDuty endpoints) and an SMTP server with STARTTLS (aiosmtpd) with a trustme certificate."""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.process import free_port


@dataclass
class HttpSink:
    """Records every request; answers `statuses` in turn (then 200 or, for PagerDuty paths, 202)."""

    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    server: TestServer | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append({"path": request.path, "headers": dict(request.headers),
                              "json": json.loads(body) if body else None})
        self.arrived.set()
        status = self.statuses.pop(0) if self.statuses else (202 if "enqueue" in request.path else 200)
        if request.path.endswith("/enqueue") and status == 202:
            return web.json_response({"status": "success", "message": "Event processed"}, status=202)
        return web.Response(status=status, text="ok")

    async def start(self) -> HttpSink:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    def bodies(self, path: str | None = None) -> list[Any]:
        return [r["json"] for r in self.received if path is None or r["path"] == path]

    async def wait_for(self, n: int, timeout: float = 10.0) -> None:
        async def enough() -> None:
            while len(self.received) < n:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(enough(), timeout)


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.secure: list[bool] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(message_from_bytes(envelope.content))
        self.secure.append(session.ssl is not None)
        return "250 OK"


class _TlsController(Controller):
    def __init__(self, handler: _Mailbox, port: int, context: ssl.SSLContext) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=port)
        self._context = context

    def factory(self) -> SMTP:
        return SMTP(self.handler, hostname="localhost", tls_context=self._context, require_starttls=True)


class SmtpSink:
    """An SMTP server on loopback that requires STARTTLS with a certificate for 127.0.0.1 signed by `ca`."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.mailbox = _Mailbox()
        self.port = free_port()
        self.controller = _TlsController(self.mailbox, self.port, context)

    @property
    def ca_pem(self) -> str:
        return self.ca.cert_pem.bytes().decode()

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
