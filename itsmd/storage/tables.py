"""The database tables (the schema of record; migrations in `migrations/versions` create them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    text,
)

from itsmd.storage.types import JsonText, UtcDateTime

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
    Column("incident_id", String(32)),
    Column("symptom", String(16)),
    Column("muted_by", String(64)),
    Column("stale", Boolean(), nullable=False, server_default=text("false")),
    Column("flapping", Boolean(), nullable=False, server_default=text("false")),
    Index("alerts_one_firing", "fingerprint", unique=True, postgresql_where=text("status = 'firing'"),
          sqlite_where=text("status = 'firing'")),
    Index("alerts_fingerprint", "fingerprint", "id"),
    Index("alerts_status", "status", "id"),
    Index("alerts_incident", "incident_id"),
    Index("alerts_expiry", "expires_at", postgresql_where=text("expires_at IS NOT NULL"),
          sqlite_where=text("expires_at IS NOT NULL")),
)

# Single alerts that could not be accepted inside an otherwise good body: kept with the reason.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("source", String(16), nullable=False),
    Column("reason", JsonText(), nullable=False),
    Column("alert", JsonText(), nullable=False),
)
