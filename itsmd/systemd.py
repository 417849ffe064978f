"""systemd's notify protocol: READY, STOPPING, STATUS and watchdog pings over $NOTIFY_SOCKET (a datagram)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger("itsmd.systemd")


class SystemdNotifier:
    """Sends notifications when started by systemd with Type=notify; does nothing otherwise."""

    def __init__(self, env: Mapping[str, str]) -> None:
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *lines: str) -> None:
        if not self._address:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            try:
                sock.sendto("\n".join(lines).encode(), self._address)
            except OSError as e:
                log.warning("systemd notification failed: %s", e)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    def reloading(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def start_watchdog(self, healthy: Callable[[], bool]) -> None:
        """Ping every half WATCHDOG_USEC while `healthy()`: a stuck event loop or writer stops the pings."""
        if self.watchdog_interval is None or not self._address:
            return
        interval = self.watchdog_interval

        async def ping() -> None:
            while True:
                if healthy():
                    self.notify("WATCHDOG=1")
                await asyncio.sleep(interval)

        self._task = asyncio.get_running_loop().create_task(ping(), name="itsmd-watchdog")

    async def stop_watchdog(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
