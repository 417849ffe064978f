"""What the web handlers need, handed over once at wiring time under one typed AppKey."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy import Connection

from itsmd.clock import Clock
from itsmd.config.routing import Routing
from itsmd.core.auth_audit import AuthAuditBudget
from itsmd.core.report import Settings as ReportSettings
from itsmd.errors import BadRequest
from itsmd.metrics import Metrics
from itsmd.pipeline.remediate import Switches
from itsmd.storage.store import SqlStore
from itsmd.web.auth import Authenticator


async def _not_here(run_id: int) -> bool:
    return False


@dataclass
class WebContext:
    store: SqlStore
    clock: Clock
    metrics: Metrics
    authenticator: Authenticator
    wake_pipeline: Callable[[], None]
    max_alerts_per_request: int
    resolve_timeout: float
    ready: Callable[[], bool] = field(default=lambda: True)
    close_after: Callable[[], float] = field(default=lambda: 86400.0)  # incidents.close_after, reloadable
    reload: Callable[[str], Awaitable[list[str]]] | None = None  # (actor) -> the problems; empty = reloaded
    # inside a write: correlate the alerts of silences that ended (the pipeline's, with the running rules)
    release_muted: Callable[[Connection], object] = field(default=lambda conn: None)
    reconcile: Callable[[], None] = field(default=lambda: None)  # a webhook was truncated: ask Alertmanager
    auth_audit: AuthAuditBudget = field(default_factory=AuthAuditBudget)  # auth failures the audit log records
    # Playbook runs (issue 6): the running rules/playbooks and `automation:` switches, the runner's wake-up and
    # the cancel of a run it executes.
    routing: Callable[[], Routing] = field(default=Routing)
    switches: Callable[[], Switches] = field(default=Switches)
    wake_runner: Callable[[], None] = field(default=lambda: None)
    cancel_run: Callable[[int], Awaitable[bool]] = field(default=_not_here)
    body_timeout: float = 30.0  # seconds to receive a request body (limits.body_timeout)
    report_settings: Callable[[], ReportSettings] = field(default=ReportSettings)  # reports:, reloadable
    role: Callable[[], str] = field(default=lambda: "leader")  # scale-out: "leader" | "follower" (of this replica)


CONTEXT = web.AppKey("itsmd", WebContext)


def ctx(request: web.Request) -> WebContext:
    return request.app[CONTEXT]


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON with control characters escaped (orjson), never raw alert bytes."""
    return web.json_response(data, status=status, dumps=_dumps)


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's body, which must be a JSON object; BadRequest otherwise."""
    try:
        body = await request.json(loads=orjson.loads)
    except ValueError as e:
        raise BadRequest("body must be a JSON object") from e
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body
