"""Step kinds as the runner calls them: one coroutine per kind, each returning an Outcome.

An adapter over `itsmd.actions` (exec, http, sleep; built in issue 6 part A): this is the one place that knows
their signatures. `wait_resolved` lives here because it reads the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from itsmd.core.incident import UNRESOLVED
from itsmd.core.playbook import SleepSpec, Step, WaitResolvedSpec
from itsmd.core.run import StepState
from itsmd.storage import incidents
from itsmd.storage.store import SqlStore


@dataclass(frozen=True, slots=True)
class Outcome:
    state: StepState  # succeeded | failed | timed_out
    exit_code: int | None = None
    status: int | None = None
    output: str = ""
    json: Any = None
    detail: str = ""

    def result(self) -> dict[str, Any]:
        """What later steps see as `steps.<name>`."""
        return {"exit_code": self.exit_code, "status": self.status, "output": self.output, "json": self.json}


Kind = Callable[[Step, Mapping[str, Any], float], Awaitable[Outcome]]


class Kinds:
    """The executors of the step kinds, given what they need (store for wait_resolved, poll interval)."""

    def __init__(self, store: SqlStore, incident_id: Callable[[], int | None], poll: float = 0.5,
                 others: Mapping[str, Kind] | None = None) -> None:
        self._store = store
        self._incident_id = incident_id
        self._poll = poll
        self._others = dict(others or {})

    async def run(self, step: Step, context: Mapping[str, Any], timeout: float) -> Outcome:
        spec = step.spec
        if isinstance(spec, SleepSpec):
            await asyncio.sleep(spec.duration)
            return Outcome(StepState.SUCCEEDED)
        if isinstance(spec, WaitResolvedSpec):
            return await self.wait_resolved(min(spec.duration, timeout))
        kind = self._others.get(str(step.kind))
        if kind is None:
            return Outcome(StepState.FAILED, detail=f"step kind {step.kind} is not available in this build")
        return await kind(step, context, timeout)

    async def wait_resolved(self, duration: float) -> Outcome:
        """Closed loop: succeeded once the incident's cause alerts all cleared (or it resolved), failed when they
        still fire after `duration` seconds."""
        number = self._incident_id()
        if number is None:
            return Outcome(StepState.FAILED, detail="the run has no incident")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration
        while True:
            row = await self._store.read(lambda conn: incidents.get(conn, number))
            if row is None or row["state"] not in UNRESOLVED or row["firing_count"] == 0:
                return Outcome(StepState.SUCCEEDED, output="the incident's alerts cleared")
            left = deadline - loop.time()
            if left <= 0:
                return Outcome(StepState.FAILED, output=f"alerts still firing after {duration:g}s")
            await asyncio.sleep(min(self._poll, left))
