"""The silences API: create (201), validation (400 naming every problem), roles, JSON content type, listing with
`active`, `limit` and `cursor`, and expiry that keeps the row."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from itsmd.app import Daemon
from itsmd.clock import FakeClock
from tests.silencing import ING, OPS, VIEW, Client, create, expire, get, running


@pytest.fixture(params=["sqlite", "postgres"])
async def daemon(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Daemon, FakeClock]]:
    async with running(tmp_path, request.param) as started:
        yield started


@pytest.fixture
async def client(daemon: tuple[Daemon, FakeClock], aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(daemon[0].app)


async def post(client: Client, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    resp = await client.post("/api/v1/silences", json=body, headers=headers or OPS)
    return resp.status, await resp.json()


async def test_create_answers_201_with_the_silence(client: Client) -> None:
    s = await create(client, matchers=['alertname = "HighCpu"', "instance=~a|b"], ends_at="2026-11-26T00:00:00+01:00")
    uuid.UUID(s["id"])  # opaque, unique
    assert s == {
        "id": s["id"], "matchers": ['alertname="HighCpu"', 'instance=~"a|b"'],
        "starts_at": "2026-11-25T22:00:00.000000Z", "ends_at": "2026-11-25T23:00:00.000000Z", "schedule": None,
        "timezone": None, "duration": None, "created_by": "alice", "comment": "maintenance", "origin": "api",
        "created_at": "2026-11-25T22:00:00.000000Z", "updated_at": "2026-11-25T22:00:00.000000Z",
        "expired_at": None, "state": "active", "active": True, "next_change_at": "2026-11-25T23:00:00.000000Z",
    }
    assert await get(client, f"/api/v1/silences/{s['id']}") == s
    recurring = await create(client, matchers=['job="db"'], schedule="0 2 * * SUN", duration="2h",
                             timezone="Europe/Berlin", starts_at="2026-12-01T00:00:00Z")
    assert (recurring["schedule"], recurring["timezone"], recurring["duration"]) == ("0 2 * * SUN", "Europe/Berlin",
                                                                                     7200.0)
    assert recurring["state"] == "pending" and recurring["ends_at"] is None
    assert recurring["next_change_at"] == "2026-12-06T01:00:00.000000Z"  # the first Sunday 02:00 Berlin after start


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "body must be a JSON object"),
        ({"ends_at": "2026-11-26T00:00:00Z", "created_by": "a", "comment": "c"}, "'matchers' is a required property"),
        ({"matchers": "job=db", "ends_at": "2026-11-26T00:00:00Z"}, "matchers: expected array, got string"),
        ({"matchers": ['job="db', "x"], "ends_at": "2026-11-26T00:00:00Z"}, "matchers[0]: invalid matcher"),
        ({"matchers": ['job=~"("'], "ends_at": "2026-11-26T00:00:00Z"}, "matchers[0]: invalid regex"),
        ({"matchers": ['job=~".*"'], "ends_at": "2026-11-26T00:00:00Z"}, "must not match the empty string"),
        ({"matchers": ['job="db"']}, "needs ends_at (a one-off silence) or schedule and duration"),
        ({"matchers": ['job="db"'], "schedule": "0 2 * * *"}, "schedule needs duration"),
        ({"matchers": ['job="db"'], "schedule": "0 2 * *", "duration": "1h"}, "schedule: cron needs 5 fields"),
        ({"matchers": ['job="db"'], "schedule": "0 2 * * *", "duration": "1x"}, "duration: must be a duration"),
        ({"matchers": ['job="db"'], "schedule": "0 2 * * *", "duration": 0}, "duration must be more than 0"),
        ({"matchers": ['job="db"'], "schedule": "@daily", "duration": 60, "timezone": "Nowhere/Land"},
         "timezone: unknown time zone"),
        ({"matchers": ['job="db"'], "ends_at": "tomorrow"}, "ends_at: not an RFC 3339 time"),
        ({"matchers": ['job="db"'], "ends_at": "2026-11-25T21:00:00Z"}, "ends_at: must be in the future"),
        ({"matchers": ['job="db"'], "starts_at": "2026-11-27T00:00:00Z", "ends_at": "2026-11-26T00:00:00Z"},
         "ends_at is before starts_at"),
        ({"matchers": ['job="db"'], "ends_at": "2026-11-26T00:00:00Z", "bogus": 1}, "unknown key 'bogus'"),
    ],
)
async def test_invalid_bodies_are_400_with_the_reason(client: Client, body: Any, message: str) -> None:
    if isinstance(body, dict) and "matchers" in body:
        body = {"created_by": "alice", "comment": "why", **body}
    status, answer = await post(client, body)
    assert status == 400 and message in answer["error"], answer
    assert (await get(client, "/api/v1/silences"))["items"] == []


async def test_created_by_and_comment_are_required(client: Client) -> None:
    status, answer = await post(client, {"matchers": ['job="db"'], "ends_at": "2026-11-26T00:00:00Z", "comment": " "})
    assert status == 400
    assert answer["error"] == "created_by: required: a non-empty string; comment: required: a non-empty string"


async def test_roles_and_content_type(client: Client) -> None:
    body = {"matchers": ['job="db"'], "ends_at": "2026-11-26T00:00:00Z", "created_by": "a", "comment": "c"}
    assert (await post(client, body, VIEW))[0] == 403
    assert (await post(client, body, ING))[0] == 403
    assert (await client.get("/api/v1/silences", headers=ING)).status == 403
    assert (await client.get("/api/v1/silences")).status == 401
    resp = await client.post("/api/v1/silences", data=b"{}", headers=OPS)  # no Content-Type: application/json
    assert resp.status == 415
    s = await create(client, matchers=['job="db"'], ends_at="2026-11-26T00:00:00Z")
    assert (await client.delete(f"/api/v1/silences/{s['id']}", headers=OPS)).status == 415
    assert (await client.delete(f"/api/v1/silences/{s['id']}", json={}, headers=VIEW)).status == 403
    resp = await client.post("/api/v1/silences", data=b"{not json", headers={**OPS, "Content-Type": "application/json"})
    assert resp.status == 400 and (await resp.json())["error"] == "body must be a JSON object"


async def test_listing_filters_on_activity_and_pages(client: Client, daemon: tuple[Daemon, FakeClock]) -> None:
    _, clock = daemon
    made = []
    for i in range(5):  # even ones active now, odd ones later
        start = "2026-11-25T22:00:00Z" if i % 2 == 0 else "2026-11-25T23:00:00Z"
        s = await create(client, matchers=[f'n="{i}"'], starts_at=start, ends_at="2026-11-26T00:00:00Z")
        made.append(s["id"])
    newest_first = list(reversed(made))
    assert [s["id"] for s in (await get(client, "/api/v1/silences"))["items"]] == newest_first
    active = await get(client, "/api/v1/silences", active="true")
    assert [s["id"] for s in active["items"]] == [made[4], made[2], made[0]] and active["next_cursor"] is None
    inactive = await get(client, "/api/v1/silences", active="false")
    assert [s["id"] for s in inactive["items"]] == [made[3], made[1]]
    seen, cursor = [], None
    while True:
        params = {"limit": "2", "active": "true", **({"cursor": cursor} if cursor else {})}
        got = await get(client, "/api/v1/silences", **params)
        seen += [s["id"] for s in got["items"]]
        cursor = got["next_cursor"]
        if cursor is None:
            break
    assert seen == [made[4], made[2], made[0]]
    assert (await client.get("/api/v1/silences", headers=VIEW, params={"active": "maybe"})).status == 400
    assert (await client.get("/api/v1/silences", headers=VIEW, params={"limit": "0"})).status == 400
    clock.advance(3600)  # 23:00: the odd ones start
    assert len((await get(client, "/api/v1/silences", active="true"))["items"]) == 5


async def test_delete_expires_and_keeps_the_row(client: Client, daemon: tuple[Daemon, FakeClock]) -> None:
    _, clock = daemon
    s = await create(client, matchers=['job="db"'], ends_at="2026-11-26T00:00:00Z")
    clock.advance(60)
    status, body = await expire(client, s["id"])
    assert status == 200 and body["state"] == "expired" and body["active"] is False
    assert body["ends_at"] == body["expired_at"] == "2026-11-25T22:01:00.000000Z" and body["next_change_at"] is None
    assert await get(client, f"/api/v1/silences/{s['id']}") == body  # kept for the audit
    assert (await expire(client, s["id"]))[0] == 409
    assert (await expire(client, "no-such-silence"))[0] == 404
    assert (await client.get("/api/v1/silences/no-such-silence", headers=VIEW)).status == 404
    later = await create(client, matchers=['job="db"'], starts_at="2026-11-25T23:00:00Z",
                         ends_at="2026-11-26T00:00:00Z")
    status, body = await expire(client, later["id"])  # a silence that has not started ends before it starts
    assert status == 200 and body["starts_at"] == body["ends_at"] == "2026-11-25T22:01:00.000000Z"
    recurring = await create(client, matchers=['job="db"'], schedule="@hourly", duration="10m")
    status, body = await expire(client, recurring["id"])
    assert status == 200 and body["state"] == "expired" and body["schedule"] == "@hourly"
    clock.advance(3600)
    assert (await get(client, f"/api/v1/silences/{recurring['id']}"))["state"] == "expired"


async def test_hostile_text_is_kept_as_data(client: Client) -> None:
    evil = "a\x00b\x1b[31m<script>{{7*7}}\u202e"
    s = await create(client, matchers=['job="x\\x00y"'], ends_at="2026-11-26T00:00:00Z", comment=evil,
                     created_by=evil)
    again = await get(client, f"/api/v1/silences/{s['id']}")
    assert again["comment"] == again["created_by"] == evil and again["matchers"] == ['job="x\\x00y"']
