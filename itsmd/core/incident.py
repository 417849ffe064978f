"""Incidents (ITIL sense): where a routed alert goes, the lifecycle state machine, and automatic resolution."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class State(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"


UNRESOLVED = (State.OPEN, State.ACKNOWLEDGED)


class Resolution(StrEnum):
    AUTO_REMEDIATED = "auto_remediated"
    SELF_HEALED = "self_healed"
    MANUAL = "manual"


class Symptom(StrEnum):
    """Why an alert joined a cause's incident instead of being placed by its own rule (DESIGN §1.6 item 6)."""

    INHIBITED = "inhibited"  # the incident's rule `inhibits` it
    DEPENDENCY = "dependency"  # its service depends on the incident's service


class Action(StrEnum):
    ACK = "ack"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"


_ALLOWED: dict[Action, tuple[State, ...]] = {
    Action.ACK: (State.OPEN,),
    Action.RESOLVE: (State.OPEN, State.ACKNOWLEDGED),
    Action.CLOSE: (State.RESOLVED,),
    Action.REOPEN: (State.RESOLVED,),
}


def refusal(action: Action, state: State) -> str | None:
    """Why `action` is not allowed from `state` (None when it is)."""
    if state in _ALLOWED[action]:
        return None
    allowed = " or ".join(_ALLOWED[action])
    return f"cannot {action} an incident that is {state} (only from {allowed})"


class Placement(StrEnum):
    JOIN = "join"  # the key's unresolved incident takes the alert
    REOPEN = "reopen"  # the key's incident resolved within reopen_within: it reopens and takes the alert
    OPEN = "open"  # min_alerts reached: a new incident takes the waiting alerts
    PENDING = "pending"  # below min_alerts within window: the alert waits, unattached


def place(
    unresolved: bool, resolved_at: datetime | None, reopen_within: float, pending: int, min_alerts: int,
    now: datetime,
) -> Placement:
    """Where a newly firing alert of a rule and key goes.

    `resolved_at` is the resolution time of the key's latest incident if that one is resolved (not closed);
    `pending` counts the key's unattached alerts within the rule's window, this one included.
    """
    if unresolved:
        return Placement.JOIN
    if resolved_at is not None and now - resolved_at <= timedelta(seconds=reopen_within):
        return Placement.REOPEN
    if pending >= min_alerts:
        return Placement.OPEN
    return Placement.PENDING


@dataclass(frozen=True, slots=True)
class Counts:
    """An incident's alerts, derived from the alerts table; causes exclude symptoms."""

    alerts: int
    firing: int
    causes: int
    causes_firing: int
    stale: int


@dataclass(frozen=True, slots=True)
class Progress:
    """What the alerts' state means for an unresolved incident under its rule's `resolve` policy."""

    resolve: bool  # resolve now
    restored_at: datetime | None  # when the policy was (last) satisfied
    resolve_at: datetime | None  # quiet policy: the deadline to resolve at, unless an alert fires again
    reason: str


def progress(policy: str, quiet: float, counts: Counts, now: datetime) -> Progress:
    """Apply the rule's resolve policy (all | any | quiet | manual) to an unresolved incident's counts."""
    cleared = counts.causes > 0 and counts.causes_firing == 0
    if policy == "any" and counts.causes_firing < counts.causes:
        return Progress(True, now, None, "an alert resolved (resolve: any)")
    if not cleared:
        return Progress(False, None, None, "alerts still firing")
    if policy == "all":
        return Progress(True, now, None, "all alerts resolved")
    if policy == "quiet":
        return Progress(False, now, now + timedelta(seconds=quiet), f"quiet for {quiet:g}s to resolve")
    return Progress(False, now, None, "alerts cleared; resolve: manual waits for a person")


def is_flapping(changes: int, threshold: int | None) -> bool:
    return threshold is not None and changes >= threshold


def common_labels(current: dict[str, str] | None, labels: dict[str, str]) -> dict[str, str]:
    """Labels shared by every alert seen so far (`current` None: the first alert)."""
    if current is None:
        return dict(labels)
    return {k: v for k, v in current.items() if labels.get(k) == v}


def display_id(number: int) -> str:
    return f"INC-{number}"


def parse_id(text: str) -> int | None:
    head, _, tail = text.partition("-")
    return int(tail) if head == "INC" and tail.isascii() and tail.isdigit() and len(tail) <= 18 else None

