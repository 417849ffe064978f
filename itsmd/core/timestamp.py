"""RFC 3339 times as Alertmanager writes them: 0-9 fraction digits, any offset, Go's zero time = "none"."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII
)
_GO_ZERO_YEAR = 1


def parse_time(text: str) -> datetime | None:
    """A UTC datetime (microseconds kept, nanoseconds truncated), or None for Go's zero time.

    Raises ValueError for anything that is not RFC 3339 with an offset.
    """
    if not _RFC3339.match(text):
        raise ValueError(f"not an RFC 3339 time: {text[:40]!r}")
    frac = text.find(".")
    if frac != -1:  # fromisoformat takes at most 6 fraction digits on every 3.11 patch level
        end = frac + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        text = text[: min(end, frac + 7)] + text[end:]
    when = datetime.fromisoformat(text.replace("z", "Z"))
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
