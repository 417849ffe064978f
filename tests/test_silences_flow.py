"""Silences through the running daemon (real pipeline, real store on SQLite and PostgreSQL): muted alerts are
stored but open nothing, resolutions are always recorded, and alerts still firing when a silence ends (expired,
over, between windows, no longer declared) are correlated as if new."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from itsmd.app import Daemon
from itsmd.clock import FakeClock
from itsmd.config.silences import compile_silence
from itsmd.core.silence import Silence
from tests.daemon import send
from tests.silencing import (
    Client,
    alert,
    alerts_named,
    create,
    expire,
    get,
    incidents,
    running,
    with_silences,
)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def daemon(engine: str, tmp_path: Path) -> AsyncIterator[tuple[Daemon, FakeClock]]:
    async with running(tmp_path, engine) as started:
        yield started


@pytest.fixture
async def client(daemon: tuple[Daemon, FakeClock], aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(daemon[0].app)


async def metric(client: Client, name: str) -> float:
    text = await (await client.get("/metrics")).text()
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


async def test_a_muted_alert_is_stored_with_muted_by_and_opens_no_incident(
    client: Client, daemon: tuple[Daemon, FakeClock]
) -> None:
    dm, _ = daemon
    s = await create(client, matchers=['alertname="HighCpu"', 'instance="a"'], ends_at="2026-11-25T23:00:00Z")
    await send(client, dm, alert("HighCpu", instance="a"), alert("HighCpu", instance="b"))
    [muted] = await alerts_named(client, instance="a")
    assert muted["status"] == "firing" and muted["muted_by"] == s["id"] and muted["incident_id"] is None
    [inc] = await incidents(client)  # b alone: a opened nothing and joined nothing
    assert inc["key"] == '{instance="b"}' and inc["alert_count"] == 1
    await send(client, dm, alert("HighCpu", instance="a"))  # a repeat stays muted
    [muted] = await alerts_named(client, instance="a")
    assert muted["muted_by"] == s["id"] and muted["occurrences"] == 2 and muted["incident_id"] is None
    assert [a["labels"]["instance"] for a in (await get(client, "/api/v1/alerts", muted="true"))["items"]] == ["a"]
    assert await metric(client, "itsmd_alerts_muted_total") == 1


async def test_resolutions_are_recorded_while_muted(client: Client, daemon: tuple[Daemon, FakeClock]) -> None:
    dm, clock = daemon
    await send(client, dm, alert("HighCpu", instance="b"))  # an incident before the silence
    [inc] = await incidents(client)
    s = await create(client, matchers=['alertname="HighCpu"'], ends_at="2026-11-26T06:00:00Z")
    await send(client, dm, alert("HighCpu", instance="a"))
    clock.advance(60)
    await send(client, dm, alert("HighCpu", "resolved", instance="a"), alert("HighCpu", "resolved", instance="b"))
    [muted] = await alerts_named(client, instance="a")
    assert muted["status"] == "resolved" and muted["ends_at"] == "2026-11-25T21:59:00.000000Z"
    assert muted["muted_by"] == s["id"] and muted["incident_id"] is None  # it was muted when it resolved
    detail = await get(client, f"/api/v1/incidents/{inc['id']}")  # the incident's alert resolving still counts
    assert detail["state"] == "resolved" and detail["resolution"] == "self_healed"
    assert [e["action"] for e in detail["timeline"]][-2:] == ["alert_resolved", "resolved"]
    assert (await expire(client, s["id"]))[0] == 200
    assert [i["id"] for i in await incidents(client)] == [inc["id"]]  # nothing still fired: nothing to correlate


async def test_expiring_a_silence_correlates_what_still_fires(client: Client, daemon: tuple[Daemon, FakeClock]) -> None:
    dm, clock = daemon
    s = await create(client, matchers=['alertname="HighCpu"'], ends_at="2026-11-26T06:00:00Z")
    await send(client, dm, alert("HighCpu", instance="a"), alert("HighCpu", instance="c"))
    await send(client, dm, alert("HighCpu", "resolved", instance="c"))
    assert await incidents(client) == []
    clock.advance(120)
    status, body = await expire(client, s["id"])
    assert status == 200 and body["state"] == "expired" and body["ends_at"] == "2026-11-25T22:02:00.000000Z"
    [inc] = await incidents(client)  # at once, in the same transaction as the expiry
    assert inc["key"] == '{instance="a"}' and inc["state"] == "open" and inc["opened_at"] == body["ends_at"]
    assert inc["detected_at"] == "2026-11-25T21:50:00.000000Z"  # when the alert began, muted or not
    [a] = await alerts_named(client, instance="a")
    assert a["muted_by"] is None and a["incident_id"] == inc["id"]
    [c] = await alerts_named(client, instance="c")
    assert c["status"] == "resolved" and c["incident_id"] is None and c["muted_by"] == s["id"]
    timeline = (await get(client, f"/api/v1/incidents/{inc['id']}"))["timeline"]
    assert [e["action"] for e in timeline] == ["opened", "alert_joined", "alert_unmuted"]
    assert timeline[-1]["data"]["silence"] == s["id"]
    await send(client, dm, alert("HighCpu", instance="a"))  # from now on a plain member of its incident
    assert (await get(client, f"/api/v1/incidents/{inc['id']}"))["alert_count"] == 1
    assert await metric(client, "itsmd_alerts_unmuted_total") == 1


async def test_a_silence_running_out_releases_alerts_on_the_tick(
    client: Client, daemon: tuple[Daemon, FakeClock]
) -> None:
    dm, clock = daemon
    await create(client, matchers=['alertname="HighCpu"'], ends_at="2026-11-25T22:10:00Z")
    await send(client, dm, alert("HighCpu", instance="a"))
    clock.advance(9 * 60)
    assert await dm.pipeline.release_due() == 0 and await incidents(client) == []
    clock.advance(60)  # 22:10: the silence is over
    assert await dm.pipeline.release_due() == 1
    [inc] = await incidents(client)
    assert inc["opened_at"] == "2026-11-25T22:10:00.000000Z"
    assert await dm.pipeline.release_due() == 0  # done once


async def test_a_released_alert_counts_toward_min_alerts_and_joins_open_incidents(
    client: Client, daemon: tuple[Daemon, FakeClock]
) -> None:
    dm, clock = daemon
    await send(client, dm, alert("DiskSpaceLow", cluster="eu", instance="n1"))  # waits for a second alert
    s = await create(client, matchers=['instance=~"n2|n3"'], ends_at="2026-11-26T06:00:00Z")
    await send(client, dm, alert("DiskSpaceLow", cluster="eu", instance="n2"))
    assert await incidents(client) == []  # the muted n2 does not count
    clock.advance(60)
    await expire(client, s["id"])
    [inc] = await incidents(client)
    assert inc["rule"] == "disk-low" and inc["alert_count"] == 2
    s2 = await create(client, matchers=['instance="n3"'], ends_at="2026-11-26T06:00:00Z")
    await send(client, dm, alert("DiskSpaceLow", cluster="eu", instance="n3"))
    assert (await get(client, f"/api/v1/incidents/{inc['id']}"))["alert_count"] == 2
    await expire(client, s2["id"])
    assert (await get(client, f"/api/v1/incidents/{inc['id']}"))["alert_count"] == 3  # joins the open one


async def test_another_active_silence_keeps_the_alert_muted(client: Client, daemon: tuple[Daemon, FakeClock]) -> None:
    dm, _ = daemon
    short = await create(client, matchers=['instance="a"'], ends_at="2026-11-25T22:30:00Z")
    await send(client, dm, alert("HighCpu", instance="a"))
    long = await create(client, matchers=['alertname="HighCpu"'], ends_at="2026-11-26T06:00:00Z")
    assert (await alerts_named(client, instance="a"))[0]["muted_by"] == short["id"]
    await expire(client, short["id"])
    assert (await alerts_named(client, instance="a"))[0]["muted_by"] == long["id"]
    assert await incidents(client) == []
    await expire(client, long["id"])
    assert len(await incidents(client)) == 1


async def test_recurring_maintenance_window(client: Client, daemon: tuple[Daemon, FakeClock]) -> None:
    dm, clock = daemon  # 22:00 now; a nightly window 22:00-22:30
    s = await create(client, matchers=['alertname="HighCpu"'], schedule="0 22 * * *", duration="30m")
    assert s["state"] == "active" and s["next_change_at"] == "2026-11-25T22:30:00.000000Z"
    await send(client, dm, alert("HighCpu", instance="a"))
    assert (await alerts_named(client, instance="a"))[0]["muted_by"] == s["id"]
    clock.advance(31 * 60)  # the window is over: a is correlated, and new alerts are not muted
    await dm.pipeline.release_due()
    [inc_a] = await incidents(client)
    await send(client, dm, alert("HighCpu", instance="b", starts="2026-11-25T22:31:00Z"))
    assert (await alerts_named(client, instance="b"))[0]["muted_by"] is None and len(await incidents(client)) == 2
    assert (await get(client, f"/api/v1/silences/{s['id']}"))["state"] == "pending"
    clock.set(clock.now().replace(day=26, minute=5))  # 22:05 the next night: muted again
    await send(client, dm, alert("HighCpu", instance="c", starts="2026-11-26T22:04:00Z"))
    assert (await alerts_named(client, instance="c"))[0]["muted_by"] == s["id"]
    assert [i["id"] for i in await incidents(client)][1] == inc_a["id"]  # nothing new opened


async def declared(text: str) -> Silence:
    import yaml

    silence, problems = compile_silence(yaml.safe_load(text))
    assert silence is not None, problems
    return silence


async def test_declared_windows_mute_and_cannot_be_deleted(engine: str, tmp_path: Path,
                                                           aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    window = await declared("{matchers: ['instance=\"a\"'], schedule: '0 22 * * *', duration: 1h, comment: db}")
    async with running(tmp_path, engine, with_silences(window)) as (dm, _):
        client = await aiohttp_client(dm.app)
        [listed] = (await get(client, "/api/v1/silences"))["items"]
        assert listed["id"] == window.id and listed["id"].startswith("config:") and listed["origin"] == "config"
        assert listed["created_by"] == "config" and listed["state"] == "active" and listed["starts_at"] is None
        await send(client, dm, alert("HighCpu", instance="a"))
        assert (await alerts_named(client, instance="a"))[0]["muted_by"] == window.id
        status, body = await expire(client, window.id)
        assert status == 409 and "configuration" in body["error"]


async def test_reload_replaces_the_declared_windows_whole(engine: str, tmp_path: Path,
                                                          aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    from itsmd.config import load_config
    from tests import daemon as d
    from tests.conftest import POSTGRES_URL, reset_postgres

    if engine == "postgres":
        if not POSTGRES_URL:
            pytest.skip("set ITSMD_TEST_POSTGRES to run the PostgreSQL flow")
        reset_postgres(POSTGRES_URL).engine.dispose()
    database = POSTGRES_URL if engine == "postgres" else "sqlite:///itsmd.db"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text("rules:\n  - {name: cpu, match: ['alertname=\"HighCpu\"'], "
                                                  "group_by: [instance]}\n")
    (tmp_path / "admin.token").write_text(d.TOKENS[d.Role.ADMIN])
    (tmp_path / "ingest.token").write_text(d.TOKENS[d.Role.INGEST])
    (tmp_path / "viewer.token").write_text(d.TOKENS[d.Role.VIEWER])
    by_host = "{matchers: ['instance=\"a\"'], ends_at: '2027-01-01T00:00:00Z', comment: host a}"
    by_name = "{matchers: ['alertname=\"HighCpu\"'], ends_at: '2027-01-01T00:00:00Z', comment: all cpu}"

    def write(*items: str) -> None:
        (tmp_path / "itsmd.yaml").write_text(
            f"database: {database}\nauth:\n  tokens:\n"
            "    - {name: root, role: admin, token_file: admin.token}\n"
            "    - {name: am, role: ingest, token_file: ingest.token}\n"
            "    - {name: view, role: viewer, token_file: viewer.token}\n"
            f"silences: [{', '.join(items)}]\n")

    def load() -> object:
        return load_config(tmp_path / "itsmd.yaml", {}, tmp_path)

    async def reload() -> tuple[int, dict[str, object]]:
        resp = await client.post("/-/reload", json={}, headers=d.bearer(d.Role.ADMIN))
        return resp.status, await resp.json()

    async def silences() -> dict[str, dict[str, object]]:
        return {s["comment"]: s for s in (await get(client, "/api/v1/silences"))["items"]}

    write(by_host)
    dm = Daemon(load(), clock=FakeClock(), timers=d.Timers(pipeline_poll=0.2), loader=load)  # type: ignore[arg-type]
    await dm.start_core()
    try:
        client = await aiohttp_client(dm.app)
        await send(client, dm, alert("HighCpu", instance="a"))
        first = (await silences())["host a"]
        assert (await alerts_named(client, instance="a"))[0]["muted_by"] == first["id"]

        write(by_name)
        assert await reload() == (200, {"status": "reloaded"})
        now = await silences()
        assert now["host a"]["state"] == "expired" and now["host a"]["expired_at"] is not None  # kept for the audit
        assert now["all cpu"]["state"] == "active"
        assert (await alerts_named(client, instance="a"))[0]["muted_by"] == now["all cpu"]["id"]  # still muted

        write("{matchers: ['instance=~\"(\"'], ends_at: '2027-01-01T00:00:00Z'}")  # a bad set changes nothing
        status, body = await reload()
        assert status == 400 and any("silences[0].matchers[0]" in p for p in body["problems"])  # type: ignore[attr-defined]
        assert (await silences())["all cpu"]["state"] == "active"

        write()
        assert (await reload())[0] == 200
        assert {s["state"] for s in (await silences()).values()} == {"expired"}
        [inc] = await incidents(client)  # released at once: no declared window mutes it any more
        assert (await alerts_named(client, instance="a"))[0]["incident_id"] == inc["id"]

        write(by_host)  # declared again: the same id, in force again
        assert (await reload())[0] == 200
        again = await silences()
        assert again["host a"]["id"] == first["id"] and again["host a"]["state"] == "active"
        assert len(again) == 2
    finally:
        await dm.stop()
