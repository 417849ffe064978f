"""A delivery: the alerts of one accepted request as stored in the inbox (compact JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from itsmd.core.alert import IncomingAlert, Status

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _us(when: datetime | None) -> int | None:
    return None if when is None else (when - _EPOCH) // _US


def _dt(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class Delivery:
    alerts: list[IncomingAlert]
    truncated: int = 0
    group_key: str | None = None
    rejected: list[tuple[str, Any]] = field(default_factory=list)  # (reason, raw alert): quarantined

    def encode(self) -> bytes:
        rows = [
            [a.labels, a.annotations, a.status == Status.FIRING, _us(a.starts_at), _us(a.ends_at),
             _us(a.expires_at), a.generator_url]
            for a in self.alerts
        ]
        return orjson.dumps({"a": rows, "t": self.truncated, "g": self.group_key})

    @staticmethod
    def decode(payload: bytes) -> Delivery:
        doc = orjson.loads(payload)
        alerts = []
        for labels, notes, firing, starts, ends, expires, url in doc["a"]:
            starts_at = _dt(starts)
            assert starts_at is not None
            alerts.append(IncomingAlert(
                labels, notes, Status.FIRING if firing else Status.RESOLVED,
                starts_at, _dt(ends), _dt(expires), url,
            ))
        return Delivery(alerts, doc.get("t", 0), doc.get("g"))
