"""Scale-out: three `itsmd serve` replicas on one real PostgreSQL (issue 11, DESIGN §2 Scale-out).

Exactly one replica leads and another takes over when it is killed; every replica ingests, and the same
Alertmanager group posted to all of them at once makes one incident; no run is executed twice across leader
kills; PostgreSQL cut off (a TCP proxy between the replicas and the server) makes the webhook answer 503 and
everything recovers after.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import POSTGRES_URL, reset_postgres
from tests.notify_sinks import HttpSink
from tests.process import WEBHOOK, Daemons, ServeProcess, firing_alert, webhook_body
from tests.replicas import TAKEOVER_WAIT, Replicas

pytestmark = [pytest.mark.slow, pytest.mark.postgres,
              pytest.mark.skipif(not POSTGRES_URL, reason="set ITSMD_TEST_POSTGRES to run the scale-out tests")]


@pytest.fixture
def database() -> str:
    assert POSTGRES_URL
    reset_postgres(POSTGRES_URL).engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    with Daemons(tmp_path) as d:
        yield d


async def post(session: aiohttp.ClientSession, p: ServeProcess, alerts: list[dict[str, object]]) -> int:
    try:
        async with session.post(f"{p.url}{WEBHOOK}", json=webhook_body(alerts), headers=p.ingest_headers()) as r:
            return r.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


def down(instance: str) -> dict[str, object]:
    return firing_alert({"alertname": "Down", "instance": instance})


async def leader_metric(session: aiohttp.ClientSession, p: ServeProcess) -> float:
    async with session.get(f"{p.url}/metrics") as resp:
        text = await resp.text()
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith("itsmd_leader "))


async def stepped_down(session: aiohttp.ClientSession, p: ServeProcess, timeout: float = 5.0) -> bool:
    """Whether `p` says it follows within `timeout`: a replica cut off from PostgreSQL steps down at its next
    heartbeat (500 ms here), which may come a moment after another replica already took the freed lock."""
    deadline = time.monotonic() + timeout
    while await leader_metric(session, p) != 0.0:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_one_leader_and_takeover_after_kill(daemons: Daemons, database: str, tmp_path: Path) -> None:
    cluster = Replicas(daemons, tmp_path / "shared", database)
    await cluster.start()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        first = await cluster.leader(s)
        for _ in range(5):  # it stays so: one leader, the others follow
            roles = await cluster.roles(s)
            assert sorted(roles.values()) == ["follower", "follower", "leader"], roles
            await asyncio.sleep(0.3)
        assert [await leader_metric(s, p) for p in cluster.all] == [
            1.0 if p is first else 0.0 for p in cluster.all]
        async with s.get(f"{first.url}/-/ready") as resp:
            assert resp.status == 200 and resp.headers["X-Itsmd-Role"] == "leader"
        follower = next(p for p in cluster.all if p is not first)
        async with s.get(f"{follower.url}/-/ready") as resp:
            assert resp.status == 200 and resp.headers["X-Itsmd-Role"] == "follower"

        first.kill9()
        second = await cluster.leader(s, TAKEOVER_WAIT)
        assert second is not first
        await first.start_async()  # back as a follower
        await asyncio.sleep(1.5)
        roles = await cluster.roles(s)
        assert sorted(roles.values()) == ["follower", "follower", "leader"], roles
        assert roles[cluster.all.index(second)] == "leader"

        # The new leader continues from the inbox: alerts posted to a follower now are processed.
        assert await post(s, first, [down("after-takeover")]) == 200
        alerts, _ = await cluster.settled(s, {"after-takeover"})
        assert [a["labels"]["instance"] for a in alerts] == ["after-takeover"]


async def test_same_group_posted_to_every_replica_at_once(daemons: Daemons, database: str, tmp_path: Path) -> None:
    cluster = Replicas(daemons, tmp_path / "shared", database, hold=0.0)
    await cluster.start()
    instances = [f"host-{i}" for i in range(20)]
    group = [down(i) for i in instances]
    rounds = 5
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        await cluster.leader(s)
        for _ in range(rounds):  # each round: the whole group to all three at the same moment (an HA pair + LB)
            statuses = await asyncio.gather(*(post(s, p, group) for p in cluster.all))
            assert statuses == [200, 200, 200]
        alerts, runs = await cluster.settled(s, set(instances))
        incidents = await _incidents(s, cluster.all[1])
    by_instance = Counter(a["labels"]["instance"] for a in alerts)
    assert by_instance == Counter(instances), "one alert per instance: no duplicates"
    assert all(a["occurrences"] == 3 * rounds for a in alerts)  # every delivery counted (DESIGN §1.6 item 1)
    assert len(incidents) == len(instances) and len({a["incident_id"] for a in alerts}) == len(instances)
    assert Counter(r["incident_id"] for r in runs) == Counter({i["id"]: 1 for i in incidents})
    assert max(cluster.executions().values()) == 1


async def _incidents(s: aiohttp.ClientSession, p: ServeProcess) -> list[dict[str, object]]:
    from tests.replicas import list_all
    return await list_all(s, p, "/api/v1/incidents")


async def test_no_run_executed_twice_across_leader_kills(daemons: Daemons, database: str, tmp_path: Path) -> None:
    cluster = Replicas(daemons, tmp_path / "shared", database, hold=1.0)
    await cluster.start()
    expected: set[str] = set()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        for round_ in range(3):
            leader = await cluster.leader(s)
            batch = [f"r{round_}-{i}" for i in range(6)]
            expected |= set(batch)
            target = next(p for p in cluster.alive if p is not leader)
            assert await post(s, target, [down(i) for i in batch]) == 200
            await asyncio.sleep(1.2)  # runs are executing (each step takes 1 s) on some replicas
            leader.kill9()
            await cluster.leader(s)
            await leader.start_async()
        alerts, runs = await cluster.settled(s, expected)
    executions = cluster.executions()
    assert executions and max(executions.values()) == 1, f"a run executed twice: {executions.most_common(3)}"
    states = Counter(r["state"] for r in runs)
    assert set(states) <= {"succeeded", "unknown"}, states  # a step cut short by a kill is unknown, never redone
    for r in runs:
        if r["state"] == "succeeded":
            assert executions[r["id"]] == 1, r
    assert len({a["labels"]["instance"] for a in alerts}) == len(alerts) == len(expected)


def escalated(sink: HttpSink) -> Counter[str]:
    """incident id -> escalate pages received."""
    return Counter(b["incident"]["id"] for b in sink.bodies("/hook") if b["event"] == "escalate")


class SlowSink(HttpSink):
    """Takes 0.2 s per delivery: the leader is still sending when the other replicas look for due pages."""

    async def handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.2)
        return await super().handle(request)


async def test_every_page_is_sent_once_by_the_replicas(daemons: Daemons, database: str, tmp_path: Path) -> None:
    sink = await SlowSink().start()
    try:
        (tmp_path / "hook.url").write_text(sink.url("/hook") + "\n")
        cluster = Replicas(daemons, tmp_path / "shared", database, extra={"notifiers": [
            {"name": "hooks", "type": "webhook", "url_file": str(tmp_path / "hook.url"), "default": True}]})
        await cluster.start()
        instances = [f"page-{i}" for i in range(30)]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
            await cluster.leader(s)
            alerts = [firing_alert({"alertname": "Page", "instance": i}) for i in instances]
            assert await post(s, cluster.all[0], alerts) == 200
            deadline = time.monotonic() + 60
            while len(escalated(sink)) < len(instances) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(3.0)  # three senders polling every second: a duplicate would have come by now
        sent = escalated(sink)
        assert len(sent) == len(instances), sent
        assert max(sent.values()) == 1, f"a page sent twice: {sent.most_common(3)}"
    finally:
        await sink.close()


class Proxy:
    """A TCP proxy to PostgreSQL that the test cuts (every connection closed, new ones refused) and restores."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.port = 0
        self.open = True
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._pipes |= {writer, up_writer}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                w.close()
                self._pipes.discard(w)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        self.open = False
        for w in list(self._pipes):
            w.transport.abort()
        self._pipes.clear()

    def restore(self) -> None:
        self.open = True

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


