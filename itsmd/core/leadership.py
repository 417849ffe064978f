"""Leadership among replicas on one PostgreSQL: what a replica does after each look at its lock.

One replica leads (pipeline, timers, reconciliation); the others follow and take over when the leader's lock is
gone. The adapter (itsmd.leadership) holds the lock on a connection of its own and reports what each probe
found; this module decides the role and whether the leader duties start or stop, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

LOCK_CLASS = 0x69747364  # "itsd": the first key of itsmd's advisory locks (two-key form)
LEADER_KEY = 1  # the leader's session lock
PIPELINE_KEY = 2  # the transaction lock each pipeline batch takes: two leaders never process the inbox at once
MIGRATE_KEY = 3  # the transaction lock of migrations: replicas starting together migrate one after the other


class Role(StrEnum):
    LEADER = "leader"
    FOLLOWER = "follower"


class Probe(StrEnum):
    """What one look found."""

    TAKEN = "taken"  # a follower's pg_try_advisory_lock succeeded
    BUSY = "busy"  # a follower's try failed: another replica holds the lock
    HELD = "held"  # a leader's heartbeat: its session is alive and still holds the lock
    LOST = "lost"  # a leader's heartbeat failed, timed out or found the lock gone
    UNREACHABLE = "unreachable"  # no connection to the database


@dataclass(frozen=True, slots=True)
class Decision:
    role: Role
    start: bool  # begin the leader duties
    stop: bool  # end them now (before the lock can pass to another replica)
    reason: str


def decide(role: Role, probe: Probe) -> Decision:
    """The role after `probe`, given the role before it."""
    if role is Role.LEADER:
        if probe is Probe.HELD:
            return Decision(Role.LEADER, False, False, "the lock is held")
        return Decision(Role.FOLLOWER, False, True, f"leadership lost: {probe.value}")
    if probe is Probe.TAKEN:
        return Decision(Role.LEADER, True, False, "the lock was free and is taken")
    if probe is Probe.BUSY:
        return Decision(Role.FOLLOWER, False, False, "another replica leads")
    return Decision(Role.FOLLOWER, False, False, f"cannot try the lock: {probe.value}")
