"""Every real Alertmanager capture replayed through the HTTP endpoint, scenario by scenario, with its outcome."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from itsmd.app import Daemon
from itsmd.core.access import Role
from tests import daemon as d
from tests.conftest import FIXTURES

WEBHOOK = "/api/v1/webhooks/alertmanager"
HEADERS = json.loads((FIXTURES / "headers.json").read_text())["files"]
Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Daemon]:
    dm = d.daemon(d.config(tmp_path))
    await dm.start_core()
    yield dm
    await dm.stop()


@pytest.fixture
async def client(running: Daemon, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(running.app)


async def post(client: Client, name: str, auth: dict[str, str] | None = None) -> None:
    raw = (FIXTURES / name).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == HEADERS[name]["body_sha256"], "fixture damaged"
    headers = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.25.0"}
    headers.update(auth if auth is not None else d.bearer(Role.INGEST))
    resp = await client.post(WEBHOOK, data=raw, headers=headers)
    assert resp.status == 200, (name, await resp.text())


async def episodes(client: Client, daemon: Daemon) -> list[dict[str, Any]]:
    await daemon.pipeline.drain()
    resp = await client.get("/api/v1/alerts", headers=d.bearer(Role.VIEWER), params={"limit": "1000"})
    return list(reversed((await resp.json())["items"]))  # oldest first


async def metric(client: Client, line_prefix: str) -> float:
    for line in (await (await client.get("/metrics")).text()).splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def by_status(eps: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in eps:
        out[e["status"]] = out.get(e["status"], 0) + 1
    return out


async def test_01_02_single_fire_then_resolve(client: Client, running: Daemon) -> None:
    await post(client, "01-single-firing.json")
    [e] = await episodes(client, running)
    assert e["status"] == "firing" and e["fingerprint"] == "76bd85d3a8b1296e"
    assert e["starts_at"] == "2026-11-25T21:25:04.347000Z"
    assert "&" in e["generator_url"]
    await post(client, "02-single-resolved.json")
    [e] = await episodes(client, running)
    assert e["status"] == "resolved" and e["ends_at"] == "2026-11-25T21:25:05.904000Z" and e["occurrences"] == 2


async def test_03_04_group_uses_per_alert_status(client: Client, running: Daemon) -> None:
    await post(client, "03-group-firing.json")
    assert by_status(await episodes(client, running)) == {"firing": 5}
    await post(client, "04-group-mixed.json")
    eps = await episodes(client, running)
    assert by_status(eps) == {"firing": 3, "resolved": 2}
    resolved = sorted(e["labels"]["instance"] for e in eps if e["status"] == "resolved")
    assert resolved == ["node-2.prod-eu-1:9100", "node-4.prod-eu-1:9100"]
    await post(client, "04b-group-all-resolved.json")  # lists only 3 of the 5
    assert by_status(await episodes(client, running)) == {"resolved": 5}


async def test_05_repeat_is_a_counted_no_op(client: Client, running: Daemon) -> None:
    await post(client, "05a-repeat-initial.json")
    await post(client, "05b-repeat-after-repeat-interval.json")
    eps = await episodes(client, running)
    assert len(eps) == 2 and all(e["occurrences"] == 2 and e["status"] == "firing" for e in eps)
    assert await metric(client, 'itsmd_alert_deliveries_total{outcome="refreshed"}') == 2


async def test_06_truncation_is_recorded_and_top_level_resolved_not_trusted(client: Client, running: Daemon) -> None:
    await post(client, "06-max-alerts-truncated.json")
    assert by_status(await episodes(client, running)) == {"firing": 2}
    assert await metric(client, "itsmd_alerts_truncated_total") == 3
    await post(client, "06b-max-alerts-misleading-resolved.json")
    assert by_status(await episodes(client, running)) == {"resolved": 2}  # only the two it listed


async def test_07_hostile_values_are_kept_byte_for_byte(client: Client, running: Daemon) -> None:
    await post(client, "07-hostile-values.json")
    sent = json.loads((FIXTURES / "07-hostile-values.json").read_bytes())["alerts"]
    eps = await episodes(client, running)
    assert len(eps) == 2
    got = {e["fingerprint"]: e for e in eps}
    for a in sent:
        e = got[a["fingerprint"]]
        assert e["labels"] == {k: v for k, v in a["labels"].items() if v}
        assert e["annotations"] == a["annotations"]
    assert any("\x00" in v for e in eps for v in e["labels"].values())


async def test_07b_invalid_encoding_arrives_replaced(client: Client, running: Daemon) -> None:
    await post(client, "07b-hostile-encoding.json")
    sent = json.loads((FIXTURES / "07b-hostile-encoding.json").read_bytes())["alerts"]
    eps = await episodes(client, running)
    assert {e["fingerprint"] for e in eps} == {a["fingerprint"] for a in sent}
    assert any("\ufffd" in v for e in eps for v in e["labels"].values())


async def test_08_09_fixture_credentials(client: Client, running: Daemon) -> None:
    await post(client, "08-auth-bearer.json", auth={"Authorization": "Bearer test-token-123"})
    basic = next(v for k, v in HEADERS["09-auth-basic.json"]["headers"] if k == "Authorization")
    await post(client, "09-auth-basic.json", auth={"Authorization": basic})
    [e] = await episodes(client, running)  # both scenarios posted the same alert
    assert e["occurrences"] == 2


async def test_10_refire_is_a_new_episode(client: Client, running: Daemon) -> None:
    for name in ("10a-refire-firing.json", "10b-refire-resolved.json", "10c-refire-firing-again.json"):
        await post(client, name)
    first, second = await episodes(client, running)
    assert first["fingerprint"] == second["fingerprint"] == "baaf177149dc19b8"
    assert first["status"] == "resolved" and first["ends_at"] == "2026-11-25T21:25:51.670000Z"
    assert second["status"] == "firing" and second["starts_at"] == "2026-11-25T21:25:55.694000Z"


async def test_11a_ha_stale_firing_does_not_reopen(client: Client, running: Daemon) -> None:
    for name in ("11a1-ha-firing-from-A.json", "11a2-ha-resolved-from-A.json",
                 "11a3-ha-stale-firing-from-B.json", "11a4-ha-resolved-again-from-B.json"):
        await post(client, name)
    [e] = await episodes(client, running)
    assert e["status"] == "resolved" and e["occurrences"] == 4
    assert await metric(client, 'itsmd_alert_deliveries_total{outcome="stale"}') == 1


async def test_11b_ha_duplicates_collapse(client: Client, running: Daemon) -> None:
    await post(client, "11b-ha-peer-timeout-0-from-A.json")
    await post(client, "11b-ha-peer-timeout-0-from-B.json")
    await post(client, "11c-ha-posted-to-B-only.json")
    eps = await episodes(client, running)
    assert len(eps) == 2
    assert {e["labels"]["alertname"]: e["occurrences"] for e in eps} == {
        "HAPairNoPeerTimeout": 2, "HAOnlyOnOneInstance": 1}


async def test_12_retries_and_resends_are_idempotent(client: Client, running: Daemon) -> None:
    for name in ("12a-retry-attempt1-500.json", "12b-retry-attempt2-500.json", "12c-retry-attempt3-200.json",
                 "12d-reject-attempt1-400.json", "12e-reject-attempt2-400.json", "12f-reject-attempt3-200.json"):
        await post(client, name)
    eps = await episodes(client, running)
    assert len(eps) == 2 and all(e["occurrences"] == 3 and e["status"] == "firing" for e in eps)


async def test_13_starts_at_drift_resolves_the_open_episode(client: Client, running: Daemon) -> None:
    await post(client, "13a-startsat-drift-firing.json")
    await post(client, "13b-startsat-drift-resolved.json")
    [e] = await episodes(client, running)
    assert e["status"] == "resolved" and e["starts_at"] == "2026-11-25T21:30:42.075000Z"


async def test_14_time_zone_offsets_are_normalised_to_utc(client: Client, running: Daemon) -> None:
    await post(client, "14a-tz-offset-firing.json")
    await post(client, "14b-tz-offset-resolved.json")
    [e] = await episodes(client, running)
    assert e["status"] == "resolved"
    assert e["starts_at"] == "2026-11-25T21:26:59.426103Z" and e["ends_at"].endswith("Z")


def test_every_fixture_is_covered() -> None:
    source = Path(__file__).read_text()
    missing = [p.name for p in FIXTURES.glob("[0-9]*.json") if p.name not in source]
    assert missing == []
