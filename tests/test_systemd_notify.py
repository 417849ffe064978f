"""systemd notify protocol against a real datagram socket (what systemd listens on)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from itsmd.systemd import SystemdNotifier


def listener(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(2)
    return s


def test_ready_and_stopping(tmp_path: Path) -> None:
    sock = listener(tmp_path / "notify")
    n = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    n.ready("listening on 127.0.0.1:1")
    assert sock.recv(4096).decode().splitlines() == ["READY=1", "STATUS=listening on 127.0.0.1:1"]
    n.stopping()
    assert sock.recv(4096).decode().startswith("STOPPING=1")


def test_abstract_socket_address() -> None:
    name = f"itsmd-test-{id(object())}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(2)
    SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).ready("ok")
    assert s.recv(4096).startswith(b"READY=1")


async def test_watchdog_pings_only_while_healthy(tmp_path: Path) -> None:
    sock = listener(tmp_path / "notify")
    sock.setblocking(False)
    n = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "100000"})
    assert n.watchdog_interval == 0.05
    healthy = True
    n.start_watchdog(lambda: healthy)
    await asyncio.sleep(0.3)
    pings = []
    while True:
        try:
            pings.append(sock.recv(4096))
        except BlockingIOError:
            break
    assert len(pings) >= 3 and set(pings) == {b"WATCHDOG=1"}
    healthy = False
    await asyncio.sleep(0.2)
    try:
        sock.recv(4096)
        extra = 1
    except BlockingIOError:
        extra = 0
    await asyncio.sleep(0.2)
    late = 0
    while True:
        try:
            sock.recv(4096)
            late += 1
        except BlockingIOError:
            break
    await n.stop_watchdog()
    assert extra + late <= 1  # at most one ping was already on its way when it turned unhealthy


def test_without_notify_socket_nothing_happens() -> None:
    n = SystemdNotifier({})
    assert not n.enabled and n.watchdog_interval is None
    n.ready("x")  # no error
