"""Periodic ticks (APScheduler); every deadline itself lives in the database, ticks only look for due work."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from itsmd.errors import StorageError

log = logging.getLogger("itsmd.scheduler")

Tick = Callable[[], Awaitable[object]]


class Scheduler:
    def __init__(self) -> None:
        self._aps = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})

    def every(self, seconds: float, name: str, tick: Tick) -> None:
        async def run() -> None:
            try:
                await tick()
            except StorageError as e:
                log.warning("tick %s failed, will run again: %s", name, e)

        self._aps.add_job(run, "interval", seconds=seconds, id=name, name=name)

    def cron(self, expression: str, timezone: str, name: str, tick: Tick) -> None:
        """`tick` at the times of a 5-field cron expression, read in `timezone`."""
        async def run() -> None:
            try:
                await tick()
            except StorageError as e:
                log.warning("job %s failed: %s", name, e)

        trigger = CronTrigger.from_crontab(expression, timezone=timezone)
        self._aps.add_job(run, trigger, id=name, name=name)

    def start(self) -> None:
        self._aps.start()

    def stop(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)
