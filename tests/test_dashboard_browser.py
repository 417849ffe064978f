"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright for Python) against a real
`itsmd serve` with basic auth: every page loads without console errors, the list refreshes itself from the JSON
API, a click leads from the list to an incident and acknowledges it (the API sees it), a `<script>` label value is
text (no dialog fires), and an unauthenticated browser is challenged. Screenshots go to a folder the test prints
($ITSMD_ARTIFACTS/dashboard in CI, else pytest's tmp)."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.process import VIEWER_ENV, WEBHOOK, Daemons, ServeProcess, firing_alert, webhook_body

pytestmark = pytest.mark.slow
playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

# $ITSMD_TEST_BROWSER names the browser and makes its absence a failure (CI sets it); else skip without one.
BROWSER = os.environ.get("ITSMD_TEST_BROWSER", "/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WAIT_MS = 20_000  # generous: the machine may be busy
OPERATOR = "operator-token-for-dashboard-0123"
RULES = "rules:\n  - {name: per-instance, match: ['alertname=~\".+\"'], group_by: [instance]}\n"
EVIL = '<script>alert("pwned")</script>'


@pytest.fixture
def artifacts(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("ITSMD_ARTIFACTS")
    folder = Path(root) / "dashboard" if root else tmp_path_factory.mktemp("dashboard-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"dashboard screenshots: {folder}")
    return folder


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(BROWSER).exists():
        if "ITSMD_TEST_BROWSER" in os.environ:
            pytest.fail(f"ITSMD_TEST_BROWSER={BROWSER} does not exist")
        pytest.skip(f"no browser at {BROWSER} (apt-get install chromium)")
    with playwright_sync.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=BROWSER, args=BROWSER_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[ServeProcess]:
    with Daemons(tmp_path) as made:
        p = made.new("web", config={"auth": {"tokens": [
            {"name": "am", "role": "ingest", "token_file": "ingest.token"},
            {"name": "ops", "role": "viewer", "token_env": VIEWER_ENV},
            {"name": "oncall", "role": "operator", "token_file": "operator.token"},
        ]}})
        (p.dir / "operator.token").write_text(OPERATOR)
        (p.dir / "rules").mkdir()
        (p.dir / "rules" / "any.yaml").write_text(RULES)
        p.start()
        yield p


def api(p: ServeProcess, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(p.url + path, data=data, method=method,
                                 headers={**(headers or p.viewer_headers()), "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def incidents_by_instance(p: ServeProcess, want: set[str], timeout: float = 20.0) -> dict[str, dict[str, Any]]:
    """Wait until the pipeline opened an incident for each instance in `want` (it runs on its own)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {i["labels"].get("instance"): i for i in api(p, "GET", "/api/v1/incidents?limit=1000")["items"]}
        if want <= found.keys():
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"incidents for {sorted(want)} not opened within {timeout} s; have {sorted(map(str, found))}")
        time.sleep(0.1)


class Watch:
    """What a page reported that it should not have: console errors, uncaught exceptions, dialogs."""

    def __init__(self, page: Any) -> None:
        self.problems: list[str] = []
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))

        def dialog(d: Any) -> None:
            self.problems.append(f"dialog {d.type}: {d.message}")
            d.dismiss()

        page.on("dialog", dialog)


def test_dashboard_in_a_real_browser(daemon: ServeProcess, browser: Any, artifacts: Path) -> None:
    p = daemon
    api(p, "POST", WEBHOOK, webhook_body([firing_alert({"alertname": "DiskFull", "instance": "db-1",
                                                         "severity": "critical"}),
                                           firing_alert({"alertname": "Probe", "instance": "web-1", "team": EVIL})]),
        headers=p.ingest_headers())
    found = incidents_by_instance(p, {"db-1", "web-1"})
    db, evil = found["db-1"]["id"], found["web-1"]["id"]

    # Unauthenticated: the browser gets the basic-auth challenge.
    # (headless Chromium with no credentials to offer gives up on the challenge: the navigation fails)
    anonymous = browser.new_context()
    challenged: list[Any] = []
    lone = anonymous.new_page()
    lone.on("response", lambda r: challenged.append(r))
    with pytest.raises(playwright_sync.Error, match="ERR_INVALID_AUTH_CREDENTIALS"):
        lone.goto(p.url + "/")
    [response] = challenged
    assert response.status == 401 and response.headers["www-authenticate"] == 'Basic realm="itsmd"'
    anonymous.close()

    ctx = browser.new_context(http_credentials={"username": "oncall", "password": OPERATOR},
                              viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    page = ctx.new_page()
    watch = Watch(page)

    # Every page loads cleanly.
    for path, name in (("/problems", "problems"), ("/silences", "silences"), ("/", "incidents")):
        assert page.goto(p.url + path).status == 200
        page.wait_for_load_state("load")
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
    assert page.locator("#incidents tbody tr").count() == 2

    # The list refreshes itself through the JSON API (the script runs under the page's CSP).
    page.locator("#refresh-status[data-updated]").wait_for(state="attached")
    assert page.locator("#incidents tbody tr").count() == 2
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")

    # A `<script>` label is shown as text, and nothing ran.
    page.get_by_role("link", name=evil, exact=True).click()
    page.wait_for_url(f"**/incidents/{evil}")
    page.get_by_text(EVIL).first.wait_for()
    page.screenshot(path=str(artifacts / "incident-script-label.png"), full_page=True)

    # From the list to an incident, acknowledge it: the API sees the change.
    page.get_by_role("link", name="Incidents", exact=True).first.click()
    page.wait_for_url(f"{p.url}/")
    page.get_by_role("link", name=db, exact=True).click()
    page.wait_for_url(f"**/incidents/{db}")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#incident-state")).to_have_text("acknowledged")
    assert page.get_by_role("button", name="Acknowledge").count() == 0
    page.screenshot(path=str(artifacts / "incident-acknowledged.png"), full_page=True)
    detail = api(p, "GET", f"/api/v1/incidents/{db}")
    assert detail["state"] == "acknowledged" and detail["acknowledged_at"] is not None
    assert detail["timeline"][-1]["action"] == "ack" and detail["timeline"][-1]["actor"] == "oncall"

    # Readable on a phone.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(p.url + "/")
    page.screenshot(path=str(artifacts / "incidents-phone.png"), full_page=True)
    assert page.locator("html").evaluate("e => e.scrollWidth") <= 390 + 1  # no sideways scrolling

    assert watch.problems == []
    shots = {f.name for f in artifacts.iterdir()}
    assert {"incidents.png", "incident-acknowledged.png", "incidents-phone.png"} <= shots
    ctx.close()


GATED_RULES = ("rules:\n  - {name: gated, match: ['alertname=\"Gated\"'], group_by: [instance], playbooks: [gated],"
               " escalate: {after: 1h}}\n")
GATED_PLAYBOOK = """
name: gated
approval: {required: true, timeout: 1h}
steps:
  - {name: act, exec: [%s, -c, "pass"], timeout: 20s}
"""


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[ServeProcess]:
    """A daemon whose one rule runs a playbook that needs approval."""
    import sys

    with Daemons(tmp_path) as made:
        p = made.new("gated", config={"playbooks": ["playbooks/*.yaml"], "auth": {"tokens": [
            {"name": "am", "role": "ingest", "token_file": "ingest.token"},
            {"name": "ops", "role": "viewer", "token_env": VIEWER_ENV},
            {"name": "oncall", "role": "operator", "token_file": "operator.token"},
        ]}})
        (p.dir / "operator.token").write_text(OPERATOR)
        (p.dir / "rules").mkdir()
        (p.dir / "rules" / "gated.yaml").write_text(GATED_RULES)
        (p.dir / "playbooks").mkdir()
        (p.dir / "playbooks" / "gated.yaml").write_text(GATED_PLAYBOOK % json.dumps(sys.executable))
        p.start()
        yield p


def test_approve_a_run_from_the_approvals_page(gated: ServeProcess, browser: Any, artifacts: Path) -> None:
    p = gated
    api(p, "POST", WEBHOOK, webhook_body([firing_alert({"alertname": "Gated", "instance": "db-9"})]),
        headers=p.ingest_headers())
    deadline = time.monotonic() + 20.0
    while not (waiting := api(p, "GET", "/api/v1/runs?state=awaiting_approval")["items"]):
        if time.monotonic() > deadline:
            pytest.fail("no run awaiting approval within 20 s")
        time.sleep(0.1)
    run = waiting[0]["id"]

    ctx = browser.new_context(http_credentials={"username": "oncall", "password": OPERATOR},
                              viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    page = ctx.new_page()
    watch = Watch(page)
    assert page.goto(p.url + "/").status == 200
    page.get_by_role("link", name="Approvals", exact=True).click()  # the navigation leads there
    page.wait_for_url(f"{p.url}/approvals")
    expect(page.locator("#approvals tbody tr")).to_have_count(1)
    page.screenshot(path=str(artifacts / "approvals.png"), full_page=True)

    # Keyboard only: Tab into the comment, type it, Tab to Approve, press Enter.
    page.get_by_label("Comment").focus()
    page.keyboard.type("looks safe")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_attribute("data-decision", "approve")
    page.keyboard.press("Enter")
    expect(page.locator("#approval-status")).to_contain_text(f"{run} approved by oncall")
    page.screenshot(path=str(artifacts / "approvals-approved.png"), full_page=True)

    deadline = time.monotonic() + 20.0
    while (found := api(p, "GET", f"/api/v1/runs/{run}"))["state"] != "succeeded":
        if time.monotonic() > deadline:
            pytest.fail(f"the approved run did not succeed within 20 s: {found}")
        time.sleep(0.1)
    assert found["approved_by"] == "oncall"
    detail = api(p, "GET", f"/api/v1/incidents/{found['incident_id']}")
    [approved] = [e for e in detail["timeline"] if e["action"] == "run_approved"]
    assert approved["actor"] == "oncall" and "looks safe" in approved["reason"]
    page.reload()
    expect(page.get_by_text("No runs are waiting for approval.")).to_be_visible()
    assert watch.problems == []
    ctx.close()
