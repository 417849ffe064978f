"""The OpenAPI document against the route table: every route is described and every description is served."""

from __future__ import annotations

import re
from typing import Any, cast

from openapi_spec_validator import validate

from itsmd.web.openapi import document
from itsmd.web.server import build_app

METHODS = ("get", "post", "put", "patch", "delete")
# Described by DESIGN §1.3 but served only once the playbook-runs branch lands: drop entries as they arrive.
NOT_SERVED_YET: set[tuple[str, str]] = set()


def _routes() -> list[tuple[str, re.Pattern[str]]]:
    app = build_app(cast(Any, None), 1024)
    out = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(route.resource.canonical))
        out.append((route.method.lower(), re.compile(f"^{pattern}$")))
    return out


def _operations() -> set[tuple[str, str]]:
    return {(m, path) for path, item in document()["paths"].items() for m in METHODS if m in item}


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "basic"}


def test_every_route_is_described() -> None:
    operations = _operations()
    for method, pattern in _routes():
        assert any(m == method and pattern.match(path) for m, path in operations), (method, pattern.pattern)


def test_every_described_operation_is_served() -> None:
    routes = _routes()
    for method, path in sorted(_operations() - NOT_SERVED_YET):
        assert any(m == method and p.match(path) for m, p in routes), (method, path)
    for method, path in NOT_SERVED_YET:  # once served, the entry must leave NOT_SERVED_YET
        assert not any(m == method and p.match(path) for m, p in routes), f"{method} {path} is served now"


def test_errors_are_the_error_shape_and_authenticated_operations_say_so() -> None:
    for path, item in document()["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            for status, response in op["responses"].items():
                if int(status) >= 400 and "application/json" in response.get("content", {}):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"} or "error" in schema["required"]
            role = op["x-itsmd-role"]
            assert (role == "none") == (op["security"] == []), (method, path)
            if role != "none":
                assert {"401", "403"} <= set(op["responses"]), (method, path)
