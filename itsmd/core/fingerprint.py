"""Alert identity: Prometheus's label-set fingerprint (64-bit FNV-1a, prometheus/common model.LabelSet)."""

from __future__ import annotations

from collections.abc import Mapping

_OFFSET = 0xCBF29CE484222325
_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1
_SEP = b"\xff"


def fingerprint(labels: Mapping[str, str]) -> str:
    """16 lower-case hex digits, identical to Alertmanager's `fingerprint` for the same label set."""
    h = _OFFSET
    encoded = sorted((name.encode("utf-8", "surrogatepass"), value) for name, value in labels.items())
    for name, value in encoded:
        for chunk in (name, _SEP, value.encode("utf-8", "surrogatepass"), _SEP):
            for byte in chunk:
                h = ((h ^ byte) * _PRIME) & _MASK
    return f"{h:016x}"
