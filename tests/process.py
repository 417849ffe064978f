"""Real `itsmd serve` subprocesses for end-to-end tests: config folder, free port, readiness, kill, restart.

Every process is started from the test's main thread and, on Linux, asks the kernel to SIGKILL it when that
thread dies (PR_SET_PDEATHSIG), so not even a killed pytest leaves a daemon behind; `Daemons` (used as a
fixture) kills whatever is still running when the test ends.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import aiohttp
import pytest
import yaml

READY_TIMEOUT = 20.0  # seconds until `GET /-/ready` must answer 200
EXIT_TIMEOUT = 15.0  # seconds a process gets to exit after SIGTERM, or a one-shot command to finish
VIEWER_ENV = "ITSMD_VIEWER_TOKEN"
WEBHOOK = "/api/v1/webhooks/alertmanager"
ALERTS = "/api/v1/alerts"
DEFAULT_PORT = 9797  # of `itsmd serve` without a config file
LOG_MARKER = "=== itsmd-test:"  # starts the lines the harness itself writes into a daemon's log
LOG_TAIL = 8000  # characters of the daemon's log shown in a failure

# Execs `python -m itsmd ARGS` after asking to be SIGKILLed when the parent (thread) dies; exits at once if
# the parent is already gone.
_LAUNCHER = """\
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    os._exit(70)
os.execv(sys.executable, [sys.executable, "-m", "itsmd", *sys.argv[2:]])
"""


def itsmd_argv(*args: str) -> list[str]:
    """The command line of `python -m itsmd ARGS` (through the orphan-proof launcher on Linux)."""
    if sys.platform.startswith("linux"):
        return [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *args]
    return [sys.executable, "-m", "itsmd", *args]


# systemd's variables would make a child talk to the service manager that runs the tests.
_NOT_INHERITED = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID"})


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment without ITSMD_* (ITSMD_DATABASE would override the config) and systemd's, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITSMD_") and k not in _NOT_INHERITED}
    env.update(extra or {})
    return env


def run_itsmd(*args: str, cwd: Path, env: Mapping[str, str] | None = None,
              timeout: float = EXIT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run a command that must end by itself (check, or a serve that must refuse to start); killed on timeout."""
    return subprocess.run(itsmd_argv(*args), cwd=cwd, env=child_env(env), capture_output=True, text=True,
                          timeout=timeout, check=False)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (`ServeProcess.start` picks another if it was taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class ServeProcess:
    """One `itsmd serve -c FOLDER/itsmd.yaml` with its own folder, port, tokens, database and log file.

    The config has `listen` on a free loopback port, `database: sqlite:///itsmd.db` (relative to the folder)
    and, with `auth`, an ingest token in `ingest.token` and a viewer token in $ITSMD_VIEWER_TOKEN; `config`
    entries are added to (or replace, or with None remove) those keys. Restarts reuse the folder, the
    database and the log file.
    """

    def __init__(self, folder: Path, *, auth: bool = True, config: Mapping[str, Any] | None = None,
                 cwd: Path | None = None, config_less: bool = False) -> None:
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cwd = cwd or self.dir
        self.config_less = config_less  # plain `itsmd serve` in `cwd`: the defaults, port 9797, no auth
        self.config_file = self.dir / "itsmd.yaml"
        self.log_file = self.dir / "serve.log"
        self.database_file = (self.cwd if config_less else self.dir) / "itsmd.db"
        self.ingest_token = f"ingest-{secrets.token_hex(16)}"
        self.viewer_token = f"viewer-{secrets.token_hex(16)}"
        self.auth = auth and not config_less
        self.extra = dict(config or {})
        self.fixed_port = "listen" in self.extra or config_less
        self.port = DEFAULT_PORT if config_less else free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        if not config_less:
            self.write_config()

    # --- configuration -------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"listen": f"127.0.0.1:{self.port}", "database": "sqlite:///itsmd.db"}
        if self.auth:
            doc["auth"] = {"tokens": [
                {"name": "am", "role": "ingest", "token_file": "ingest.token"},
                {"name": "ops", "role": "viewer", "token_env": VIEWER_ENV},
            ]}
        doc.update(self.extra)
        return {k: v for k, v in doc.items() if v is not None}  # `config={"database": None}` drops the key

    def write_config(self) -> None:
        (self.dir / "ingest.token").write_text(self.ingest_token + "\n")
        self.config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ingest_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.ingest_token}"} if self.auth else {}

    def viewer_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.viewer_token}"} if self.auth else {}

    # --- life cycle ----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for it to be ready (call from the main thread)."""
        assert not self.running, "already running"
        self.starts += 1
        with self.log_file.open("ab") as log:
            log.write(f"{LOG_MARKER} start {self.starts} on port {self.port}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                itsmd_argv("serve", *([] if self.config_less else ["-c", str(self.config_file)])), cwd=self.cwd,
                env=child_env({VIEWER_ENV: self.viewer_token} if self.auth else {}),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        return self.proc

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Spawn and wait until ready (sync). A port taken meanwhile by someone else is replaced."""
        for _ in range(3):
            self.spawn()
            if self.wait_ready(timeout):
                return
            self._pick_another_port()
        self.fail("could not find a free port")

    async def start_async(self, timeout: float = READY_TIMEOUT) -> None:
        """Like `start`, without blocking the event loop while waiting."""
        for _ in range(3):
            self.spawn()
            if await self.wait_ready_async(timeout):
                return
            self._pick_another_port()
        self.fail("could not find a free port")

    def _pick_another_port(self) -> None:
        if self.fixed_port or "address already in use" not in self.log().lower():
            self.fail("itsmd serve exited before it was ready")
        self.port = free_port()
        self.write_config()

    def _check_alive(self, deadline: float, timeout: float) -> bool:
        """False if the process exited (the caller decides); fails on the deadline."""
        if not self.running:
            return False
        if time.monotonic() > deadline:
            self.kill9()
            self.fail(f"GET /-/ready did not answer 200 within {timeout} s")
        return True

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> bool:
        """True once `GET /-/ready` is 200; False if the process exited first; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while self._check_alive(deadline, timeout):
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        return False

    async def wait_ready_async(self, timeout: float = READY_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
            while self._check_alive(deadline, timeout):
                try:
                    async with s.get(f"{self.url}/-/ready") as resp:
                        if resp.status == 200:
                            return True
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)
        return False

    def kill9(self) -> None:
        """SIGKILL and reap: a crash at whatever the daemon was doing."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(EXIT_TIMEOUT)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None and self.running, "not running"
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        """The exit code; kills and fails if the process is still running after `timeout`."""
        assert self.proc is not None, "not started"
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            self.fail(f"itsmd serve did not exit within {timeout} s")

    async def wait_exit_async(self, timeout: float = EXIT_TIMEOUT) -> int:
        assert self.proc is not None, "not started"
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                self.kill9()
                self.fail(f"itsmd serve did not exit within {timeout} s")
            await asyncio.sleep(0.02)
        return code

    def terminate(self, timeout: float = EXIT_TIMEOUT) -> int:
        """SIGTERM and wait: a graceful stop. Returns the exit code."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def restart(self, timeout: float = READY_TIMEOUT) -> None:
        """Stop gracefully if running (else just start, e.g. after `kill9`) and wait until ready."""
        if self.running:
            code = self.terminate()
            if code != 0:
                self.fail(f"itsmd serve exited {code} on SIGTERM")
        self.start(timeout)

    async def restart_async(self, timeout: float = READY_TIMEOUT) -> None:
        if self.running:
            self.signal(signal.SIGTERM)
            code = await self.wait_exit_async()
            if code != 0:
                self.fail(f"itsmd serve exited {code} on SIGTERM")
        await self.start_async(timeout)

    def close(self) -> None:
        """Kill the process if it still runs (finalizer)."""
        self.kill9()

    # --- looking inside ------------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def fail(self, message: str) -> NoReturn:
        tail = self.log()[-LOG_TAIL:]
        pytest.fail(f"{message}\n--- {self.log_file} (tail) ---\n{tail}", pytrace=False)

    def inbox_depth(self) -> int:
        """Deliveries waiting in the inbox, read from the database file; only while the daemon is down."""
        assert not self.running, "read the database only while the daemon is stopped"
        conn = sqlite3.connect(f"file:{self.database_file}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])
        finally:
            conn.close()


class Daemons:
    """Makes ServeProcesses under one folder and kills every one still running on `close` (the fixture)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[ServeProcess] = []

    def new(self, name: str = "itsmd", **kwargs: Any) -> ServeProcess:
        p = ServeProcess(self.root / name, **kwargs)
        self.made.append(p)
        return p

    def close(self) -> None:
        for p in self.made:
            p.close()

    def __enter__(self) -> Daemons:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


async def fetch_all_alerts(session: aiohttp.ClientSession, p: ServeProcess, **params: str) -> list[dict[str, Any]]:
    """Every alert, paging through `GET /api/v1/alerts?limit=1000` with `next_cursor`."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": "1000", **params, **({"cursor": cursor} if cursor else {})}
        async with session.get(f"{p.url}{ALERTS}", params=query, headers=p.viewer_headers()) as resp:
            if resp.status != 200:
                p.fail(f"GET {ALERTS} answered {resp.status}: {await resp.text()}")
            page = await resp.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def webhook_body(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """An Alertmanager webhook (format version 4) carrying `alerts`."""
    return {"version": "4", "status": "firing", "receiver": "itsmd", "groupKey": "{}:{}", "truncatedAlerts": 0,
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
            "alerts": alerts}


def firing_alert(labels: Mapping[str, str], starts_at: str | None = None) -> dict[str, Any]:
    """A firing alert as Alertmanager sends it; `startsAt` defaults to now."""
    starts_at = starts_at or datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"status": "firing", "labels": dict(labels), "annotations": {"summary": "test"},
            "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph",
            "fingerprint": "ignored"}
