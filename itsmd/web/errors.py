"""The one place errors become HTTP answers: `{"error": "..."}` with the status of the exception tree."""

from __future__ import annotations

import logging

from aiohttp import web

from itsmd.errors import RequestError, StorageError, StorageUnavailable, Unauthenticated

log = logging.getLogger("itsmd.web")


def error_response(status: int, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def error_answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The answer to a request whose handling raised `exc` (the one place errors become HTTP)."""
    if isinstance(exc, Unauthenticated):
        resp = error_response(exc.status, str(exc))
        resp.headers["WWW-Authenticate"] = 'Basic realm="itsmd"'
        return resp
    if isinstance(exc, RequestError):
        return error_response(exc.status, str(exc))
    if isinstance(exc, StorageUnavailable):
        log.warning("answered 503: %s", exc)
        return error_response(503, "storage unavailable; retry later")
    if isinstance(exc, StorageError):
        log.error("storage error on %s %s", request.method, request.path, exc_info=exc)
        return error_response(500, "internal storage error")
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        return error_response(exc.status, exc.reason)
    if isinstance(exc, web.HTTPException):
        raise exc  # redirects and the like are answers, not errors
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "internal error")
