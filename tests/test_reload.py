"""Configuration reload through POST /-/reload: all or nothing, tokens re-read, problems answered 400."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient

from itsmd.app import Daemon, Timers
from itsmd.config import load_config

Client = TestClient  # type: ignore[type-arg]
ADMIN = "admin-token-aaaaaaaaaaaaaaaa"
INGEST_OLD = "ingest-token-old-0000000000"
INGEST_NEW = "ingest-token-new-1111111111"


def write(folder: Path, ingest: str, **extra: object) -> None:
    (folder / "admin.token").write_text(ADMIN)
    (folder / "ingest.token").write_text(ingest)
    doc = {"listen": "127.0.0.1:19999", "database": "sqlite:///itsmd.db",
           "auth": {"tokens": [{"name": "root", "role": "admin", "token_file": "admin.token"},
                               {"name": "am", "role": "ingest", "token_file": "ingest.token"}]}, **extra}
    (folder / "itsmd.yaml").write_text(yaml.safe_dump(doc))


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    write(tmp_path, INGEST_OLD)

    def load() -> object:
        return load_config(tmp_path / "itsmd.yaml", {}, tmp_path)

    dm = Daemon(load(), timers=Timers(pipeline_poll=0.2), loader=load)  # type: ignore[arg-type]
    await dm.start_core()
    yield dm
    await dm.stop()


@pytest.fixture
async def client(daemon: Daemon, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(daemon.app)


async def post_alert(client: Client, token: str) -> int:
    resp = await client.post("/api/v2/alerts", json=[{"labels": {"alertname": "R"}}],
                             headers={"Authorization": f"Bearer {token}"})
    return resp.status


async def reload(client: Client) -> tuple[int, dict[str, object]]:
    resp = await client.post("/-/reload", json={}, headers={"Authorization": f"Bearer {ADMIN}"})
    return resp.status, await resp.json()


async def metric(client: Client, name: str) -> float:
    text = await (await client.get("/metrics")).text()
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


async def test_reload_adopts_a_rotated_token(client: Client, tmp_path: Path) -> None:
    assert await post_alert(client, INGEST_OLD) == 200
    write(tmp_path, INGEST_NEW)
    assert await reload(client) == (200, {"status": "reloaded"})
    assert await post_alert(client, INGEST_OLD) == 401
    assert await post_alert(client, INGEST_NEW) == 200
    assert await metric(client, "itsmd_config_last_reload_successful") == 1


async def test_invalid_config_keeps_the_running_one(client: Client, tmp_path: Path) -> None:
    (tmp_path / "itsmd.yaml").write_text("limits: {max_body_bytes: big}\nbogus: 1\n")
    status, body = await reload(client)
    assert status == 400 and body["error"].startswith("reload failed")
    problems = body["problems"]
    assert isinstance(problems, list) and len(problems) == 2
    assert all(str(tmp_path / "itsmd.yaml") in p for p in problems)
    assert await post_alert(client, INGEST_OLD) == 200  # still the old configuration
    assert await metric(client, "itsmd_config_last_reload_successful") == 0


async def test_restart_only_settings_fail_the_reload(client: Client, tmp_path: Path) -> None:
    write(tmp_path, INGEST_NEW, listen="127.0.0.1:19998")
    status, body = await reload(client)
    assert status == 400 and any("listen" in p and "restart" in p for p in body["problems"])  # type: ignore[union-attr]
    assert await post_alert(client, INGEST_OLD) == 200 and await post_alert(client, INGEST_NEW) == 401


async def test_reload_needs_admin_and_json(client: Client) -> None:
    resp = await client.post("/-/reload", json={}, headers={"Authorization": f"Bearer {INGEST_OLD}"})
    assert resp.status == 403
    resp = await client.post("/-/reload", data=b"", headers={"Authorization": f"Bearer {ADMIN}"})
    assert resp.status == 415


async def test_reload_swaps_rules_or_keeps_them_on_a_bad_set(client: Client, daemon: Daemon, tmp_path: Path) -> None:
    assert len(daemon.pipeline.routing.rules) == 0
    (tmp_path / "rules").mkdir()
    good = "rules:\n  - name: a\n    match: ['alertname=\"A\"']\n    group_by: []\n"
    (tmp_path / "rules" / "a.yaml").write_text(good)
    assert (await reload(client))[0] == 200
    assert [r.name for r in daemon.pipeline.routing.rules] == ["a"]
    (tmp_path / "rules" / "b.yaml").write_text(good)  # the same rule name twice
    status, body = await reload(client)
    assert status == 400 and any("b.yaml" in p for p in body["problems"])  # type: ignore[union-attr]
    assert [r.name for r in daemon.pipeline.routing.rules] == ["a"]
    assert await metric(client, "itsmd_config_last_reload_successful") == 0


async def test_reload_swaps_services_with_the_rules_all_or_nothing(
    client: Client, daemon: Daemon, tmp_path: Path
) -> None:
    assert len(daemon.pipeline.routing.services) == 0
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.yaml").write_text("rules: [{name: a, match: ['alertname=\"A\"'], group_by: []}]\n")
    (tmp_path / "services.yaml").write_text("services: [{name: db, match: ['job=\"db\"']}]\n")
    write(tmp_path, INGEST_OLD, services="services.yaml")
    assert (await reload(client))[0] == 200
    routing = daemon.pipeline.routing
    assert [r.name for r in routing.rules] == ["a"] and [s.name for s in routing.services] == ["db"]
    # A new good rule beside a bad catalogue: neither is adopted.
    (tmp_path / "rules" / "b.yaml").write_text("rules:\n  - name: b\n    match: []\n    group_by: []\n")
    (tmp_path / "services.yaml").write_text("services: [{name: app, match: ['job=\"app\"'], depends_on: [gone]}]\n")
    status, body = await reload(client)
    assert status == 400
    assert body["problems"] == [f"{tmp_path / 'services.yaml'}: services[0].depends_on[0]: unknown service 'gone' "
                                "(known: app)"]
    assert daemon.pipeline.routing is routing
    assert await metric(client, "itsmd_config_last_reload_successful") == 0
