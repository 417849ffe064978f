"""The hardened HTTP edge against a real `itsmd serve` over raw loopback sockets (reliability.md B1-B10, S3, S4):
slow clients are cut off at the head and body deadlines while a real webhook is answered, connections per source
are capped, every bad input is a 4xx and the daemon stays healthy, no CORS, a secret canary never shows, TLS."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from itsmd.config.loader import load_config
from itsmd.web.connection import Sources
from tests.process import VIEWER_ENV, WEBHOOK, Daemons, ServeProcess, firing_alert, webhook_body

JSON = {"Content-Type": "application/json"}
CUT_WITHIN = 15.0  # seconds a test waits for the daemon to cut a slow connection (its deadlines are 1 s)
DRIP = 0.2  # seconds between two bytes of a slow client


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    with Daemons(tmp_path) as d:
        yield d


def fast_deadlines(**extra: Any) -> dict[str, Any]:
    return {"limits": {"header_timeout": "1s", "body_timeout": "1s", "keepalive_timeout": "1s", **extra}}


async def slow_client(port: int, head: bytes, drip: bytes) -> bytes:
    """Send `head`, then `drip` one byte every DRIP seconds until the server closes; what the server answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)

    async def dripping() -> None:
        try:
            while drip:
                for i in range(len(drip)):
                    writer.write(drip[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(DRIP)
        except (ConnectionError, OSError):
            pass

    task = asyncio.create_task(dripping())
    try:
        return await asyncio.wait_for(reader.read(), CUT_WITHIN)
    except ConnectionError:
        return b""
    finally:
        task.cancel()
        writer.close()


def webhook_head(p: ServeProcess, length: int) -> bytes:
    auth = p.ingest_headers()["Authorization"]
    return (f"POST {WEBHOOK} HTTP/1.1\r\nHost: itsmd\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


async def test_slowloris_is_cut_off_while_a_real_webhook_is_answered(daemons: Daemons) -> None:
    p = daemons.new("slow", config=fast_deadlines())
    await p.start_async()
    slow_heads = [asyncio.create_task(slow_client(p.port, b"POST " + WEBHOOK.encode() + b" HTTP/1.1\r\nHost: x\r\n",
                                                  b"X-Slow: aaaaaaaaaaaaaaaaaaaa\r\n")) for _ in range(20)]
    slow_body = asyncio.create_task(slow_client(p.port, webhook_head(p, 10_000), b"[" * 100))
    # a keep-alive connection that answered one request, then trickles the head of the next one
    later_head = asyncio.create_task(slow_client(
        p.port, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\nGET /-/healthy HTTP/1.1\r\n", b"X-Slow: a\r\n"))
    await asyncio.sleep(DRIP * 2)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CUT_WITHIN)) as s:
        body = webhook_body([firing_alert({"alertname": "Real"})])
        async with s.post(p.url + WEBHOOK, data=json.dumps(body), headers={**p.ingest_headers(), **JSON}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["accepted"] == 1
    for answer in await asyncio.gather(*slow_heads):
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request head not received" in answer
    answer = await slow_body
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request body not received" in answer
    answer = await later_head
    assert answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1") == 1, answer[:400]
    async with aiohttp.ClientSession() as s, s.get(p.url + "/-/ready") as r:
        assert r.status == 200
    assert p.running


async def test_connections_per_source_are_capped(daemons: Daemons) -> None:
    p = daemons.new("cap", config={"limits": {"max_connections_per_source": 4, "header_timeout": "60s"}})
    await p.start_async()
    idle = [await asyncio.open_connection("127.0.0.1", p.port) for _ in range(4)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", p.port)
        answer = await asyncio.wait_for(reader.read(), CUT_WITHIN)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"error": "too many open connections from this address"}
    finally:
        for _, w in idle[1:]:
            w.close()
    idle[0][1].write(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")  # the admitted still work
    assert (await asyncio.wait_for(idle[0][0].read(), CUT_WITHIN)).startswith(b"HTTP/1.1 200")
    idle[0][1].close()
    deadline = time.monotonic() + CUT_WITHIN  # the closed ones are released as the daemon notices them
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(p.url + "/-/healthy") as r:
                if r.status == 200:
                    break
            assert time.monotonic() < deadline, "connections were not released"
            await asyncio.sleep(0.1)


def _deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


def _alert_body(alert: dict[str, Any]) -> bytes:
    return json.dumps(webhook_body([alert])).encode()


def _hostile() -> bytes:
    values = {"nl": "a\nb", "crlf": "a\r\nb", "nul": "a\x00b", "ansi": "\x1b[31mred", "rlo": "\u202eevil",
              "script": "<script>alert(1)</script>", "big": "x" * (64 * 1024)}
    return _alert_body(firing_alert({"alertname": "Hostile", **values}))


_GOOD = firing_alert({"alertname": "Edge"})

# (name, method, path, content type, body, expected statuses): every bad input of reliability.md §4.3 that a
# single request carries. Bodies are bytes as sent; None = no body.
BAD_INPUTS: list[tuple[str, str, str, str | None, bytes | None, set[int]]] = [
    ("B1 body over max_body_bytes", "POST", WEBHOOK, "application/json", b" " * 2_000_000, {413}),
    ("B3 truncated", "POST", WEBHOOK, "application/json", _alert_body(_GOOD)[:-5], {400}),
    ("B3 trailing garbage", "POST", WEBHOOK, "application/json", _alert_body(_GOOD) + b"}x", {400}),
    ("B3 nested 200000 deep", "POST", WEBHOOK, "application/json", _deep(200_000), {400}),
    ("B3 NaN", "POST", WEBHOOK, "application/json", b'{"version": "4", "alerts": [], "x": NaN}', {400}),
    ("B3 Infinity", "POST", WEBHOOK, "application/json", b'{"version": "4", "alerts": [], "x": Infinity}', {400}),
    ("B3 5000-digit integer", "POST", WEBHOOK, "application/json",
     b'{"version": "4", "alerts": [], "x": ' + b"9" * 5000 + b"}", {400}),
    ("B3 duplicate label keys", "POST", WEBHOOK, "application/json",
     _alert_body(_GOOD).replace(b'"alertname": "Edge"', b'"alertname": "X", "alertname": "Edge"'), {200}),
    ("B4 text/plain", "POST", WEBHOOK, "text/plain", _alert_body(_GOOD), {415}),
    ("B4 form", "POST", WEBHOOK, "application/x-www-form-urlencoded", b"a=b", {415}),
    ("B4 no content type", "POST", WEBHOOK, None, _alert_body(_GOOD), {415}),
    ("B4 empty body", "POST", WEBHOOK, "application/json", b"", {400}),
    ("B4 GET on the webhook", "GET", WEBHOOK, None, None, {405}),
    ("B4 PUT on the webhook", "PUT", WEBHOOK, "application/json", b"{}", {405}),
    ("B5 hostile values", "POST", WEBHOOK, "application/json", _hostile(), {200}),
    ("B5 lone surrogate", "POST", WEBHOOK, "application/json",
     _alert_body(firing_alert({"alertname": "S", "v": "PLACEHOLDER"})).replace(b"PLACEHOLDER", b"\\ud800"),
     {200, 400}),
    ("B5 invalid UTF-8", "POST", WEBHOOK, "application/json", _alert_body(_GOOD).replace(b"Edge", b"\xff\xfe"),
     {200, 400}),
    ("B6 hostile label names", "POST", WEBHOOK, "application/json", _alert_body(firing_alert(
        {"alertname": "Names", "a=b": "1", "x y": "2", "$(id)": "3", "é": "4", "PATH": "5", "LD_PRELOAD": "6"})),
     {200}),
    ("B7 nanoseconds and +14:00", "POST", WEBHOOK, "application/json",
     _alert_body(firing_alert({"alertname": "T1"}, "2026-01-01T10:00:00.123456789+14:00")), {200}),
    ("B7 invalid date", "POST", WEBHOOK, "application/json",
     _alert_body(firing_alert({"alertname": "T2"}, "2024-02-30T00:00:00Z")), {200}),
    ("B7 ends before starts", "POST", WEBHOOK, "application/json", _alert_body(
        {**firing_alert({"alertname": "T3"}, "2026-01-02T00:00:00Z"), "endsAt": "2026-01-01T00:00:00Z"}), {200}),
    ("B7 no startsAt", "POST", WEBHOOK, "application/json",
     _alert_body({k: v for k, v in firing_alert({"alertname": "T4"}).items() if k != "startsAt"}), {200}),
    ("B8 empty labels", "POST", WEBHOOK, "application/json", _alert_body(firing_alert({})), {200}),
    ("B8 unknown version", "POST", WEBHOOK, "application/json", b'{"version": "9", "alerts": []}', {400}),
    ("B8 unknown status", "POST", WEBHOOK, "application/json",
     _alert_body({**firing_alert({"alertname": "U"}), "status": "weird"}), {200}),
    ("B9 mixed batch", "POST", WEBHOOK, "application/json",
     json.dumps(webhook_body([firing_alert({"alertname": "M", "i": str(i)}) for i in range(99)] + [7])).encode(),
     {200}),
    ("push body not a list", "POST", "/api/v2/alerts", "application/json", b"{}", {400}),
    ("push null alert", "POST", "/api/v2/alerts", "application/json", b"[null]", {200}),
    ("bad limit", "GET", "/api/v1/alerts?limit=0", None, None, {400}),
    ("bad cursor", "GET", "/api/v1/alerts?cursor=%%%", None, None, {400}),
    ("huge incident id", "GET", "/api/v1/incidents/INC-" + "9" * 40, None, None, {404}),
    ("non-ASCII digits in an id", "GET", "/api/v1/incidents/INC-%C2%B2", None, None, {404}),
    ("unknown route", "GET", "/api/v1/nothing", None, None, {404}),
]


async def test_every_bad_input_is_a_4xx_and_the_daemon_stays_healthy(daemons: Daemons) -> None:
    p = daemons.new("bad", config={"limits": {"max_body_bytes": 1048576}})
    await p.start_async()
    admin = {"Authorization": f"Bearer {p.ingest_token}"}
    seen: list[tuple[str, int]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        for name, method, path, ctype, body, expected in BAD_INPUTS:
            headers = {**(admin if path.startswith(("/api/v1/webhooks", "/api/v2")) else p.viewer_headers()),
                       **({"Content-Type": ctype} if ctype else {})}
            async with s.request(method, p.url + path, data=body, headers=headers,
                                 skip_auto_headers=["Content-Type"]) as r:
                text = await r.text()
                seen.append((name, r.status))
                assert r.status in expected, f"{name}: {r.status} {text[:300]}"
                if r.status >= 400:
                    assert "error" in json.loads(text) and "Traceback" not in text, (name, text[:300])
        async with s.get(p.url + "/-/ready") as r:
            assert r.status == 200
        good = webhook_body([firing_alert({"alertname": "AfterAll"})])
        async with s.post(p.url + WEBHOOK, data=json.dumps(good), headers={**admin, **JSON}) as r:
            assert r.status == 200
    assert p.running and "Traceback" not in p.log(), p.log()[-3000:]


async def test_no_cors_and_no_form_posts(daemons: Daemons) -> None:
    p = daemons.new("cors")
    await p.start_async()
    async with aiohttp.ClientSession() as s:
        for origin in ("null", "https://evil.example"):
            preflight = {"Origin": origin, "Access-Control-Request-Method": "POST",
                         "Access-Control-Request-Headers": "authorization, content-type"}
            async with s.options(p.url + "/api/v1/silences", headers=preflight) as r:
                assert r.status >= 400 and not any(h.lower().startswith("access-control-") for h in r.headers)
            async with s.get(p.url + "/api/v1/alerts", headers={**p.viewer_headers(), "Origin": origin}) as r:
                assert r.status == 200 and not any(h.lower().startswith("access-control-") for h in r.headers)
        form = {**p.viewer_headers(), "Content-Type": "application/x-www-form-urlencoded", "Origin": "null"}
        async with s.post(p.url + "/api/v1/incidents/INC-1/ack", data=b"comment=x", headers=form) as r:
            assert r.status in (403, 415)  # a viewer may not; and no form is ever a state change


CANARY = "CANARY-9f3e"


async def test_secret_canary_never_appears_in_logs_or_api_output(daemons: Daemons) -> None:
    folder = daemons.root / "canary"
    folder.mkdir()
    admin = f"{CANARY}-admin-{secrets.token_hex(8)}"
    (folder / "admin.token").write_text(admin + "\n")
    p = daemons.new("canary", config={"log": {"level": "debug"}, "auth": {"tokens": [
        {"name": "am", "role": "ingest", "token_file": "ingest.token"},
        {"name": "ops", "role": "viewer", "token_env": VIEWER_ENV},
        {"name": "root", "role": "admin", "token_file": "admin.token"},
    ]}})
    p.ingest_token = f"{CANARY}-ingest-{secrets.token_hex(8)}"
    p.write_config()
    await p.start_async()
    root = {"Authorization": f"Bearer {admin}"}
    wrong = {"Authorization": f"Bearer {CANARY}-wrong-{secrets.token_hex(8)}"}
    basic = {"Authorization": "Basic " + base64.b64encode(f"root:{CANARY}-x".encode()).decode()}
    outputs: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        body = json.dumps(webhook_body([firing_alert({"alertname": "Canary"}), 1]))
        for headers in (p.ingest_headers(), root, wrong, basic, p.viewer_headers()):
            async with s.post(p.url + WEBHOOK, data=body, headers={**headers, **JSON}) as r:
                outputs.append(await r.text())
            async with s.post(p.url + "/-/reload", data=b"{}", headers={**headers, **JSON}) as r:
                outputs.append(await r.text())
        for path in ("/api/v1/alerts", "/api/v1/quarantine", "/api/v1/incidents", "/api/v1/audit?limit=1000",
                     "/api/v1/silences", "/api/v1/problems", "/metrics", "/api/v1/openapi.json"):
            async with s.get(p.url + path, headers=root) as r:
                assert r.status == 200, path
                outputs.append(await r.text())
    audit = json.loads(outputs[-5])["items"]
    assert any(a["action"] == "auth_failed" for a in audit)  # the failures were recorded, without the token
    assert p.terminate() == 0
    assert CANARY not in p.log()
    for out in outputs:
        assert CANARY not in out


async def test_tls_serves_https_when_configured(daemons: Daemons) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    p = daemons.new("tls", config=fast_deadlines(), auth=True)
    cert.private_key_and_cert_chain_pem.write_to_path(str(p.dir / "server.pem"))
    p.extra["tls"] = {"cert_file": "server.pem", "key_file": "server.pem"}
    p.write_config()
    p.spawn()
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    https = f"https://127.0.0.1:{p.port}"
    deadline = time.monotonic() + 20
    while True:  # ServeProcess waits over plain HTTP; this one answers HTTPS only
        try:
            with urllib.request.urlopen(https + "/-/ready", timeout=2, context=client_ctx) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        assert p.running and time.monotonic() < deadline, p.log()[-3000:]
        await asyncio.sleep(0.1)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        body = json.dumps(webhook_body([firing_alert({"alertname": "Tls"})]))
        async with s.post(https + WEBHOOK, data=body, headers={**p.ingest_headers(), **JSON}, ssl=client_ctx) as r:
            assert r.status == 200
        with pytest.raises(aiohttp.ClientError):  # plain HTTP is not served on the TLS port
            async with s.get(f"http://127.0.0.1:{p.port}/-/healthy") as r:
                await r.read()
    # a client that never starts the TLS handshake is cut at the header deadline
    assert await slow_client(p.port, b"", b"") == b""


def test_sources_count_open_connections_per_address() -> None:
    sources = Sources(2)
    assert sources.admit("a") and sources.admit("a") and not sources.admit("a")
    assert sources.admit("b")
    sources.release("a")
    assert sources.open("a") == 1 and sources.admit("a")
    sources.release("b")
    assert sources.open("b") == 0


def test_limits_config_keys(tmp_path: Path) -> None:
    path = tmp_path / "itsmd.yaml"
    path.write_text("limits: {header_timeout: 5s, body_timeout: 1m, keepalive_timeout: 2, "
                    "max_connections_per_source: 9}\n")
    limits = load_config(path, {}, tmp_path).limits
    assert (limits.header_timeout, limits.body_timeout, limits.keepalive_timeout) == (5.0, 60.0, 2.0)
    assert limits.max_connections_per_source == 9
