"""The composition root: the one place that builds and wires every part of the daemon."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import aiohttp
from aiohttp import web
from sqlalchemy import Connection

from itsmd import approval, incident_actions, paging, report
from itsmd.actions.exec import Executor
from itsmd.actions.http import HttpCaller
from itsmd.actions.notify import StepNotifier
from itsmd.actions.silence import Silencer
from itsmd.clock import Clock, SystemClock
from itsmd.config import Config
from itsmd.config.routing import load_routing
from itsmd.core.leadership import Role
from itsmd.errors import ConfigError, StartupError, StorageError
from itsmd.leadership import Leadership, LeadershipTimers
from itsmd.metrics import Metrics
from itsmd.notify.outbox import Outbox, Retry
from itsmd.pipeline.remediate import Switches
from itsmd.pipeline.worker import PipelineWorker
from itsmd.reconciliation import Reconciler
from itsmd.reload import restart_needed
from itsmd.runner.kinds import Actions
from itsmd.runner.runner import Runner, RunnerTimers
from itsmd.scheduler import Scheduler
from itsmd.storage import events, inbox, retention, silences
from itsmd.storage.database import DaemonLock, migrate, open_database, sqlite_file
from itsmd.storage.events import reload_event
from itsmd.storage.store import SqlStore
from itsmd.systemd import SystemdNotifier
from itsmd.web.auth import Authenticator, Credential
from itsmd.web.connection import ConnectionLimits, GuardedSite
from itsmd.web.context import WebContext
from itsmd.web.server import build_app
from itsmd.weekly_report import Outcome as WeeklyOutcome
from itsmd.weekly_report import WeeklyReport

log = logging.getLogger("itsmd")


@dataclass(frozen=True)
class Timers:
    """Intervals of the daemon's own housekeeping, in seconds (tests shorten them)."""

    expiry_tick: float = 5.0
    retention_tick: float = 300.0
    deadline_tick: float = 5.0
    retention_batch: int = 1000
    pipeline_poll: float = 1.0
    shutdown_grace: float = 3.0  # in-flight requests need milliseconds; an idle keep-alive must not hold the exit
    pages: Retry = field(default_factory=Retry)  # the outbox sender: backoff, attempts, delivery timeout, poll
    page_summary_delay: float = 60.0  # the hourly summary page waits this long to count the rest of a storm
    page_batch: int = 25  # incidents per paging transaction (short, so ingest commits in between)
    page_chunks: int = 40  # paging transactions per tick at most
    run_lease: float = 30.0  # playbook runs: a claim's lease (another replica takes an orphan after it)
    run_renew: float = 10.0
    run_poll: float = 5.0  # claims without a wake-up (expired leases, runs created by other replicas)
    wait_poll: float = 0.5  # wait_resolved steps look at their incident this often
    approval_tick: float = 5.0  # runs awaiting approval past their deadline end `expired` (itsmd.approval)
    leadership: LeadershipTimers = field(default_factory=LeadershipTimers)  # replicas on PostgreSQL

    @classmethod
    def of(cls, config: Config) -> Timers:
        """The defaults with the `scaleout:` settings of `config` (what `itsmd serve` runs with)."""
        so = config.scaleout
        return cls(run_lease=so.run_lease, run_renew=so.run_renew, run_poll=so.run_poll,
                   pages=Retry(lease=so.page_lease),
                   leadership=LeadershipTimers(so.leader_retry, so.leader_heartbeat, so.leader_timeout))


