"""Manager reports as JSON (viewer): `GET /api/v1/reports/summary|mttr|recurring?from=&to=&by=`."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from itsmd import report
from itsmd.core.access import Permission
from itsmd.core.report import Dimension, Period, period
from itsmd.errors import BadRequest, NotFound
from itsmd.web.auth import requires
from itsmd.web.context import ctx, json_response
from itsmd.web.listing import time_param

MAX_NOISIEST = 100


def query(request: web.Request, now: datetime) -> tuple[Period, Dimension | None]:
    by_text = request.query.get("by") or None
    if by_text is not None and by_text not in set(Dimension):
        raise BadRequest(f"by must be one of {', '.join(Dimension)}")
    try:
        p = period(time_param(request, "from"), time_param(request, "to"), now)
    except ValueError as e:
        raise BadRequest(str(e)) from e
    return p, None if by_text is None else Dimension(by_text)


def _noisiest(request: web.Request) -> int:
    text = request.query.get("noisiest") or "0"
    if not text.isdigit() or int(text) > MAX_NOISIEST:
        raise BadRequest(f"noisiest must be a whole number from 0 to {MAX_NOISIEST}")
    return int(text)


@requires(Permission.READ)
async def get_report(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    if kind not in report.KINDS:
        raise NotFound(f"no such report; one of {', '.join(report.KINDS)}")
    c = ctx(request)
    now = c.clock.now()
    p, by = query(request, now)
    settings = c.report_settings()
    top = _noisiest(request)
    doc = await c.store.read(lambda conn: report.build(conn, kind, settings, p, by, now, top))
    return json_response(doc)
