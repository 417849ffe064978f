"""RFC 3339 times as Alertmanager writes them: 0-9 fraction digits, any offset, Go's zero time = "none"."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII
)
_GO_ZERO_YEAR = 1


@lru_cache(maxsize=16384)  # deliveries repeat the same startsAt strings again and again
def parse_time(text: str) -> datetime | None:
    """A UTC datetime (microseconds kept, nanoseconds truncated), or None for Go's zero time.

    Raises ValueError for anything that is not RFC 3339 with an offset.
    """
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text[:40]!r}")
    date, clock, fraction, offset = m.groups()
    iso = f"{date}T{clock}.{fraction[:6]}" if fraction else f"{date}T{clock}"
    when = datetime.fromisoformat(iso + ("+00:00" if offset in "Zz" else offset))
    if when.year == _GO_ZERO_YEAR:
        return None
    return when.astimezone(UTC)


def format_time(when: datetime | None) -> str | None:
    """RFC 3339 UTC with microseconds and a `Z`, or None."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
