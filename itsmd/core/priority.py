"""Priority = impact x urgency (the ServiceNow 3x3 matrix); urgency read from the severity label, impact from
the service tier."""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    """Impact or urgency; the matrix counts high as 1, medium as 2, low as 3."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return _RANK[self]


class Priority(StrEnum):
    P1 = "P1"  # critical
    P2 = "P2"  # high
    P3 = "P3"  # moderate
    P4 = "P4"  # low
    P5 = "P5"  # planning


_RANK = {Level.HIGH: 1, Level.MEDIUM: 2, Level.LOW: 3}

# Severity values seen in kube-prometheus, kubernetes-mixin and common alerting guides (lower case).
_SEVERITY_URGENCY = {
    **dict.fromkeys(("critical", "page", "p1", "error", "major", "high"), Level.HIGH),
    **dict.fromkeys(("warning", "medium"), Level.MEDIUM),
    **dict.fromkeys(("info", "low"), Level.LOW),
}


def priority(impact: Level, urgency: Level) -> Priority:
    """P1 (high x high) .. P5 (low x low): P = impact + urgency - 1, ranks high=1, medium=2, low=3."""
    return Priority(f"P{Level(impact).rank + Level(urgency).rank - 1}")


def parse_level(text: str) -> Level:
    """`high`, `medium` or `low` (any case, surrounding blanks ignored); raises ValueError otherwise."""
    word = text.strip().lower()
    try:
        return Level(word)
    except ValueError:
        shown = word if len(word) <= 40 else word[:40] + "..."
        raise ValueError(f"expected high, medium or low, got {shown!r}") from None


def urgency_of_severity(severity: str | None) -> Level:
    """The default urgency: critical/page/P1/error/major/high -> high; info/low -> low; else (or none) medium."""
    return _SEVERITY_URGENCY.get((severity or "").strip().lower(), Level.MEDIUM)


# A service's tier (1 = most critical) as the impact of its incidents; reference/itsm-domain.md §2.4.
_TIER_IMPACT = {1: Level.HIGH, 2: Level.MEDIUM, 3: Level.LOW}


def impact_of_tier(tier: int | None) -> Level:
    """The default impact: tier 1 -> high, 2 -> medium, 3 -> low; no tier (or an unmapped alert) -> medium."""
    return _TIER_IMPACT.get(tier, Level.MEDIUM) if tier is not None else Level.MEDIUM
