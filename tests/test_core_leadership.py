"""The leadership decision after each look at the lock (itsmd.core.leadership)."""

from __future__ import annotations

import pytest

from itsmd.core.leadership import Probe, Role, decide


def test_a_follower_that_takes_the_lock_leads_and_starts_its_duties() -> None:
    d = decide(Role.FOLLOWER, Probe.TAKEN)
    assert (d.role, d.start, d.stop) == (Role.LEADER, True, False)


@pytest.mark.parametrize("probe", [Probe.BUSY, Probe.UNREACHABLE])
def test_a_follower_without_the_lock_stays_a_follower(probe: Probe) -> None:
    d = decide(Role.FOLLOWER, probe)
    assert (d.role, d.start, d.stop) == (Role.FOLLOWER, False, False)
    assert d.reason


def test_a_leader_whose_lock_is_held_keeps_leading_without_restarting() -> None:
    d = decide(Role.LEADER, Probe.HELD)
    assert (d.role, d.start, d.stop) == (Role.LEADER, False, False)


@pytest.mark.parametrize("probe", [Probe.LOST, Probe.UNREACHABLE, Probe.BUSY])
def test_a_leader_whose_heartbeat_fails_steps_down_at_once(probe: Probe) -> None:
    d = decide(Role.LEADER, probe)
    assert (d.role, d.start, d.stop) == (Role.FOLLOWER, False, True)
    assert probe.value in d.reason
