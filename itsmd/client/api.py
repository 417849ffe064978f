"""The client's HTTP: JSON requests to the itsmd API with a bearer token, errors as ApiError / Unreachable."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import orjson

from itsmd import __version__
from itsmd.client.text import escape
from itsmd.errors import ApiError, Unreachable

DEFAULT_URL = "http://127.0.0.1:9797"
TIMEOUT = 30.0
_MAX_ERROR_TEXT = 300  # characters of a non-JSON error body shown


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would send the token wherever the answer points."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None


def _message(status: int, raw: bytes) -> str:
    """The server's `error`, else the start of whatever it sent (a proxy's page, say), escaped for a terminal."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        text = doc["error"]
        problems = doc.get("problems")
        if isinstance(problems, list) and problems:
            text += "".join(f"\n  {p}" for p in problems)
        return escape(text, keep_newlines=True)
    snippet = raw[:_MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
    return f"HTTP {status}" + (f": {escape(snippet)}" if snippet else "")


class Api:
    """One daemon at `url`; every call answers the decoded JSON or raises."""

    def __init__(self, url: str, token: str | None, timeout: float = TIMEOUT) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"--url must be http://HOST:PORT or https://HOST:PORT, got {url[:80]!r}")
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect)

    def call(self, method: str, path: str, query: Mapping[str, str | None] | None = None,
             body: Mapping[str, Any] | None = None) -> Any:
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.url + path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        headers = {"Accept": "application/json", "User-Agent": f"itsmd/{__version__}"}
        data = None
        if method != "GET":  # every state change carries a JSON body ({} is fine)
            data = orjson.dumps(dict(body or {}))
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 (http(s) only)
        try:
            with self._opener.open(request, timeout=self._timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            with e:
                raise ApiError(e.code, _message(e.code, e.read())) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            why = getattr(e, "reason", None) or e
            raise Unreachable(f"cannot reach {self.url}: {why}") from e
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(status, f"the answer of {method} {path} is not JSON") from None

    def get(self, path: str, query: Mapping[str, str | None] | None = None) -> Any:
        return self.call("GET", path, query)


def segment(identifier: str) -> str:
    """An id as one path segment: whatever it holds cannot reach another path."""
    return urllib.parse.quote(identifier, safe="")
