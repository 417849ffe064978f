"""Posting a page over HTTP: a bounded time, an answer classified as sent, retry later or refused for good, and
errors that never show the URL (webhook and Slack URLs carry their keys)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from itsmd.config.secret import Secret
from itsmd.errors import NotifyError

RETRY_STATUSES = frozenset({408, 425, 429})


async def post_json(session: aiohttp.ClientSession, name: str, url: Secret, body: Any, timeout: float,
                    headers: Mapping[str, Secret] | None = None) -> tuple[int, bytes]:
    """POST `body` as JSON; the status and body of a 2xx answer, else NotifyError (retryable unless a 4xx
    other than 408/425/429)."""
    sent = {"Content-Type": "application/json", "User-Agent": "itsmd"}
    sent.update({k: v.reveal() for k, v in (headers or {}).items()})
    try:
        async with session.post(url.reveal(), data=orjson.dumps(body), headers=sent,
                                timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False) as resp:
            answer = await resp.content.read(4096)
            status = resp.status
    except TimeoutError as e:
        raise NotifyError(f"notifier {name}: no answer within {timeout:g}s") from e
    except aiohttp.ClientError as e:
        raise NotifyError(f"notifier {name}: connection failed ({type(e).__name__})") from e
    if 200 <= status < 300:
        return status, answer
    retry = status >= 500 or status in RETRY_STATUSES
    raise NotifyError(f"notifier {name}: HTTP {status}", retryable=retry)
