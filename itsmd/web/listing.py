"""List parameters shared by every collection: `limit` (default 100, max 1000) and an opaque `cursor`."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from itsmd.core.timestamp import parse_time
from itsmd.errors import BadRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Window:
    limit: int
    before_id: int | None


def window(request: web.Request) -> Window:
    raw_limit = request.query.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise BadRequest("limit must be a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    cursor = request.query.get("cursor")
    if not cursor:
        return Window(limit, None)
    try:
        before = int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest("invalid cursor") from None
    return Window(limit, before)


def page(items: list[dict[str, Any]], last_ids: list[int], w: Window) -> dict[str, Any]:
    """`{"items", "next_cursor"}`; the cursor points past the last item when the page is full."""
    next_cursor = None
    if len(items) == w.limit and last_ids:
        next_cursor = base64.urlsafe_b64encode(str(last_ids[-1]).encode()).decode().rstrip("=")
    return {"items": items, "next_cursor": next_cursor}


def flag(request: web.Request, name: str) -> bool | None:
    """A true/false query parameter; None when absent or empty."""
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise BadRequest(f"{name} must be true or false")


def time_param(request: web.Request, name: str) -> datetime | None:
    """An RFC 3339 query parameter; None when absent, 400 when unreadable."""
    text = request.query.get(name)
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError as e:
        raise BadRequest(f"{name}: {e}") from e


def since(request: web.Request) -> datetime | None:
    """The `since` parameter (created/opened at or after)."""
    return time_param(request, "since")
