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
from datetime import UTC, datetime, timedelta
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


def _rfc3339(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_reports_page_draws_its_charts_from_real_data(daemon: ServeProcess, browser: Any, artifacts: Path) -> None:
    """Incidents detected in three different ISO weeks (the alerts' startsAt: 15 and 8 days ago, and now): one
    clears by itself (self-healed), one is acknowledged and resolved by a person, one still fires. The reports
    page draws a week group per week the API reports, with the API's numbers, and a `<script>` alert name as
    text."""
    p = daemon
    now = datetime.now(UTC)
    old, last, fresh = now - timedelta(days=15), now - timedelta(days=8), now - timedelta(minutes=5)
    cleared = {**firing_alert({"alertname": EVIL, "instance": "old-1"}, _rfc3339(old)), "status": "resolved",
               "endsAt": _rfc3339(old + timedelta(minutes=10))}
    api(p, "POST", WEBHOOK, webhook_body([firing_alert({"alertname": EVIL, "instance": "old-1"}, _rfc3339(old)),
                                          firing_alert({"alertname": "DiskFull", "instance": "db-9",
                                                        "severity": "critical"}, _rfc3339(last)),
                                          firing_alert({"alertname": "Probe", "instance": "web-9"},
                                                       _rfc3339(fresh))]), headers=p.ingest_headers())
    found = incidents_by_instance(p, {"old-1", "db-9", "web-9"})
    api(p, "POST", WEBHOOK, webhook_body([cleared]), headers=p.ingest_headers())
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    for action in ("ack", "resolve"):
        api(p, "POST", f"/api/v1/incidents/{found['db-9']['id']}/{action}", {}, headers=operator)
    deadline = time.monotonic() + 20
    while api(p, "GET", f"/api/v1/incidents/{found['old-1']['id']}")["state"] != "resolved":
        assert time.monotonic() < deadline, "the cleared alert did not resolve its incident"
        time.sleep(0.1)

    ctx = browser.new_context(http_credentials={"username": "oncall", "password": OPERATOR},
                              viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(WAIT_MS)
    page = ctx.new_page()
    watch = Watch(page)
    assert page.goto(p.url + "/").status == 200
    page.get_by_role("link", name="Reports", exact=True).click()  # from the navigation
    page.wait_for_url("**/reports")
    page.get_by_role("link", name="Last 30 days").click()
    page.wait_for_url("**/reports?range=30d")
    page.screenshot(path=str(artifacts / "reports.png"), full_page=True)

    times = page.locator("#period time").all_text_contents()
    summary = api(p, "GET", f"/api/v1/reports/summary?from={times[0]}&to={times[1]}&by=week&noisiest=10")
    weeks = sorted(summary["by"])
    assert summary["incidents"] == 3 and len(weeks) >= 3  # 30 days touch 5 or 6 ISO weeks

    # Stacked resolutions: one group per week, labelled by week, the non-zero segments where the API has them.
    groups = page.locator("#chart-resolutions g.group")
    assert groups.count() == len(weeks)
    assert [groups.nth(k).get_attribute("data-category") for k in range(len(weeks))] == weeks
    assert page.locator("#chart-resolutions g.categories text").all_text_contents() == [w[-3:] for w in weeks]
    drawn = {(g.get_attribute("data-category"), b.get_attribute("data-series"))
             for g in groups.all() for b in g.locator("rect.bar").all()
             if float(b.get_attribute("data-value") or 0) > 0 and float(b.get_attribute("height") or 0) > 0}
    want = {(w, k) for w in weeks for k, n in summary["by"][w]["resolutions"].items() if n > 0}
    assert drawn == want and {k for _, k in want} == {"self_healed", "manual"}
    # MTTA: a point for the week where a person acknowledged; each point sits on the chart (really rendered).
    mtta = page.locator('#chart-mtta g.series[data-series="mean"] g.point')
    assert [mtta.nth(k).get_attribute("data-category") for k in range(mtta.count())] == [
        w for w in weeks if summary["by"][w]["mtta"]["n"]]
    box = mtta.first.bounding_box()
    assert box is not None and box["width"] > 0
    # Noisiest: the `<script>` alert name is SVG text, nothing ran.
    names = page.locator("#chart-noisiest g.rank")
    assert [names.nth(k).get_attribute("data-label") for k in range(names.count())] == [
        n["alertname"] for n in summary["noisiest"]]
    assert page.locator("#chart-noisiest text", has_text=EVIL).count() == 1
    # SLA: the default targets (P1, P2) as categories; the P2 incident was restored late.
    assert page.locator("#chart-sla g.group").count() == len(summary["sla_breaches"])
    # Keyboard: a data table opens from its summary.
    summary_el = page.locator("summary", has_text="Resolutions per week as a table")
    summary_el.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#table-resolutions")).to_be_visible()

    assert watch.problems == []

    # A bad range is a 400 page with the form, not an error (the browser logs the 400 status, nothing else).
    assert page.goto(p.url + "/reports?range=forever").status == 400
    expect(page.locator("#range-error")).to_contain_text("range must be one of")
    assert [m for m in watch.problems if "status of 400" not in m] == []
    watch.problems.clear()

    # Readable on a phone: the charts scale down, nothing scrolls sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(p.url + "/reports?range=30d")
    page.screenshot(path=str(artifacts / "reports-phone.png"), full_page=True)
    assert page.locator("html").evaluate("e => e.scrollWidth") <= 390 + 1
    width = page.locator("#chart-resolutions").bounding_box()
    assert width is not None and width["width"] <= 390
    assert watch.problems == []
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