async def test_postgres_outage_under_load(daemons: Daemons, database: str, tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url
    url = make_url(database)
    proxy = Proxy(url.port or 5432)
    await proxy.start()
    via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    cluster = Replicas(daemons, tmp_path / "shared", via_proxy, hold=0.0)
    try:
        await cluster.start()
        accepted: set[str] = set()
        statuses: list[tuple[str, int]] = []  # (phase, status)
        phase = "before"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
            await cluster.leader(s)
            n = 0

            async def load() -> None:  # Alertmanager's way: a delivery not answered 2xx is sent again
                nonlocal n
                while phase != "done":
                    n += 1
                    name = f"load-{n}"
                    p = cluster.all[n % len(cluster.all)]
                    while True:
                        status = await post(s, p, [down(name)])
                        statuses.append((phase, status))
                        if status == 200:
                            accepted.add(name)
                            break
                        if phase == "done":
                            return
                        await asyncio.sleep(0.2)
                    await asyncio.sleep(0.05)

            loader = asyncio.create_task(load())
            await asyncio.sleep(2.0)
            proxy.cut()
            phase = "outage"
            await asyncio.sleep(1.0)  # in-flight requests of the moment of the cut end either way
            phase = "outage-settled"
            await asyncio.sleep(4.0)
            during = [st for ph, st in statuses if ph == "outage-settled"]
            assert [await leader_metric(s, p) for p in cluster.all] == [0.0] * 3  # nobody leads without it
            proxy.restore()
            phase = "after"
            await cluster.leader(s, TAKEOVER_WAIT)
            await asyncio.sleep(3.0)
            phase = "done"
            await loader
            assert during and set(during) == {503}, Counter(during)  # the webhook says: not stored, retry
            assert any(st == 200 for ph, st in statuses if ph == "after")
            alerts, _ = await cluster.settled(s, accepted)
        got = Counter(a["labels"]["instance"] for a in alerts)
        assert set(got) == accepted and max(got.values()) == 1
        assert all(p.running for p in cluster.all)  # nobody crashed over the outage
    finally:
        await proxy.close()


async def test_a_leader_cut_off_from_postgres_steps_down_and_another_leads(
        daemons: Daemons, database: str, tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url
    url = make_url(database)
    proxy = Proxy(url.port or 5432)
    await proxy.start()
    via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    cluster = Replicas(daemons, tmp_path / "shared", database, hold=0.0)
    cut_off = cluster.all[0]
    cut_off.extra["database"] = via_proxy  # only this one reaches PostgreSQL through the proxy
    cut_off.write_config()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
            await cut_off.start_async()
            assert await cluster.leader(s) is cut_off  # alone, it leads
            await asyncio.gather(*(p.start_async() for p in cluster.all[1:]))
            proxy.cut()
            successor = await cluster.leader(s, TAKEOVER_WAIT)
            assert successor is not cut_off
            assert await stepped_down(s, cut_off)
            assert await post(s, cut_off, [down("lost-here")]) == 503  # not stored: Alertmanager sends it again
            assert await post(s, successor, [down("stored-there")]) == 200
            proxy.restore()
            await asyncio.sleep(2.0)
            assert await leader_metric(s, cut_off) == 0.0  # back as a follower: one leader at a time
            assert await post(s, cut_off, [down("back")]) == 200
            alerts, _ = await cluster.settled(s, {"stored-there", "back"})
        assert sorted(a["labels"]["instance"] for a in alerts) == ["back", "stored-there"]
    finally:
        await proxy.close()
