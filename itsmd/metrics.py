"""Self-observability: prometheus-client collectors on an injected registry (bounded label values only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

WRITER_ERRORS = ("unavailable", "failed", "stopped")  # the `error` label of itsmd_writer_errors_total


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._request_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self.requests = Counter(
            "itsmd_http_requests", "HTTP requests answered, by route and status code.",
            ["route", "code"], registry=r,
        )
        self.request_seconds = Histogram(
            "itsmd_http_request_duration_seconds", "Time to answer an HTTP request, by route.", ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r,
        )
        self.alerts_received = Counter(
            "itsmd_alerts_received", "Alerts in accepted request bodies, by source.", ["source"], registry=r
        )
        self.alerts_accepted = Counter(
            "itsmd_alerts_accepted", "Alerts committed to the inbox (answered 2xx), by source.", ["source"],
            registry=r,
        )
        self.alerts_quarantined = Counter(
            "itsmd_alerts_quarantined", "Single bad alerts kept aside with a reason, by source.", ["source"],
            registry=r,
        )
        self.truncated = Counter(
            "itsmd_alerts_truncated", "Alerts Alertmanager left out of webhooks (truncatedAlerts).", registry=r
        )
        self.episodes = Counter(
            "itsmd_alert_deliveries", "Delivered alerts by what they did to episodes "
            "(new, refreshed, resolved, duplicate_resolve, resolved_unseen, stale, expired).",
            ["outcome"], registry=r,
        )
        self.muted = Counter(
            "itsmd_alerts_muted", "Alerts that began firing under an active silence: stored, not correlated.",
            registry=r,
        )
        self.unmuted = Counter(
            "itsmd_alerts_unmuted", "Muted alerts still firing when their silence ended, then correlated.",
            registry=r,
        )
        self.write_batch = Histogram(
            "itsmd_writer_batch_size", "Writes committed together by the writer.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=r,
        )
        self.write_seconds = Histogram(
            "itsmd_writer_batch_duration_seconds", "Time to run and commit one writer batch.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5), registry=r,
        )
        self.inbox_lag = Gauge(
            "itsmd_inbox_lag_seconds", "Age of the oldest delivery the pipeline has not processed.", registry=r
        )
        self.inbox_depth = Gauge("itsmd_inbox_depth", "Deliveries waiting for the pipeline.", registry=r)
        self.stage_seconds = Histogram(
            "itsmd_pipeline_stage_duration_seconds", "Time one pipeline batch spent in a stage.", ["stage"],
            buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1), registry=r,
        )
        self.alerts_unmapped = Counter(
            "itsmd_alerts_unmapped", "Alerts that began firing and belong to no service of the catalogue, by the "
            "rule that routed them (empty: unrouted).", ["rule"], registry=r,
        )
        self.problem_decisions = Counter(
            "itsmd_problem_decisions", "Opened incidents by what they did to problems "
            "(attach, known_error, reopen, open, none).", ["decision"], registry=r,
        )
        self.pruned = Counter(
            "itsmd_retention_pruned", "Rows deleted by retention, by table.", ["table"], registry=r
        )
        self.pipeline_errors = Counter(
            "itsmd_pipeline_errors", "Pipeline batches that failed (retried).", registry=r
        )
        self.reconciliations = Counter(
            "itsmd_reconciliations", "Reconciliations with `alertmanagers` by result (ok; partial: some could not "
            "be read, nothing flagged; failed: none could be read).", ["result"], registry=r,
        )
        self.reconciled = Counter(
            "itsmd_reconciled_alerts", "Alerts reconciliation added (firing there, not here), revived (flagged "
            "stale here, firing there) or flagged stale (firing here, in no Alertmanager).", ["action"], registry=r,
        )
        self.alertmanager_reads = Counter(
            "itsmd_alertmanager_reads", "Reads of an Alertmanager's GET /api/v2/alerts by result (ok, error).",
            ["result"], registry=r,
        )

        self.pages = Counter(
            "itsmd_pages_total", "Page deliveries by event and outcome (sent, retry, failed).",
            ["event", "outcome"], registry=r,
        )
        self.paging_decisions = Counter(
            "itsmd_paging_decisions_total", "Paging decisions that paged, by outcome (paged, suppressed, timeline).",
            ["outcome"], registry=r,
        )
        self.config_ok = Gauge(
            "itsmd_config_last_reload_successful", "Whether the last configuration (re)load succeeded.", registry=r
        )
        self.config_time = Gauge(
            "itsmd_config_last_reload_success_timestamp_seconds", "When the configuration last loaded.", registry=r
        )
        # Playbook runs (issue 6): labels are playbook names and fixed reasons/states, never alert values.
        self.run_decisions = Counter(
            "itsmd_run_decisions_total", "Runs triggered, by playbook and decision (a state or a skip reason).",
            ["playbook", "decision"], registry=r,
        )
        self.runs_finished = Counter(
            "itsmd_runs_finished_total", "Runs that ended, by playbook and final state.", ["playbook", "state"],
            registry=r,
        )
        self.runs_executing = Gauge("itsmd_runs_executing", "Runs executing in this process now.", registry=r)
        self.automation_enabled = Gauge(
            "itsmd_automation_enabled", "1 when the persisted run-time automation switch is on.", registry=r
        )
        # Watching the watcher (issue 9): the writer failing, and playbooks whose circuit breaker holds them back.
        self.writer_errors = Counter(
            "itsmd_writer_errors_total", "Writes the writer (group commit) could not commit, by error: unavailable "
            "(the database cannot be reached, is locked or read-only: answered 503, retried), failed (the database "
            "refused the write), stopped (the writer is not running).", ["error"], registry=r,
        )
        for error in WRITER_ERRORS:
            self.writer_errors.labels(error)  # every series exists from the start, at 0, for increase()
        self.breaker_open = Gauge(
            "itsmd_circuit_breaker_open", "1 while a playbook's persisted circuit breaker is open or half-open (its "
            "runs are skipped, or one probe runs), 0 when closed; read from the database at each scrape.",
            ["playbook"], registry=r,
        )

        # Scale-out (issue 11): the role of this replica and how often it changed.
        self.leader = Gauge("itsmd_leader", "1 while this replica leads (pipeline, timers, reconciliation).",
                            registry=r)
        self.leadership_changes = Counter(
            "itsmd_leadership_changes_total", "Times this replica became leader or stepped down, by new role.",
            ["role"], registry=r,
        )

    def writer_error(self, error: str, writes: int) -> None:
        """Count writes the writer could not commit (called on the event loop)."""
        self.writer_errors.labels(error).inc(writes)

    def breakers(self, states: Mapping[str, str]) -> None:
        """The persisted breaker state of every playbook that has one (playbook -> closed | open | half_open)."""
        self.breaker_open.clear()
        for playbook, state in states.items():
            self.breaker_open.labels(playbook).set(0 if state == "closed" else 1)

    def config_loaded(self, ok: bool, at: float | None) -> None:
        self.config_ok.set(1 if ok else 0)
        if ok and at is not None:
            self.config_time.set(at)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count and time one answer; the labelled children are cached (looking them up costs per request)."""
        key = (route, status)
        pair = self._request_children.get(key)
        if pair is None:
            pair = (self.requests.labels(route, str(status)), self.request_seconds.labels(route))
            self._request_children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def count_delivery(self, source: str, accepted: int, quarantined: int, truncated: int) -> None:
        self.alerts_received.labels(source).inc(accepted + quarantined)
        self.alerts_accepted.labels(source).inc(accepted)
        if quarantined:
            self.alerts_quarantined.labels(source).inc(quarantined)
        if truncated:
            self.truncated.inc(truncated)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.write_batch.observe(size)
        self.write_seconds.observe(seconds)
