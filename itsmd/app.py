"""The composition root: the one place that builds and wires every part of the daemon."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from dataclasses import dataclass

from aiohttp import web

from itsmd.clock import Clock, SystemClock
from itsmd.config import Config
from itsmd.metrics import Metrics
from itsmd.pipeline.worker import PipelineWorker
from itsmd.scheduler import Scheduler
from itsmd.storage.database import DaemonLock, migrate, open_database, sqlite_file
from itsmd.storage.store import SqlStore
from itsmd.web.auth import Authenticator, Credential
from itsmd.web.context import WebContext
from itsmd.web.server import build_app

log = logging.getLogger("itsmd")


@dataclass(frozen=True)
class Timers:
    """Intervals of the daemon's own housekeeping, in seconds (tests shorten them)."""

    expiry_tick: float = 5.0
    pipeline_poll: float = 1.0
    shutdown_grace: float = 10.0


def authenticator(config: Config) -> Authenticator:
    tokens = config.auth.tokens if config.auth else ()
    return Authenticator([Credential(t.name, t.role, t.sha256) for t in tokens])


class Daemon:
    def __init__(self, config: Config, clock: Clock | None = None, timers: Timers | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.timers = timers or Timers()
        self.metrics = Metrics()
        self.db = open_database(
            config.database,
            sqlite_synchronous=config.storage.sqlite_synchronous,
            pool_size=config.storage.pool_size,
            busy_timeout=config.storage.busy_timeout,
        )
        path = sqlite_file(self.db)
        self.lock = DaemonLock(path) if path else None
        self.store = SqlStore(self.db, readers=config.storage.pool_size)
        self.store.writer.on_batch = self.metrics.observe_batch
        self.pipeline = PipelineWorker(
            self.store, self.clock, self.metrics,
            batch=config.ingest.pipeline_batch, idle_poll=self.timers.pipeline_poll,
        )
        self.scheduler = Scheduler()
        self._ready = False
        self.app = build_app(
            WebContext(
                store=self.store,
                clock=self.clock,
                metrics=self.metrics,
                authenticator=authenticator(config),
                wake_pipeline=self.pipeline.wake,
                max_alerts_per_request=config.limits.max_alerts_per_request,
                resolve_timeout=config.ingest.resolve_timeout,
                ready=lambda: self._ready,
            ),
            max_body_bytes=config.limits.max_body_bytes,
        )
        self._runner: web.AppRunner | None = None

    async def start_core(self) -> None:
        """Everything but the listening socket: lock, migrations, writer, pipeline, ticks."""
        if self.lock is not None:
            self.lock.acquire()
        try:
            await asyncio.to_thread(migrate, self.db)
        except BaseException:
            self._release()
            raise
        await self.store.start()
        self.pipeline.start()
        self.pipeline.wake()  # deliveries left in the inbox by a crash are processed first
        self.scheduler.every(self.timers.expiry_tick, "expire-pushed-alerts", self.pipeline.expire_due)
        self.scheduler.start()
        self._ready = True

    async def start(self) -> None:
        await self.start_core()
        self._runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=self.timers.shutdown_grace, handle_signals=False
        )
        await self._runner.setup()
        listen, tls = self.config.listen, self.config.tls
        context = None
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls.cert_file, tls.key_file)
        site = web.TCPSite(self._runner, listen.host, listen.port, ssl_context=context, backlog=1024)
        await site.start()
        log.info("listening on %s:%d", listen.host, listen.port)

    async def stop(self) -> None:
        """Stop listening, let in-flight requests commit, drain the writer, release the lock."""
        self._ready = False
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.scheduler.stop()
        await self.pipeline.stop()
        await self.store.stop()
        self.db.engine.dispose()
        self._release()

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT."""
    daemon = Daemon(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await daemon.start()
    try:
        await stop.wait()
        log.info("stopping")
    finally:
        await daemon.stop()
    log.info("stopped")
