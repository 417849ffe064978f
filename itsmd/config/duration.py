"""Durations as the config writes them (`30s`, `5m`, `1h30m`, `7d` or plain seconds), parsed to seconds."""

from __future__ import annotations

import math
import re

_NUMBER = r"\d+(?:\.\d+)?"
_UNITS: dict[str, float] = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# Units in descending order, each at most once; the JSON Schema's `duration` pattern is the same grammar.
_DURATION = re.compile("".join(f"(?:(?P<{unit}>{_NUMBER}){unit})?" for unit in _UNITS), re.ASCII)


def parse_duration(value: str | int | float) -> float:
    """Seconds in `value`: a number of seconds >= 0, or a string like `30s`, `5m`, `2h`, `7d`, `1h30m`.

    Units are w, d, h, m, s and ms, largest first. Raises ValueError saying what is accepted.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a duration: {value!r}; use e.g. 30s, 5m, 1h30m, 7d or a number of seconds")
    if isinstance(value, str):
        return _parse_text(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"duration must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _parse_text(text: str) -> float:
    match = _DURATION.fullmatch(text)
    if match is None or not text:
        raise ValueError(
            f"not a duration: {text[:40]!r}; use e.g. 30s, 5m, 1h30m, 7d (units w d h m s ms, largest first)"
        )
    return sum(float(amount) * _UNITS[unit] for unit, amount in match.groupdict().items() if amount)
