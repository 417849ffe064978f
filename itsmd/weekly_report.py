"""The weekly report: at `reports.weekly.cron`, the last complete ISO week's summary (by service) and recurring
problems as Markdown, sent through `reports.weekly.notifier` and written to `reports.weekly.file`."""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from itsmd import report
from itsmd.client import report as formats
from itsmd.clock import Clock
from itsmd.config.model import Config
from itsmd.core.report import Dimension, Settings, previous_week
from itsmd.errors import NotifyError
from itsmd.notify import channel
from itsmd.notify.message import Message
from itsmd.storage.store import SqlStore

log = logging.getLogger("itsmd.report")
TIMEOUT = 30.0
NOISIEST = 10  # alert names listed


@dataclass(frozen=True)
class Outcome:
    markdown: str
    sent_to: str | None  # the notifier that took it
    written_to: Path | None


def _write(path: Path, text: str) -> None:
    """Replace `path` whole (a reader never sees half a report)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class WeeklyReport:
    def __init__(self, store: SqlStore, clock: Clock, config: Callable[[], Config],
                 settings: Callable[[], Settings]) -> None:
        self._store, self._clock, self._config, self._settings = store, clock, config, settings

    async def markdown(self) -> tuple[str, str]:
        """(the report, the period it covers as text)."""
        s, now = self._settings(), self._clock.now()
        p = previous_week(now, s.timezone)
        summary = await self._store.read(lambda conn: report.summary(conn, s, p, Dimension.SERVICE, now, NOISIEST))
        recurring = await self._store.read(lambda conn: report.recurring(conn, p))
        out = io.StringIO()
        formats.write("summary", summary, "markdown", out)
        out.write("\n")
        formats.write("recurring", recurring, "markdown", out)
        return out.getvalue(), f"{summary['from']} .. {summary['to']}"

    async def run(self, http: aiohttp.ClientSession | None) -> Outcome:
        config = self._config()
        text, period = await self.markdown()
        written = config.reports.weekly_file
        if written is not None:
            try:
                await asyncio.to_thread(_write, written, text)
            except OSError as e:
                log.warning("cannot write the weekly report to %s: %s", written, e)
                written = None
        sent = await self._send(config, http, text, period)
        log.info("weekly report made", extra={"period": period, "notifier": sent, "file": str(written)})
        return Outcome(text, sent, written)

    async def _send(self, config: Config, http: aiohttp.ClientSession | None, text: str, period: str) -> str | None:
        name = config.reports.weekly_notifier
        notifier = next((n for n in config.notifiers if n.name == name), None)
        if notifier is None or http is None:
            return None
        if not channel.takes(notifier.type, "report"):
            log.warning("notifier %s (%s) does not take reports", name, notifier.type)
            return None
        ch = channel.build(notifier, http, TIMEOUT)
        if ch is None:
            return None
        try:
            await ch.send(Message("report", f"week {period}", f"itsmd/report/{period}", report=text))
        except NotifyError as e:
            log.warning("the weekly report did not reach %s: %s", name, e)
            return None
        return notifier.name
