"""Step executors against real processes and a local HTTP server: argv only, clean environment, capped output,
the whole process group killed on timeout, secrets kept out of results."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from itsmd.actions.exec import Executor, clean_environment
from itsmd.actions.http import HttpCaller, parse_headers
from itsmd.actions.result import OutputTail
from itsmd.actions.sleep import pause

PY = sys.executable
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "ITSMD_DATABASE": "postgresql://u:pw@db/x", "AWS_SECRET": "s"}


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_argv_reaches_the_program_literally(tmp_path: Path) -> None:
    hostile = [f"$(touch {tmp_path}/pwned)", f"; touch {tmp_path}/pwned", "`id`", "{{7*7}}", "-rf", "a b", "x\ny",
               "'\"", "*"]
    script = "import json, sys; print(json.dumps(sys.argv[1:]))"
    result = await Executor(ENV).run([PY, "-c", script, *hostile], timeout=10)
    assert result.succeeded and result.exit_code == 0
    assert json.loads(result.output) == hostile
    assert not (tmp_path / "pwned").exists()


async def test_environment_is_the_allowlist_plus_fixed_names() -> None:
    script = "import json, os; print(json.dumps(dict(os.environ)))"
    result = await Executor(ENV).run([PY, "-c", script], timeout=10, extra_env={"ITSMD_RUN_ID": "RUN-1"})
    env = json.loads(result.output)
    env.pop("LC_CTYPE", None)  # Python may set it itself
    assert env == {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "ITSMD_RUN_ID": "RUN-1"}
    assert clean_environment({})["PATH"].startswith("/usr/local/sbin")
    with pytest.raises(ValueError, match="ITSMD_"):
        clean_environment(ENV, {"instance": "x"})  # never a name from alert labels


async def test_exit_code_and_missing_program() -> None:
    result = await Executor(ENV).run([PY, "-c", "import sys; print('bye'); sys.exit(3)"], timeout=10)
    assert (result.succeeded, result.exit_code, result.output, result.timed_out) == (False, 3, "bye\n", False)
    missing = await Executor(ENV).run(["/nonexistent/prog", "x"], timeout=10)
    assert not missing.succeeded and missing.exit_code is None and "cannot execute /nonexistent/prog" in (
        missing.error or "")


async def test_hanging_step_ignoring_sigterm_and_its_child_are_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = os.fork()
        if child == 0:
            time.sleep(1000)
        with open({str(pids)!r}, "w") as f:
            f.write(f"{{os.getpid()}} {{child}}")
        print("started", flush=True)
        time.sleep(1000)
    """)
    result = await Executor(ENV, kill_grace=0.3).run([PY, "-c", script], timeout=1.0)
    assert result.timed_out and not result.succeeded and result.exit_code == -9
    assert "started" in result.output
    leader, child = map(int, pids.read_text().split())
    for _ in range(50):  # the orphaned child is reaped by init shortly after SIGKILL
        if not alive(leader) and not alive(child):
            break
        await asyncio.sleep(0.1)
    assert not alive(leader) and not alive(child)


async def test_a_finished_step_leaves_no_background_child(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = textwrap.dedent(f"""
        import os, subprocess, sys
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open({str(pidfile)!r}, "w").write(str(p.pid))
    """)
    result = await Executor(ENV).run([PY, "-c", script], timeout=10)
    assert result.succeeded
    pid = int(pidfile.read_text())
    for _ in range(50):
        if not alive(pid):
            break
        await asyncio.sleep(0.1)
    assert not alive(pid)


async def test_100_mb_of_output_keeps_memory_bounded() -> None:
    script = "import sys\nb = b'x' * 1048575 + b'\\n'\nfor _ in range(100): sys.stdout.buffer.write(b)\nprint('END')"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    result = await Executor(ENV, output_cap=65536).run([PY, "-c", script], timeout=60)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert result.succeeded and result.output_bytes == 100 * 1048576 + 4
    assert result.output.endswith("END\n") and result.output.startswith("[... ")
    assert len(result.output.encode()) < 65536 + 100
    assert after - before < 30 * 1024  # far below the 100 MB produced


def test_output_tail_keeps_the_last_bytes() -> None:
    tail = OutputTail(cap=4)
    for chunk in (b"ab", b"cdef", b"g"):
        tail.add(chunk)
    assert (tail.total, tail.truncated, tail.text()) == (7, True, "[... 3 bytes of output dropped ...]\ndefg")


async def test_sleep() -> None:
    assert (await pause(0.01)).succeeded


def test_parse_headers() -> None:
    assert parse_headers("# c\nAuthorization: Bearer a:b\n\nX-Y:  z \n") == {"Authorization": "Bearer a:b", "X-Y": "z"}
    with pytest.raises(ValueError, match="line 1") as e:
        parse_headers("no header here sekrit")
    assert "sekrit" not in str(e.value)


@pytest.fixture
async def server(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    seen: list[dict[str, object]] = []

    async def echo(request: web.Request) -> web.Response:
        if request.query.get("token"):  # echo only the token of `Bearer <token>`
            return web.Response(text=request.headers.get("Authorization", "").split()[-1])
        seen.append({"auth": request.headers.get("Authorization"), "body": await request.json()})
        return web.json_response({"ok": True, "you_sent": request.headers.get("Authorization")}, status=201)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_get("/slow", slow)
    app.router.add_get("/broken", broken)
    app["seen"] = seen
    return await aiohttp_server(app)


async def test_http_step_with_secret_headers(server: TestServer, tmp_path: Path) -> None:
    (tmp_path / "h").write_text("Authorization: Bearer sekrit-123\n")
    async with aiohttp.ClientSession() as session:
        caller = HttpCaller(session, {"HDR": "Authorization: Bearer env-sekrit"})
        result = await caller.call("POST", str(server.make_url("/echo")), {"host": "$(id)"}, 5, [200, 201],
                                   headers_file=str(tmp_path / "h"))
        assert result.succeeded and result.status == 201 and result.json["ok"] is True
        assert "sekrit" not in result.output and result.json["you_sent"] == "***"
        assert server.app["seen"] == [{"auth": "Bearer sekrit-123", "body": {"host": "$(id)"}}]
        token = await caller.call("POST", str(server.make_url("/echo?token=1")), {}, 5, [200],
                                  headers_file=str(tmp_path / "h"))
        assert token.succeeded and token.output == "***"
        by_env = await caller.call("POST", str(server.make_url("/echo")), {}, 5, [201], headers_env="HDR")
        assert by_env.succeeded and "env-sekrit" not in by_env.output
        strict = await caller.call("POST", str(server.make_url("/echo")), {}, 5, [200])
        assert not strict.succeeded and strict.status == 201 and "not in [200]" in (strict.error or "")


async def test_http_step_failures(server: TestServer, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        caller = HttpCaller(session, {})
        late = await caller.call("GET", str(server.make_url("/slow")), None, 0.2, [200])
        assert late.timed_out and not late.succeeded
        broken = await caller.call("GET", str(server.make_url("/broken")), None, 5, [200])
        assert (broken.succeeded, broken.status, broken.output) == (False, 500, "boom")
        missing = await caller.call("GET", str(server.make_url("/broken")), None, 5, [200],
                                    headers_file=str(tmp_path / "nope"))
        assert not missing.succeeded and "cannot read headers_file" in (missing.error or "")
        refused = await caller.call("GET", "http://127.0.0.1:1/", None, 5, [200])
        assert not refused.succeeded and refused.error and refused.error.startswith("request failed")