def tune_collector() -> None:
    """Once started: objects alive now live for the whole run, so the collector stops scanning them again and
    again, and the young generation is collected less often (each delivery allocates many short-lived objects)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def switches(config: Config) -> Switches:
    return Switches(enabled=config.automation.enabled, dry_run=config.automation.dry_run)


def authenticator(config: Config) -> Authenticator:
    tokens = config.auth.tokens if config.auth else ()
    return Authenticator([Credential(t.name, t.role, t.sha256) for t in tokens])


class Daemon:
    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        timers: Timers | None = None,
        loader: Callable[[], Config] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.env = dict(os.environ if env is None else env)  # what exec steps may inherit (an allowlist of it)
        self.clock = clock or SystemClock()
        self.timers = timers or Timers()
        self._loader = loader
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
        self.store.writer.on_error = self.metrics.writer_error
        self.pipeline = PipelineWorker(
            self.store, self.clock, self.metrics,
            batch=config.ingest.pipeline_batch, batch_bytes=config.ingest.pipeline_batch_bytes,
            batch_new=config.ingest.pipeline_batch_new,
            idle_poll=self.timers.pipeline_poll,
            routing=load_routing(config), close_after=config.incidents.close_after,
        )
        self.pipeline.switches = switches(config)
        self.runner = Runner(
            self.store, self.clock, self.metrics, lambda: self.pipeline.routing.playbooks,
            lambda: self.config.automation.max_concurrent_runs,
            RunnerTimers(self.timers.run_lease, self.timers.run_renew, self.timers.run_poll, self.timers.wait_poll),
        )
        self.pipeline.runs_created = self.runner.wake
        self.scheduler = Scheduler()
        self.reconciler = Reconciler(self.store, self.clock, self.metrics, lambda: self.config,
                                     wake_pipeline=self.pipeline.wake, poll=self.timers.pipeline_poll)
        self.http: aiohttp.ClientSession | None = None  # outgoing HTTP (Alertmanager API), made at start
        self.outbox = Outbox(self.store, self.clock, self.metrics, lambda: self.config, self.timers.pages)
        self.weekly = WeeklyReport(self.store, self.clock, lambda: self.config, self.report_settings)
        # Scale-out: on PostgreSQL replicas share the database and one of them leads (pipeline, ticks,
        # reconciliation); on SQLite the daemon lock keeps others away and this daemon leads.
        self.leadership = None if self.db.is_sqlite else Leadership(
            config.database, self.lead, self.follow, self.metrics, self.timers.leadership)
        self.outbox.shared = self.leadership is not None
        if self.leadership is None:
            self.metrics.leader.set(1)
        self._ready = False
        self.web = WebContext(
            store=self.store,
            clock=self.clock,
            metrics=self.metrics,
            authenticator=authenticator(config),
            wake_pipeline=self.pipeline.wake,
            max_alerts_per_request=config.limits.max_alerts_per_request,
            resolve_timeout=config.ingest.resolve_timeout,
            ready=lambda: self._ready,
            close_after=lambda: self.config.incidents.close_after,
            reload=self.reload if loader else None,
            release_muted=self.pipeline.release,
            reconcile=self.reconciler.request,
            routing=lambda: self.pipeline.routing,
            switches=lambda: self.pipeline.switches,
            wake_runner=self.runner.wake,
            cancel_run=self.runner.cancel,
            body_timeout=config.limits.body_timeout,
            report_settings=self.report_settings,
            role=lambda: self.role,
        )
        self.app = build_app(self.web, max_body_bytes=config.limits.max_body_bytes)
        self._runner: web.AppRunner | None = None

    @property
    def healthy(self) -> bool:
        """The event loop runs (we are here) and the writer task is alive."""
        return self._ready and self.store.writer.alive

    async def open_store(self) -> None:
        """Lock, migrations, writer and the declared silences: the store ready for the pipeline."""
        if self.lock is not None:
            self.lock.acquire()
        try:
            await asyncio.to_thread(migrate, self.db)
        except BaseException:
            self._release()
            raise
        await self.store.start()
        try:
            await self.declare_silences(self.config)  # before the pipeline: its first batch sees them
        except BaseException:
            await self.store.stop()
            self._release()
            raise

    async def start_core(self) -> None:
        """Everything but the listening socket: lock, migrations, writer, outbox, runner, and the leader duties
        (at once on SQLite; on PostgreSQL when this replica takes the leader lock)."""
        await self.open_store()
        self.http = aiohttp.ClientSession()
        if self.leadership is None:
            await self.lead()
        self.outbox.start(self.http)  # pages left pending by a crash are sent first
        self.runner.actions = Actions(
            Executor(self.env), HttpCaller(self.http, self.env),
            notifier=StepNotifier(self.store, self.clock, lambda: self.config.notifiers, self.outbox.wake),
            silencer=Silencer(self.http, lambda: self.config.alertmanagers, self.clock))
        # On SQLite the daemon lock proves no other runner alive: runs a crash left `running` are recovered now.
        await self.runner.start(orphans_now=self.lock is not None or self.db.in_memory)
        if self.leadership is not None:
            self.leadership.start()
        self.metrics.config_loaded(True, self.clock.now().timestamp())
        self._ready = True

    @property
    def role(self) -> Role:
        return Role.LEADER if self.leadership is None else self.leadership.role

    async def lead(self) -> None:
        """Begin the leader duties: the pipeline from the oldest delivery left in the inbox, reconciliation once
        those are processed, and the ticks."""
        inbox_up_to = await self.store.read(inbox.last_id)  # reconciliation waits until these are processed
        assert self.http is not None
        self.pipeline.firing.clear()  # another leader may have changed episodes meanwhile
        self.pipeline.start()
        self.pipeline.wake()  # deliveries left in the inbox (by a crash, or a leader gone) are processed first
        self.reconciler.start(self.http, inbox_up_to)
        self.scheduler = Scheduler()
        self.scheduler.every(self.timers.deadline_tick, "paging", self.page)
        self.scheduler.every(self.timers.expiry_tick, "expire-pushed-alerts", self.pipeline.expire_due)
        self.scheduler.every(self.timers.retention_tick, "retention", self.prune)
        self.scheduler.every(self.timers.deadline_tick, "incident-deadlines", self.run_deadlines)
        self.scheduler.every(self.timers.deadline_tick, "silence-ends", self.pipeline.release_due)
        self.scheduler.every(self.timers.approval_tick, "approval-expiry", self.expire_approvals)
        if self.config.reports.weekly_cron:  # read at start: a reload does not move it
            self.scheduler.cron(self.config.reports.weekly_cron, self.config.reports.timezone, "weekly-report",
                                self.weekly_report)
        self.scheduler.start()

    async def follow(self) -> None:
        """End the leader duties (the replica lost its lock, or stops)."""
        self.scheduler.stop()
        await self.reconciler.stop()
        await self.pipeline.stop()

    async def start(self) -> None:
        await self.start_core()
        limits = self.config.limits
        self._runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=self.timers.shutdown_grace, handle_signals=False,
            keepalive_timeout=limits.keepalive_timeout,
        )
        await self._runner.setup()
        listen, tls = self.config.listen, self.config.tls
        context = None
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(tls.cert_file, tls.key_file)
        site = GuardedSite(self._runner, listen.host, listen.port, ssl_context=context, backlog=1024,
                           limits=ConnectionLimits(limits.header_timeout, limits.max_connections_per_source))
        try:
            await site.start()
        except OSError as e:
            await self.stop()
            raise StartupError(f"cannot listen on {listen}: {e.strerror or e}") from e
        log.info("listening", extra={"address": str(listen), "tls": tls is not None})

    async def tick(self) -> None:
        """Every deadline tick of start_core once, in its order (retention aside): what `itsmd test` and `itsmd
        replay` run each time they move their fake clock, so they see what the daemon would."""
        await self.pipeline.expire_due()
        await self.run_deadlines()
        await self.expire_approvals()
        await self.pipeline.release_due()

    async def reload(self, actor: str = "system") -> list[str]:
        """Reload (below) and record the outcome in the audit log; returns the problems."""
        problems = await self._reload()
        path = str(self.config.path) if self.config.path else None
        record = reload_event(self.clock.now(), actor, path, problems)
        try:
            await self.store.write(lambda conn: events.append(conn, [record]))
        except StorageError as e:
            log.warning("could not audit the reload: %s", e)
        return problems

    async def _reload(self) -> list[str]:
        """Load the configuration again, rules and services included; adopt it whole or not at all. Returns the
        problems."""
        assert self._loader is not None
        routing = None
        try:
            new = await asyncio.to_thread(self._loader)
            problems = restart_needed(self.config, new)
            routing = await asyncio.to_thread(load_routing, new)
        except ConfigError as e:
            problems = e.problems
        if problems:
            self.metrics.config_loaded(False, None)
            log.warning("reload failed; the running configuration is kept", extra={"problems": problems})
            return problems
        assert routing is not None
        try:
            await self.declare_silences(new)
        except StorageError as e:
            self.metrics.config_loaded(False, None)
            log.warning("reload failed; the running configuration is kept", extra={"error": str(e)})
            return [f"{new.path or '(defaults)'}: silences: cannot store them: {e}"]
        self.config = new
        self.pipeline.routing = routing
        self.pipeline.switches = switches(new)
        self.pipeline.close_after = new.incidents.close_after
        self.web.authenticator = authenticator(new)
        self.web.max_alerts_per_request = new.limits.max_alerts_per_request
        self.web.resolve_timeout = new.ingest.resolve_timeout
        logging.getLogger().setLevel(new.log.level.upper())
        self.metrics.config_loaded(True, self.clock.now().timestamp())
        log.info("configuration reloaded")
        try:
            await self.pipeline.release_due()  # alerts of windows removed or changed, with the new rules
        except StorageError as e:
            log.warning("releasing alerts of ended silences failed; the next tick retries: %s", e)
        return []

    async def declare_silences(self, config: Config) -> None:
        """Store the maintenance windows `config` declares, replacing the declared set in one transaction."""
        work = partial(silences.replace_config, declared=config.silences, now=self.clock.now())
        added, ended = await self.store.write(work)
        if added or ended:
            log.info("declared silences stored", extra={"added": added, "ended": ended})

    def report_settings(self) -> report.Settings:
        return report.settings(self.config, self.pipeline.routing.rules)

    async def weekly_report(self) -> WeeklyOutcome:
        return await self.weekly.run(self.http)

    async def run_deadlines(self) -> int:
        """Stale alerts and signal loss; quiet resolutions; closing resolved incidents after close_after."""
        now, incs = self.clock.now(), self.config.incidents
        candidates = await self.store.read(partial(incident_actions.stale_candidates, now=now,
                                                   stale_after=incs.stale_after))

        def work(conn: Connection) -> int:
            stale = incident_actions.signal_check(conn, now, incs.stale_after, candidates)
            return incident_actions.deadlines(conn, now, incs.close_after) + stale

        return await self.store.write(work)

    async def expire_approvals(self) -> int:
        """Runs awaiting approval past their deadline end `expired`; the pager is asked to look at once."""
        now, book = self.clock.now(), self.pipeline.routing.playbooks.by_name
        ended = await self.store.write(partial(approval.expire_due, now=now, playbook=book))
        for row in ended:
            self.metrics.runs_finished.labels(row["playbook"], row["state"]).inc()
        return len(ended)

    async def page(self) -> paging.Review:
        """The paging tick: decide about due incidents, write their pages to the outbox, wake the sender."""
        settings = paging.Settings(
            rules=self.pipeline.routing.rules, notifiers=self.config.notifiers,
            max_pages_per_hour=self.config.automation.max_pages_per_hour, recheck=self.timers.deadline_tick,
            summary_delay=self.timers.page_summary_delay)
        # Small transactions, one after another: ingest commits get between them (a storm's tick would else hold
        # the writer for long); at most page_chunks of them per tick, the rest next tick.
        done = paging.Review()
        for _ in range(self.timers.page_chunks):
            chunk = await self.store.write(partial(paging.review, now=self.clock.now(), settings=settings,
                                                   limit=self.timers.page_batch))
            done = done.add(chunk)
            if chunk.due < self.timers.page_batch and chunk.closed_out < self.timers.page_batch:
                break
        for outcome, n in (("paged", done.paged), ("suppressed", done.suppressed), ("timeline", done.timeline_only)):
            if n:
                self.metrics.paging_decisions.labels(outcome).inc(n)
        if done.paged or done.suppressed or done.closed_out:
            self.outbox.wake()
        return done

    async def prune(self) -> int:
        """Apply `retention:`; one small transaction per batch, so ingest commits in between."""
        now, total = self.clock.now(), 0
        jobs = (
            ("alerts", retention.prune_alerts, now - timedelta(seconds=self.config.retention.alerts)),
            ("quarantine", retention.prune_quarantine, now - timedelta(seconds=self.config.retention.alerts)),
        )
        for table, prune, cutoff in jobs:
            while True:
                n = await self.store.write(partial(prune, cutoff=cutoff, limit=self.timers.retention_batch))
                self.metrics.pruned.labels(table).inc(n)
                total += n
                if n < self.timers.retention_batch:
                    break
        return total

    async def stop(self) -> None:
        """Stop listening, let in-flight requests commit, drain the writer, release the lock."""
        self._ready = False
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.leadership is not None:
            await self.leadership.stop()  # ends the leader duties if it held them
        self.scheduler.stop()
        await self.runner.stop()
        await self.reconciler.stop()
        await self.outbox.stop()
        if self.http is not None:
            await self.http.close()
            self.http = None
        await self.pipeline.stop()
        await self.store.stop()
        self.db.engine.dispose()
        self._release()

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()


async def serve(config: Config, loader: Callable[[], Config], env: Mapping[str, str]) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads the configuration."""
    daemon = Daemon(config, timers=Timers.of(config), loader=loader, env=env)
    systemd = SystemdNotifier(env)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[list[str]]] = set()

    def on_hup() -> None:
        task = loop.create_task(daemon.reload("SIGHUP"))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    await daemon.start()
    tune_collector()
    systemd.ready(f"listening on {config.listen}")
    systemd.start_watchdog(lambda: daemon.healthy)
    try:
        await stop.wait()
        log.info("stopping")
        systemd.stopping()
    finally:
        await systemd.stop_watchdog()
        await daemon.stop()
    log.info("stopped")
