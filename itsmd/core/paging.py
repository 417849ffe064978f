"""Paging: whether an unresolved incident pages a human now, why, and when to look again (DESIGN §1.6 item 12).

Pure decisions on facts the caller reads from storage. One page per incident per cause within a cycle (from its
opening, or its last reopening, to its resolution); `escalate.repeat` pages again while nobody acknowledged it.
The global hourly budget (`automation.max_pages_per_hour`) is a second decision: past it, pages are held back and
one summary page tells of them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from itsmd.core.approval import expiry_pages


class Cause(StrEnum):
    """Why a human is paged; the first six are runs that ended without fixing it, (a) of item 12."""

    RUN_FAILED = "run_failed"
    RUN_TIMED_OUT = "run_timed_out"
    RUN_EXPIRED = "run_expired"
    RUN_UNKNOWN = "run_unknown"
    RUN_SKIPPED = "run_skipped"
    RUN_REJECTED = "run_rejected"
    UNATTENDED = "unattended"  # (b): escalate.after passed since it (re)opened, no run in progress
    REPEAT = "repeat"  # escalate.repeat passed since the last page, still unacknowledged


_RUN_CAUSES = {
    "failed": Cause.RUN_FAILED,
    "timed_out": Cause.RUN_TIMED_OUT,
    "expired": Cause.RUN_EXPIRED,
    "unknown": Cause.RUN_UNKNOWN,
    "skipped": Cause.RUN_SKIPPED,
    "rejected": Cause.RUN_REJECTED,
}
RUN_IN_PROGRESS_STATES = frozenset({"pending", "awaiting_approval", "running"})
_ORDER = list(Cause)

DESCRIPTIONS = {
    Cause.RUN_FAILED: "a playbook run failed",
    Cause.RUN_TIMED_OUT: "a playbook run timed out",
    Cause.RUN_EXPIRED: "a playbook run's approval expired",
    Cause.RUN_UNKNOWN: "a playbook run ended unknown (interrupted; a person must check)",
    Cause.RUN_SKIPPED: "a playbook run was skipped by a guard",
    Cause.RUN_REJECTED: "a playbook run was rejected",
}


def run_cause(run_state: str, reason: str | None = None) -> Cause | None:
    """The paging cause of a run that ended in `run_state` (with its stored `reason`), None for states that page
    nobody. An expired approval pages unless its playbook said `on_timeout: abort` (DESIGN §1.6 item 13)."""
    if run_state == "expired" and not expiry_pages(reason):
        return None
    return _RUN_CAUSES.get(run_state)


class Reason(StrEnum):
    """Why the decision is what it is; the same value goes to the log, the metric and the timeline."""

    PAGE = "page"  # new causes are due: page now
    REPEAT = "repeat"  # re-page: escalate.repeat passed, still unacknowledged
    ACKNOWLEDGED = "acknowledged"  # a person took it: no (more) pages
    RESOLVED = "resolved"  # resolved or closed: no pages (its resolution is sent instead)
    HOLD = "hold"  # a run ended badly, but `hold` has not passed yet
    RUN_IN_PROGRESS = "run_in_progress"  # escalate.after passed, but a run is still trying
    WAITING = "waiting"  # nothing due yet (or ever: paged for every cause, no repeat)


@dataclass(frozen=True, slots=True)
class Policy:
    """The rule's paging settings in seconds: `hold`, `escalate.after` (default hold), `escalate.repeat`."""

    hold: float = 0.0
    after: float = 0.0
    repeat: float | None = None


@dataclass(frozen=True, slots=True)
class Situation:
    """What is known about one incident in its current cycle."""

    state: str  # open | acknowledged | resolved | closed
    since: datetime  # the cycle began: opened, or last reopened
    run_in_progress: bool = False
    run_causes: frozenset[Cause] = frozenset()  # of runs of this cycle that ended badly
    paged: frozenset[Cause] = frozenset()  # causes already paged this cycle
    pages: int = 0  # pages already sent this cycle, repeats included
    last_paged_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    reason: Reason
    causes: tuple[Cause, ...] = ()  # what this page is for (empty: no page now)
    next_at: datetime | None = None  # when to decide again; None: only when something changes

    @property
    def page(self) -> bool:
        return bool(self.causes)


def decide(policy: Policy, s: Situation, now: datetime, recheck: float) -> Decision:
    """Whether to page now. Causes due at the same moment go out as ONE page (each counts as paged).
    `recheck`: seconds until the next look while a run is in progress (its end is not announced)."""
    if s.state == "acknowledged":
        return Decision(Reason.ACKNOWLEDGED)
    if s.state != "open":
        return Decision(Reason.RESOLVED)
    held_until = s.since + timedelta(seconds=policy.hold)
    due: list[Cause] = []
    later: list[datetime] = []
    waiting_for_hold = False
    for cause in sorted(s.run_causes - s.paged, key=_ORDER.index):
        if now >= held_until:
            due.append(cause)
        else:
            waiting_for_hold = True
            later.append(held_until)
    blocked_by_run = False
    if Cause.UNATTENDED not in s.paged:
        unattended_at = s.since + timedelta(seconds=policy.after)
        if now < unattended_at:
            later.append(unattended_at)
        elif s.run_in_progress:
            blocked_by_run = True
            later.append(now + timedelta(seconds=recheck))
        else:
            due.append(Cause.UNATTENDED)
    if due:
        if policy.repeat is not None:
            later.append(now + timedelta(seconds=policy.repeat))
        return Decision(Reason.PAGE, tuple(due), _earliest(later))
    if policy.repeat is not None and s.pages > 0 and s.last_paged_at is not None:
        repeat_at = s.last_paged_at + timedelta(seconds=policy.repeat)
        if now >= repeat_at:
            later.append(now + timedelta(seconds=policy.repeat))
            return Decision(Reason.REPEAT, (Cause.REPEAT,), _earliest(later))
        later.append(repeat_at)
    reason = Reason.HOLD if waiting_for_hold else Reason.RUN_IN_PROGRESS if blocked_by_run else Reason.WAITING
    return Decision(reason, (), _earliest(later))


def _earliest(moments: Collection[datetime]) -> datetime | None:
    return min(moments) if moments else None


def describe(causes: Collection[Cause], policy: Policy, pages: int) -> str:
    """The page's human reason, e.g. "a playbook run failed; unacknowledged 900s after it opened"."""
    parts = []
    for cause in causes:
        if cause is Cause.UNATTENDED:
            parts.append(f"unacknowledged {policy.after:g}s after it opened, no playbook run in progress")
        elif cause is Cause.REPEAT:
            parts.append(f"still unacknowledged (repeat {pages}, every {policy.repeat or 0:g}s)")
        else:
            parts.append(DESCRIPTIONS[cause])
    return "; ".join(parts)


class Budget(StrEnum):
    """The hourly page budget's answer for one page."""

    SEND = "send"  # within max_pages_per_hour
    SUMMARISE = "summarise"  # over it: held back, and the hour's one summary page starts with this one
    SUPPRESS = "suppress"  # over it: held back; the summary page already exists


def budget(paged_last_hour: int, limit: int, summary_last_hour: bool) -> Budget:
    """`paged_last_hour`: escalation pages created in the last hour (summaries not counted);
    `summary_last_hour`: a summary page was created in the last hour."""
    if paged_last_hour < limit:
        return Budget.SEND
    return Budget.SUPPRESS if summary_last_hour else Budget.SUMMARISE
