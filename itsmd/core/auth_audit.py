"""Which authentication failures the audit log records: at most `limit` per `window` seconds, the rest counted.

A flood of bad tokens must not grow the log without bound, yet no failure goes unnoticed: the first recorded
failure after a suppressed stretch carries how many were left out (`suppressed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Admission:
    record: bool
    suppressed: int = 0  # failures left out since the last recorded one (reported with this one)


class AuthAuditBudget:
    """A fixed window: the first `limit` failures of each `window` are recorded."""

    def __init__(self, limit: int = 10, window: float = 60.0) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = timedelta(seconds=window)
        self._started: datetime | None = None
        self._recorded = 0
        self._suppressed = 0

    def admit(self, now: datetime) -> Admission:
        if self._started is None or now >= self._started + self.window or now < self._started:
            self._started, self._recorded = now, 0
        if self._recorded >= self.limit:
            self._suppressed += 1
            return Admission(False)
        self._recorded += 1
        suppressed, self._suppressed = self._suppressed, 0
        return Admission(True, suppressed)

    @property
    def pending(self) -> int:
        """Failures suppressed and not yet reported."""
        return self._suppressed
