"""The role x endpoint matrix (issue 8), through HTTP on a real `itsmd serve`: every operation the daemon serves, with
no token, a wrong token (bearer and basic) and each role's token (bearer and basic), is refused with 401, refused
with 403, or let through, as DESIGN §1.2/§1.3 say. The expected role of each operation is written out below from
DESIGN (not read from the code under test); the operations come from the app the daemon runs (`build_app`) and
its OpenAPI document, so a new endpoint fails here until it is given its role."""

from __future__ import annotations

import base64
import json
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from itsmd.core.access import Permission
from itsmd.web.openapi import document
from itsmd.web.server import build_app
from tests.process import VIEWER_ENV, ServeProcess
from tests.test_openapi import NOT_SERVED_YET

METHODS = ("get", "post", "put", "patch", "delete")
STATE_CHANGING = ("post", "put", "patch", "delete")

# DESIGN §1.3, operation by operation: the least role that may call it ("none": no authentication). Operations
# DESIGN does not list follow its rules: reads are viewer, the circuit-breaker reset is the kill switch's (admin).
DESIGN_ROLES: dict[tuple[str, str], str] = {
    ("post", "/api/v1/webhooks/alertmanager"): "ingest",
    ("post", "/api/v2/alerts"): "ingest",
    ("get", "/api/v1/alerts"): "viewer",
    ("get", "/api/v1/alerts/{id}"): "viewer",
    ("get", "/api/v1/quarantine"): "viewer",
    ("get", "/api/v1/incidents"): "viewer",
    ("get", "/api/v1/incidents/{id}"): "viewer",
    **{("post", f"/api/v1/incidents/{{id}}/{action}"): "operator"
       for action in ("ack", "resolve", "close", "reopen", "assign", "merge", "notes")},
    ("get", "/api/v1/problems"): "viewer",
    ("get", "/api/v1/problems/{id}"): "viewer",
    ("patch", "/api/v1/problems/{id}"): "operator",
    ("put", "/api/v1/problems/{id}/known-error"): "operator",
    ("get", "/api/v1/runs"): "viewer",
    ("get", "/api/v1/runs/{id}"): "viewer",
    ("post", "/api/v1/runs"): "operator",
    ("post", "/api/v1/runs/{id}/approve"): "operator",
    ("post", "/api/v1/runs/{id}/reject"): "operator",
    ("post", "/api/v1/runs/{id}/cancel"): "operator",
    ("get", "/api/v1/silences"): "viewer",
    ("get", "/api/v1/silences/{id}"): "viewer",
    ("post", "/api/v1/silences"): "operator",
    ("delete", "/api/v1/silences/{id}"): "operator",
    ("get", "/api/v1/reports/summary"): "viewer",
    ("get", "/api/v1/reports/mttr"): "viewer",
    ("get", "/api/v1/reports/recurring"): "viewer",
    ("get", "/api/v1/automation"): "viewer",
    ("put", "/api/v1/automation"): "admin",
    ("post", "/api/v1/automation/breakers/{playbook}/reset"): "admin",
    ("get", "/api/v1/audit"): "admin",
    ("get", "/metrics"): "none",
    ("get", "/-/healthy"): "none",
    ("get", "/-/ready"): "none",
    ("post", "/-/reload"): "admin",
    ("get", "/api/v1/openapi.json"): "none",
    ("get", "/static/{name}"): "none",  # the dashboard's own assets (no data)
}
# `GET /` (the web dashboard) is viewer: so is every page of it, i.e. every GET outside these prefixes.
NOT_DASHBOARD = ("/api/", "/-/", "/metrics", "/static/")

# Who may call an operation needing each role (DESIGN §1.2: viewer < operator < admin; ingest apart, admin too).
ALLOWED = {"none": {"ingest", "viewer", "operator", "admin"}, "ingest": {"ingest", "admin"},
           "viewer": {"viewer", "operator", "admin"}, "operator": {"operator", "admin"}, "admin": {"admin"}}
PERMISSION = {"none": None, "ingest": Permission.INGEST, "viewer": Permission.READ, "operator": Permission.OPERATE,
              "admin": Permission.ADMINISTER}


def design_role(method: str, path: str) -> str | None:
    if (method, path) in DESIGN_ROLES:
        return DESIGN_ROLES[(method, path)]
    if method == "get" and not path.startswith(NOT_DASHBOARD):
        return "viewer"
    return None


