"""Problems (ITIL sense): recurrence signatures, when recurring incidents open or join a problem, and the
problem state machine.

States (DESIGN §1.3): open -> investigating -> known_error -> resolved -> closed. The transitions a person may
make with `PATCH` (anything else is 409):

    open           -> investigating | resolved | closed
    investigating  -> resolved | closed
    known_error    -> investigating | resolved | closed
    resolved       -> investigating | closed          (investigating: the fix did not hold)
    closed         -> (none: terminal)
    any            -> known_error, only when a known error is recorded (`PUT .../known-error` records one and
                      moves the problem there itself, from open, investigating or known_error)

Asking for the state a problem is already in changes nothing and is no conflict (PATCH is idempotent).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from itsmd.core.matcher import format_labels

# Labels left out of a signature by default (DESIGN §1.6 item 10): they differ between recurrences.
VOLATILE_LABELS = frozenset(
    ("instance", "pod", "container", "container_id", "pod_template_hash", "replica", "endpoint", "uid")
)
TITLE_MAX_LENGTH = 1000


class State(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    KNOWN_ERROR = "known_error"
    RESOLVED = "resolved"
    CLOSED = "closed"


UNRESOLVED = (State.OPEN, State.INVESTIGATING, State.KNOWN_ERROR)

_ALLOWED: dict[State, tuple[State, ...]] = {
    State.OPEN: (State.INVESTIGATING, State.RESOLVED, State.CLOSED),
    State.INVESTIGATING: (State.RESOLVED, State.CLOSED),
    State.KNOWN_ERROR: (State.INVESTIGATING, State.RESOLVED, State.CLOSED),
    State.RESOLVED: (State.INVESTIGATING, State.CLOSED),
    State.CLOSED: (),
}
_RECORDS_KNOWN_ERROR = (State.OPEN, State.INVESTIGATING, State.KNOWN_ERROR)


def signature_labels(group_by: Collection[str], by: Collection[str] | None) -> tuple[str, ...]:
    """The labels of a rule's signature, sorted: `problem.by`, else group_by minus the volatile labels."""
    names = by if by is not None else [n for n in group_by if n not in VOLATILE_LABELS]
    return tuple(sorted(set(names)))


def signature(rule: str, names: Collection[str], labels: Mapping[str, str]) -> str:
    """Rule name and the values of the signature labels, e.g. `disk-low{cluster="c1"}`; missing = ""."""
    return rule + format_labels((name, labels.get(name, "")) for name in names)


def refusal(state: State, target: State, has_known_error: bool) -> str | None:
    """Why a person may not move a problem from `state` to `target` (None when they may)."""
    if target == state:
        return None
    if target == State.KNOWN_ERROR and state != State.CLOSED:
        return None if has_known_error else "record the known error first (PUT /api/v1/problems/{id}/known-error)"
    if target in _ALLOWED[state]:
        return None
    allowed = " or ".join(_ALLOWED[state])
    return f"cannot move a problem from {state} to {target}" + (f" (only to {allowed})" if allowed else "")


def known_error_refusal(state: State) -> str | None:
    """Why a known error cannot be recorded on a problem in `state` (None when it can)."""
    if state in _RECORDS_KNOWN_ERROR:
        return None
    return f"cannot record a known error on a {state} problem (move it to investigating first)"


class Recurrence(StrEnum):
    """What a newly opened incident does to the problems of its signature (metric label and timeline value)."""

    ATTACH = "attach"  # the signature's unresolved problem takes it
    KNOWN_ERROR = "known_error"  # ... and that problem has a known error: linked at once, its workaround applies
    REOPEN = "reopen"  # the signature's problem resolved within `within`: the fix did not hold, it reopens
    OPEN = "open"  # `after` incidents of the signature within `within`: a new problem takes them
    NONE = "none"  # below the threshold, or the rule has no `problem` policy


@dataclass(frozen=True, slots=True)
class Latest:
    """The newest problem of a signature, as the recurrence decision sees it."""

    state: State
    has_known_error: bool
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class Decision:
    action: Recurrence
    reason: str


def recur(after: int | None, within: float, latest: Latest | None, recent: int, now: datetime) -> Decision:
    """What a newly opened incident does; `after`/`within` are the rule's `problem` policy (`after` None: the
    rule has none, so it only joins a problem that exists).

    `latest` is the newest problem of the incident's signature; `recent` counts the signature's incidents that
    opened within `within` and belong to no problem, this one included.
    """
    if latest is not None and latest.state in UNRESOLVED:
        if latest.has_known_error:
            return Decision(Recurrence.KNOWN_ERROR, "the signature has a known error: linked at once")
        return Decision(Recurrence.ATTACH, f"the signature's problem is {latest.state}")
    if after is None:
        return Decision(Recurrence.NONE, "the rule has no problem policy")
    window = timedelta(seconds=within)
    if latest is not None and latest.state == State.RESOLVED and latest.resolved_at is not None \
            and now - latest.resolved_at <= window:
        return Decision(Recurrence.REOPEN, f"recurred within {within:g}s of the problem's resolution")
    if recent >= after:
        return Decision(Recurrence.OPEN, f"{recent} incidents of the signature within {within:g}s (after {after})")
    return Decision(Recurrence.NONE, f"{recent} of {after} incidents of the signature within {within:g}s")


def reopen_state(has_known_error: bool) -> State:
    """Where a recurrence takes a resolved problem: back to its known error (the workaround applies again), else
    back to investigating the root cause."""
    return State.KNOWN_ERROR if has_known_error else State.INVESTIGATING


def default_title(sig: str) -> str:
    return f"Recurring: {sig}"[:TITLE_MAX_LENGTH]


def display_id(number: int) -> str:
    return f"PRB-{number}"


def parse_id(text: str) -> int | None:
    head, _, tail = text.partition("-")
    return int(tail) if head == "PRB" and tail.isascii() and tail.isdigit() and len(tail) <= 18 else None
