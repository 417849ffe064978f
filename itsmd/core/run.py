"""Playbook runs: their states, ids, idempotency keys, and what a run orphaned by a crash does next."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class RunState(StrEnum):
    PENDING = "pending"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


ACTIVE = (RunState.PENDING, RunState.AWAITING_APPROVAL, RunState.RUNNING)
WAITING = (RunState.PENDING, RunState.AWAITING_APPROVAL)  # cancelled when the incident resolves first


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


FINISHED_STEP = (StepState.SUCCEEDED, StepState.FAILED, StepState.TIMED_OUT, StepState.SKIPPED,
                 StepState.CANCELLED, StepState.UNKNOWN)


class Trigger(StrEnum):
    OPENED = "opened"
    REOPENED = "reopened"
    MANUAL = "manual"
    KNOWN_ERROR = "known_error"


class Phase(StrEnum):
    MAIN = "main"
    ON_FAILURE = "on_failure"


class Reason(StrEnum):
    """Why a run ended as it did, besides the guards' skip reasons (stored in `reason`)."""

    RESOLVED = "resolved"  # the incident resolved before the run did anything (self_healed)
    CANCELLED = "cancelled"  # an operator cancelled it
    STEP_FAILED = "step_failed"
    STEP_TIMED_OUT = "step_timed_out"
    RUN_TIMED_OUT = "run_timed_out"
    NEEDS_HUMAN = "needs_human"  # a non-idempotent step was running at a crash: it may or may not have acted
    PLAYBOOK_MISSING = "playbook_missing"  # a reload removed the playbook before the run started
    # Nobody approved or rejected the run within `approval.timeout` (it ends `expired`); the suffix is the
    # playbook's `on_timeout` when it expired, so paging reads it from the stored run alone.
    APPROVAL_TIMED_OUT_ESCALATE = "approval_timed_out_escalate"
    APPROVAL_TIMED_OUT_ABORT = "approval_timed_out_abort"
    ERROR = "error"


# Step kinds whose success counts as remediation (auto_remediated): they act on the world.
REMEDIATION_KINDS = frozenset({"exec", "http"})


def display_id(number: int) -> str:
    return f"RUN-{number}"


def parse_id(text: str) -> int | None:
    head, _, tail = text.partition("-")
    return int(tail) if head == "RUN" and tail.isdigit() else None


def idempotency_key(incident_id: int, trigger_no: int, playbook: str, target: str) -> str:
    """One run per incident trigger (its opening is 0, each reopen counts up), playbook and target: whatever
    delivers the trigger again maps to the same key (SHA-256, so any target fits)."""
    parts = json.dumps([incident_id, trigger_no, playbook, target], ensure_ascii=True)
    return "t:" + hashlib.sha256(parts.encode()).hexdigest()


def manual_key(nonce: str) -> str:
    """A manual run's key: each request is a run of its own."""
    return f"m:{nonce}"


class Resume(StrEnum):
    """What a runner does with a run it claims."""

    START = "start"  # nothing ran yet
    CONTINUE = "continue"  # resume at the first unfinished step
    UNKNOWN = "unknown"  # a non-idempotent step was in flight: do not repeat it; a human decides


@dataclass(frozen=True, slots=True)
class Recovery:
    action: Resume
    index: int  # the step to go on from (or the one that is unknown)
    reason: str


@dataclass(frozen=True, slots=True)
class StepMark:
    """What recovery needs of a stored step."""

    state: StepState
    idempotent: bool


def recover(steps: Sequence[StepMark]) -> Recovery:
    """Where a claimed run goes on: at its first unfinished step; a step found `running` (its process may have
    acted before the crash) is repeated only when it is idempotent."""
    for i, step in enumerate(steps):
        if step.state in FINISHED_STEP:
            continue
        if step.state == StepState.RUNNING:
            if step.idempotent:
                return Recovery(Resume.CONTINUE, i, "an idempotent step was interrupted; it runs again")
            return Recovery(Resume.UNKNOWN, i, "a non-idempotent step was interrupted; it may have acted")
        started = any(s.state != StepState.PENDING for s in steps[:i])
        return Recovery(Resume.CONTINUE if started else Resume.START, i, "resuming at the first unfinished step")
    return Recovery(Resume.CONTINUE, len(steps), "every step finished")