def app_routes() -> list[tuple[str, re.Pattern[str], Any]]:
    """(method, pattern of its path, handler) of every route of the daemon's app, HEAD aside (it is GET's)."""
    app = build_app(cast(Any, None), 1024)
    out = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(route.resource.canonical))
        out.append((route.method.lower(), re.compile(f"^{pattern}$"), route.handler))
    return out


def operations() -> dict[tuple[str, str], dict[str, Any]]:
    """Every operation of the OpenAPI document."""
    return {(m, path): item[m] for path, item in document()["paths"].items() for m in METHODS if m in item}


def served(method: str, path: str) -> bool:
    # Described by DESIGN but served only once the approvals branch lands (tests/test_openapi.py checks that an
    # entry leaves NOT_SERVED_YET as soon as it is served, so this skip cannot outlive it).
    return (method, path) not in NOT_SERVED_YET


def test_every_route_of_the_app_has_its_design_role_in_handler_and_document() -> None:
    ops = operations()
    for method, pattern, handler in app_routes():
        matching = [(m, p) for m, p in ops if m == method and pattern.match(p)]
        assert matching, f"{method.upper()} {pattern.pattern} is served but not in the OpenAPI document"
        for op in matching:
            role = design_role(*op)
            assert role is not None, f"{op}: a new endpoint; give it its DESIGN role in DESIGN_ROLES"
            assert getattr(handler, "permission", None) == PERMISSION[role], (op, role)
    for op, spec in ops.items():
        assert spec["x-itsmd-role"] == design_role(*op), op  # the document says what DESIGN says


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, dict[str, tuple[str, str]]]]:
    folder = Path(tmp_path_factory.mktemp("role-matrix"))
    admin, operator = f"admin-{secrets.token_hex(16)}", f"operator-{secrets.token_hex(16)}"
    (folder / "admin.token").write_text(admin + "\n")
    (folder / "operator.token").write_text(operator + "\n")
    p = ServeProcess(folder, config={"auth": {"tokens": [
        {"name": "am", "role": "ingest", "token_file": "ingest.token"},
        {"name": "ops", "role": "viewer", "token_env": VIEWER_ENV},
        {"name": "root", "role": "admin", "token_file": "admin.token"},
        {"name": "oncall", "role": "operator", "token_file": "operator.token"},
    ]}})
    p.start()
    try:
        yield p, {"ingest": ("am", p.ingest_token), "viewer": ("ops", p.viewer_token),
                  "operator": ("oncall", operator), "admin": ("root", admin)}
    finally:
        p.close()


def call(p: ServeProcess, method: str, path: str, authorization: str | None) -> tuple[int, bytes]:
    url = p.url + re.sub(r"\{[^/]+\}", "X-1", path)
    headers = {"Content-Type": "application/json", **({"Authorization": authorization} if authorization else {})}
    data = b"{}" if method in STATE_CHANGING else None
    request = urllib.request.Request(url, data=data, method=method.upper(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def basic(name: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()


def test_role_matrix_over_http(daemon: tuple[ServeProcess, dict[str, tuple[str, str]]]) -> None:
    p, tokens = daemon
    callers: dict[str, tuple[str | None, str | None]] = {  # who: (authorization header, role it has)
        "no token": (None, None),
        "wrong bearer": (f"Bearer wrong-{secrets.token_hex(16)}", None),
        "wrong basic password": (basic("root", f"wrong-{secrets.token_hex(16)}"), None),
        "basic with another token's name": (basic("am", tokens["admin"][1]), None),
    }
    for role, (name, token) in tokens.items():
        callers[f"{role} bearer"] = (f"Bearer {token}", role)
        callers[f"{role} basic"] = (basic(name, token), role)
    checked: set[tuple[str, str]] = set()
    for (method, path) in operations():
        if not served(method, path):
            continue
        need = design_role(method, path)
        assert need is not None, (method, path)
        for who, (authorization, role) in callers.items():
            status, body = call(p, method, path, authorization)
            if need != "none" and role is None:
                expected = "401"
            elif need != "none" and role not in ALLOWED[need]:
                expected = "403"
            else:
                expected = "through"
            got = str(status) if status in (401, 403) else "through"
            assert got == expected, (method, path, who, status, body[:200])
            assert status < 500, (method, path, who, status, body[:200])
            if expected != "through":
                assert set(json.loads(body)) == {"error"}, body[:200]
        checked.add((method, path))
    assert {op for op in operations() if served(*op)} == checked
    assert len(checked) >= 40
    assert p.running
