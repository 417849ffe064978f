"""The one place errors become HTTP answers: `{"error": "..."}` with the status of the exception tree."""

from __future__ import annotations

import logging

from aiohttp import web

from itsmd.errors import RequestError, StorageError, StorageUnavailable, Unauthenticated
from itsmd.web.auth import Handler

log = logging.getLogger("itsmd.web")


def error_response(status: int, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Unauthenticated as e:
        resp = error_response(e.status, str(e))
        resp.headers["WWW-Authenticate"] = 'Basic realm="itsmd"'
        return resp
    except RequestError as e:
        return error_response(e.status, str(e))
    except StorageUnavailable as e:
        log.warning("answered 503: %s", e)
        return error_response(503, "storage unavailable; retry later")
    except StorageError:
        log.exception("storage error on %s %s", request.method, request.path)
        return error_response(500, "internal storage error")
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_response(e.status, e.reason)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal error")
