"""Incoming alerts: one Alertmanager or Prometheus alert object checked and normalised, or rejected with a reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from itsmd.core.timestamp import parse_time


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


# Not frozen, on purpose: a frozen dataclass sets each field through object.__setattr__, and building these
# values was 17% of ingest CPU (bench/ingest A). They are values all the same: never assigned after
# construction (dataclasses.replace makes a changed copy).
@dataclass(slots=True)
class IncomingAlert:
    """One alert as delivered, normalised: labels without empty values, times in UTC."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: Status
    starts_at: datetime
    ends_at: datetime | None  # set when resolved
    expires_at: datetime | None  # firing alerts pushed with an endsAt resolve then unless refreshed
    generator_url: str


class Rejected(ValueError):
    """An alert object that cannot be accepted; the message is the quarantine reason."""


def _string_map(value: Any, what: str, drop_empty: bool) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Rejected(f"{what} must be an object")
    out: dict[str, str] = {}
    for name, item in value.items():
        if name == "":
            raise Rejected(f"{what}: empty name")
        if item is None:
            continue  # null becomes "" and is dropped, as Alertmanager does
        if not isinstance(item, str):
            raise Rejected(f"{what}[{name[:64]!r}]: value must be a string")
        if item or not drop_empty:
            out[name] = item
    return out


def _time(raw: Mapping[str, Any], key: str) -> datetime | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Rejected(f"{key} must be an RFC 3339 string")
    try:
        return parse_time(value)
    except ValueError as e:
        raise Rejected(f"{key}: {e}") from e


def _common(raw: Any) -> tuple[dict[str, str], dict[str, str], datetime | None, datetime | None, str]:
    if not isinstance(raw, dict):
        raise Rejected("alert must be an object")
    labels = _string_map(raw.get("labels"), "labels", drop_empty=True)
    if not labels:
        raise Rejected("at least one label pair required")
    annotations = _string_map(raw.get("annotations"), "annotations", drop_empty=False)
    url = raw.get("generatorURL") or ""
    if not isinstance(url, str):
        raise Rejected("generatorURL must be a string")
    return labels, annotations, _time(raw, "startsAt"), _time(raw, "endsAt"), url


def from_webhook(raw: Any, now: datetime) -> IncomingAlert:
    """An alert of an Alertmanager webhook (version 4); its own `status` decides."""
    labels, annotations, starts, ends, url = _common(raw)
    status = raw.get("status")
    if status not in (Status.FIRING, Status.RESOLVED, None):
        raise Rejected("status must be 'firing' or 'resolved'")
    if status is None:
        status = Status.RESOLVED if ends is not None and ends <= now else Status.FIRING
    starts = starts or ends or now
    if status == Status.FIRING:
        return IncomingAlert(labels, annotations, Status.FIRING, starts, None, None, url)
    ends = ends or now
    if ends < starts:
        raise Rejected("endsAt is before startsAt")
    return IncomingAlert(labels, annotations, Status.RESOLVED, starts, ends, None, url)


def from_push(raw: Any, now: datetime, resolve_timeout: float) -> IncomingAlert:
    """An alert pushed by Prometheus to /api/v2/alerts: an endsAt in the past resolves it, else it expires then."""
    labels, annotations, starts, ends, url = _common(raw)
    starts = starts or now
    ends_or_expiry = max(now, starts) + timedelta(seconds=resolve_timeout) if ends is None else ends
    if ends_or_expiry < starts:
        raise Rejected("start time must be before end time")
    if ends_or_expiry <= now:
        return IncomingAlert(labels, annotations, Status.RESOLVED, starts, ends_or_expiry, None, url)
    return IncomingAlert(labels, annotations, Status.FIRING, starts, None, ends_or_expiry, url)
