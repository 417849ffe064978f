"""The `webhook` notifier: POSTs `{"event", "reason", "incident", "alerts", "runs"}` (DESIGN §1.6 item 12)."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from itsmd.config.secret import Secret
from itsmd.notify.message import Message
from itsmd.notify.transport import post_json


class Webhook:
    def __init__(self, name: str, session: aiohttp.ClientSession, url: Secret, timeout: float,
                 headers: Mapping[str, Secret]) -> None:
        self.name, self._session, self._url, self._timeout, self._headers = name, session, url, timeout, headers

    async def send(self, message: Message) -> None:
        await post_json(self._session, self.name, self._url, message.webhook_body(), self._timeout, self._headers)
