"""The database tables (the schema of record; migrations in `migrations/versions` create them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    text,
)

from itsmd.storage.types import JsonText, JsonValue, UtcDateTime

metadata = MetaData()

# SQLite autoincrements only an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
Id = BigInteger().with_variant(Integer(), "sqlite")

# Every accepted delivery, committed before the 200; the pipeline consumes and deletes rows in order.
inbox = Table(
    "inbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("source", String(16), nullable=False),
    Column("payload", LargeBinary(), nullable=False),  # normalised alerts, JSON (see pipeline.normalize)
)

MUTED_FIRING = text("muted_by IS NOT NULL AND status = 'firing'")

# One row per alert episode (a firing of one label set); at most one firing row per fingerprint.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fingerprint", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("labels", JsonText(), nullable=False),
    Column("annotations", JsonText(), nullable=False),
    Column("generator_url", JsonText(), nullable=False),
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime()),
    Column("expires_at", UtcDateTime()),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("occurrences", Integer(), nullable=False),
    Column("incident_id", Id),
    Column("symptom", String(16)),
    Column("muted_by", String(64)),
    Column("stale", Boolean(), nullable=False, server_default=text("false")),
    Column("flapping", Boolean(), nullable=False, server_default=text("false")),
    Column("rule", String(200)),  # the rule that routed it (null: unrouted)
    Column("key", JsonText()),  # its correlation key under that rule
    Column("key_hash", String(64)),  # sha256 of the key: indexable whatever the label values' size
    Index("alerts_one_firing", "fingerprint", unique=True, postgresql_where=text("status = 'firing'"),
          sqlite_where=text("status = 'firing'")),
    Index("alerts_fingerprint", "fingerprint", "id"),
    Index("alerts_status", "status", "id"),
    Index("alerts_incident", "incident_id"),
    Index("alerts_pending", "rule", "key_hash", "first_seen_at"),
    Index("alerts_expiry", "expires_at", postgresql_where=text("expires_at IS NOT NULL"),
          sqlite_where=text("expires_at IS NOT NULL")),
    Index("alerts_muted", "muted_by", postgresql_where=MUTED_FIRING, sqlite_where=MUTED_FIRING),
)

# `status || ''` where a query has a better index than (status, id): with status bound as a parameter, SQLite's
# planner (no statistics) prefers the (status, id) index and scans every firing alert, a cost that grows with the
# alerts firing. The expression leaves only the other index usable. Partial indexes need the literal instead
# (MUTED_FIRING).
ALERT_STATUS_UNINDEXED = alerts.c.status.concat("")

# Single alerts that could not be accepted inside an otherwise good body: kept with the reason.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("source", String(16), nullable=False),
    Column("reason", JsonText(), nullable=False),
    Column("alert", JsonValue(), nullable=False),
)

UNRESOLVED = text("state IN ('open', 'acknowledged')")

incidents = Table(
    "incidents",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("rule", String(200), nullable=False),
    Column("key", JsonText(), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("title", JsonText(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", String(2), nullable=False),
    Column("impact", String(8), nullable=False),
    Column("urgency", String(8), nullable=False),
    Column("service", String(200)),
    Column("owner", String(200)),
    Column("assignee", JsonText()),
    Column("labels", JsonText(), nullable=False),  # labels common to its alerts (template context)
    Column("alert_count", Integer(), nullable=False),
    Column("firing_count", Integer(), nullable=False),
    Column("detected_at", UtcDateTime(), nullable=False),
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("acknowledged_at", UtcDateTime()),
    Column("restored_at", UtcDateTime()),
    Column("resolved_at", UtcDateTime()),
    Column("closed_at", UtcDateTime()),
    Column("resolution", String(20)),
    Column("problem_id", BigInteger()),
    Column("signature", JsonText()),  # its problem signature (core.problem), fixed when it opened
    Column("signature_hash", String(64)),  # sha256 of the signature, indexable
    Column("previous_incident_id", BigInteger()),
    Column("reopen_count", Integer(), nullable=False),
    Column("flapping", Boolean(), nullable=False),
    Column("signal_lost", Boolean(), nullable=False),
    Column("resolve_at", UtcDateTime()),  # deadline: resolve (quiet policy) unless an alert fires again
    Column("close_at", UtcDateTime()),  # deadline: close a resolved incident
    Column("page_at", UtcDateTime()),  # deadline: decide about paging (itsmd.paging) at or after this
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("incidents_one_unresolved", "rule", "key_hash", unique=True,
          postgresql_where=UNRESOLVED, sqlite_where=UNRESOLVED),
    Index("incidents_key", "rule", "key_hash", "id"),
    Index("incidents_state", "state", "id"),
    Index("incidents_service", "service", "state", "id"),
    Index("incidents_signature", "signature_hash", "opened_at"),
    # Reports (0008): MTBF reads each service's intervals in start order from the index alone.
    Index("incidents_report_service", "service", "detected_at", "restored_at", "resolved_at", "state"),
    Index("incidents_problem", "problem_id", postgresql_where=text("problem_id IS NOT NULL"),
          sqlite_where=text("problem_id IS NOT NULL")),
    Index("incidents_resolve_at", "resolve_at", postgresql_where=text("resolve_at IS NOT NULL"),
          sqlite_where=text("resolve_at IS NOT NULL")),
    Index("incidents_close_at", "close_at", postgresql_where=text("close_at IS NOT NULL"),
          sqlite_where=text("close_at IS NOT NULL")),
    Index("incidents_page_at", "page_at", postgresql_where=text("page_at IS NOT NULL"),
          sqlite_where=text("page_at IS NOT NULL")),
)

PROBLEM_UNRESOLVED = text("state IN ('open', 'investigating', 'known_error')")

# Problems: recurring incidents of one signature; at most one unresolved problem per signature.
problems = Table(
    "problems",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("rule", String(200), nullable=False),
    Column("signature", JsonText(), nullable=False),
    Column("signature_hash", String(64), nullable=False),
    Column("title", JsonText(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("owner", JsonText()),
    Column("incident_count", Integer(), nullable=False),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("known_error", JsonText()),  # null | {root_cause, workaround, playbook}
    Column("opened_at", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime()),
    Column("closed_at", UtcDateTime()),
    Column("reopen_count", Integer(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("problems_one_unresolved", "signature_hash", unique=True,
          postgresql_where=PROBLEM_UNRESOLVED, sqlite_where=PROBLEM_UNRESOLVED),
    Index("problems_signature", "signature_hash", "id"),
    Index("problems_state", "state", "id"),
)

# The append-only timeline of every incident and problem, hash-chained (prev_hash, hash) for the audit.
events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("entity", String(16), nullable=False),  # incident | problem | run | config ...
    Column("entity_id", BigInteger()),
    Column("actor", JsonText(), nullable=False),
    Column("action", String(40), nullable=False),
    Column("reason", JsonText(), nullable=False),
    Column("data", JsonText(), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("events_entity", "entity", "entity_id", "id"),
)

# Silences and maintenance windows (core.silence); expired ones are kept for the audit. `seq` orders the listing,
# `id` is the public opaque id (a UUID, or `config:<hash>` for the windows declared in itsmd.yaml).
silences = Table(
    "silences",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("origin", String(16), nullable=False),  # api | config
    Column("matchers", JsonText(), nullable=False),  # the matcher texts, normalised
    Column("starts_at", UtcDateTime()),  # null: in force from the beginning (config windows without a start)
    Column("ends_at", UtcDateTime()),  # null: a recurring silence without an end
    Column("schedule", JsonText()),  # cron expression of a recurring silence
    Column("timezone", String(64)),  # the schedule's zone
    Column("duration", Float()),  # seconds each recurring window lasts
    Column("created_by", JsonText(), nullable=False),
    Column("comment", JsonText(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("expired_at", UtcDateTime()),  # when DELETE (or removal from the config) ended it
)

PAGE_PENDING = text("state = 'pending'")
PAGING_OUTSTANDING = text("outstanding IS NOT NULL")

# The durable outbox of pages: one row per page and notifier, written in the transaction that decided it; the
# sender delivers pending rows with retries. `key` makes a decision idempotent (incident, cycle, cause, sequence,
# notifier). Rows are kept (sent, failed, suppressed) for the hourly budget and the audit.
pages = Table(
    "pages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(400), nullable=False, unique=True),
    Column("incident_id", BigInteger()),  # null: the hourly summary
    Column("cycle", Integer(), nullable=False),  # the incident's reopen_count when decided
    Column("event", String(16), nullable=False),  # escalate | resolve | acknowledge | summary
    Column("cause", String(32), nullable=False),
    Column("reason", JsonText(), nullable=False),
    Column("notifier", String(200)),  # null: a page held back by the budget (no one to send it to)
    Column("state", String(16), nullable=False),  # pending | sent | failed | suppressed
    Column("attempts", Integer(), nullable=False),
    Column("next_attempt_at", UtcDateTime()),  # deadline of a pending row
    Column("last_error", JsonText()),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime()),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("pages_due", "next_attempt_at", postgresql_where=PAGE_PENDING, sqlite_where=PAGE_PENDING),
    Index("pages_incident", "incident_id", "id"),
    Index("pages_created", "event", "created_at"),
)

# Paging state of each incident that was ever considered: the current cycle, its causes paged, and whether its
# humans still wait for a resolution (`outstanding`: paged | acknowledged; null: nothing to tell).
paging = Table(
    "paging",
    metadata,
    Column("incident_id", BigInteger(), primary_key=True, autoincrement=False),
    Column("cycle", Integer(), nullable=False),
    Column("since", UtcDateTime(), nullable=False),  # the cycle began (opened or reopened)
    Column("causes", JsonText(), nullable=False),  # causes paged this cycle
    Column("pages", Integer(), nullable=False),  # pages sent this cycle, repeats included
    Column("last_paged_at", UtcDateTime()),
    Column("notifiers", JsonText(), nullable=False),  # the notifiers paged this cycle (told of the resolution)
    Column("outstanding", String(16)),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("paging_outstanding", "outstanding", postgresql_where=PAGING_OUTSTANDING,
          sqlite_where=PAGING_OUTSTANDING),
)

RUN_ACTIVE = text("state IN ('pending', 'awaiting_approval', 'running')")

# Playbook runs (DESIGN §1.3 run): durable rows with a lease; `idempotency_key` makes one run per incident
# trigger and target (manual runs carry a unique key of their own). `context` is the template data the trigger
# saw (labels, params), so a run resumed after a crash acts on the same values.
runs = Table(
    "runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("playbook", String(200), nullable=False),
    Column("incident_id", BigInteger()),
    Column("target", JsonText()),
    Column("state", String(20), nullable=False),
    Column("reason", JsonText()),
    Column("dry_run", Boolean(), nullable=False),
    Column("trigger", String(20), nullable=False),  # opened | reopened | manual | known_error
    Column("cycle", Integer(), nullable=False),  # the incident's reopen_count when the run was made
    Column("requested_by", JsonText(), nullable=False),
    Column("approved_by", JsonText()),
    Column("context", JsonText(), nullable=False),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("lease_owner", String(64)),
    Column("lease_until", UtcDateTime()),
    Column("deadline", UtcDateTime()),  # the run's `timeout` from its start: past it, the run is timed_out
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime()),
    Column("finished_at", UtcDateTime()),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("runs_incident", "incident_id", "id"),
    Index("runs_playbook", "playbook", "target", "created_at"),
    Index("runs_state", "state", "id"),
    Index("runs_active", "playbook", "target", postgresql_where=RUN_ACTIVE, sqlite_where=RUN_ACTIVE),
)

# The steps of a run in order (`seq`; on_failure steps follow the main ones), created with the run.
run_steps = Table(
    "run_steps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", BigInteger(), nullable=False),
    Column("seq", Integer(), nullable=False),
    Column("phase", String(16), nullable=False),  # main | on_failure
    Column("name", JsonText(), nullable=False),
    Column("kind", String(20), nullable=False),  # exec | http | wait_resolved | sleep | notify | silence
    Column("idempotent", Boolean(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempt", Integer(), nullable=False),
    Column("exit_code", Integer()),
    Column("status", Integer()),
    Column("output", JsonText()),  # capped text
    Column("result", JsonText()),  # parsed JSON output (steps.<name>.json), capped
    Column("started_at", UtcDateTime()),
    Column("finished_at", UtcDateTime()),
    Index("run_steps_run", "run_id", "seq", unique=True),
)

# Run-time settings that survive restarts: the automation switch (`automation.enabled`, default on).
settings = Table(
    "settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", JsonText(), nullable=False),
    Column("updated_by", JsonText(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Circuit breakers, one row per playbook: `state` closed | open | half_open; `failures` are the times of the
# failures that count (within the window), `opened_at` when it opened.
breakers = Table(
    "breakers",
    metadata,
    Column("playbook", String(200), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("failures", JsonText(), nullable=False),
    Column("opened_at", UtcDateTime()),
    Column("updated_at", UtcDateTime(), nullable=False),
)
