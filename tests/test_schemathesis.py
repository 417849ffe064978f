"""schemathesis against a running `itsmd serve`: generated requests for every operation of the OpenAPI document
never get a 5xx, and every answer conforms to the document (status, content type, schema). Seeded and capped."""

from __future__ import annotations

import json
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from itsmd.web.openapi import document
from tests.process import VIEWER_ENV, ServeProcess, firing_alert, webhook_body

MAX_EXAMPLES = int(os.environ.get("ITSMD_SCHEMATHESIS_EXAMPLES", "20"))
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance, checks.negative_data_rejection]

schema = schemathesis.openapi.from_dict(document())


class Daemon:
    def __init__(self, process: ServeProcess, admin_token: str) -> None:
        self.process = process
        self.headers = {"Authorization": f"Bearer {admin_token}"}
        self.served: dict[str, bool] = {}

    def serves(self, path: str) -> bool:
        """False when no route matches `path` (an operation described ahead of the branch that serves it): the
        router's own 404, not a handler's "no such ..." one."""
        if path not in self.served:
            request = urllib.request.Request(self.process.url + path.replace("{id}", "X-1"), headers=self.headers)
            try:
                with urllib.request.urlopen(request, timeout=5):
                    self.served[path] = True
            except urllib.error.HTTPError as e:
                self.served[path] = not (e.code == 404 and json.loads(e.read()) == {"error": "Not Found"})
        return self.served[path]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    folder = tmp_path_factory.mktemp("schemathesis")
    admin, operator = f"admin-{secrets.token_hex(16)}", f"operator-{secrets.token_hex(16)}"
    (Path(folder) / "admin.token").write_text(admin + "\n")
    (Path(folder) / "operator.token").write_text(operator + "\n")
    p = ServeProcess(folder, config={"auth": {"tokens": [
        {"name": "am", "role": "ingest", "token_file": "ingest.token"},
        {"name": "ops", "role": "viewer", "token_env": VIEWER_ENV},
        {"name": "root", "role": "admin", "token_file": "admin.token"},
        {"name": "oncall", "role": "operator", "token_file": "operator.token"},
    ]}})
    p.start()
    try:
        _seed(p)
        yield Daemon(p, admin)
    finally:
        p.close()


def _seed(p: ServeProcess) -> None:
    """Some alerts, so lists and detail pages have content to conform."""
    body = json.dumps(webhook_body([firing_alert({"alertname": "Disk", "instance": f"h{i}"}) for i in range(3)]))
    request = urllib.request.Request(p.url + "/api/v1/webhooks/alertmanager", data=body.encode(), method="POST",
                                     headers={**p.ingest_headers(), "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_openapi(case: Any, daemon: Daemon) -> None:
    if not daemon.serves(case.operation.path):
        pytest.skip(f"{case.operation.path} is not served by this build")
    case.call_and_validate(base_url=daemon.process.url, headers=daemon.headers, checks=CHECKS)

# The role x endpoint matrix (no token, wrong token, each role) is tests/test_role_matrix.py.
