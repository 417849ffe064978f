"""Step kinds as the runner calls them: one coroutine per kind, each returning an Outcome.

An adapter over `itsmd.actions` (exec, http, sleep): the one place that knows their signatures. `wait_resolved`
lives here because it reads the store; `notify` and `silence` come with later issues and fail for now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from itsmd.actions import sleep
from itsmd.actions.exec import Executor
from itsmd.actions.http import HttpCaller
from itsmd.actions.result import StepResult
from itsmd.core import binding
from itsmd.core.incident import UNRESOLVED
from itsmd.core.playbook import ExecSpec, HttpSpec, SleepSpec, Step, WaitResolvedSpec
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


def outcome(result: StepResult) -> Outcome:
    state = StepState.SUCCEEDED if result.succeeded else (
        StepState.TIMED_OUT if result.timed_out else StepState.FAILED)
    output = result.output if not result.error else (f"{result.error}\n{result.output}" if result.output
                                                      else result.error)
    return Outcome(state, result.exit_code, result.status, output, result.json, result.error or "")


@dataclass(frozen=True, slots=True)
class Actions:
    """The daemon's executors (itsmd.actions), made once at start; None where a kind cannot run here."""

    executor: Executor | None = None
    http: HttpCaller | None = None


class Kinds:
    """The step kinds of one run: the daemon's executors, plus what wait_resolved needs (the store, the run's
    incident, the poll interval). `env` holds the fixed-name variables an exec step gets (run id, key)."""

    def __init__(self, store: SqlStore, incident_id: int | None, actions: Actions, poll: float = 0.5,
                 env: Mapping[str, str] | None = None) -> None:
        self._store = store
        self._incident_id = incident_id
        self._actions = actions
        self._poll = poll
        self._env = dict(env or {})

    async def run(self, step: Step, context: Mapping[str, Any], timeout: float) -> Outcome:
        """Execute one attempt; ValueError when a template of the step fails (nothing was executed)."""
        spec = step.spec
        if isinstance(spec, SleepSpec):
            return outcome(await sleep.pause(spec.duration))
        if isinstance(spec, WaitResolvedSpec):
            return await self.wait_resolved(min(spec.duration, timeout))
        if isinstance(spec, ExecSpec) and self._actions.executor is not None:
            argv = binding.render_argv(spec, context)
            return outcome(await self._actions.executor.run(argv, timeout, extra_env=self._env))
        if isinstance(spec, HttpSpec) and self._actions.http is not None:
            url = spec.url.render(context)
            body = binding.render_json(spec.json, context)
            return outcome(await self._actions.http.call(spec.method, url, body, timeout, spec.expect,
                                                         headers_file=spec.headers_file,
                                                         headers_env=spec.headers_env))
        return Outcome(StepState.FAILED, output=f"step kind {step.kind} is not available yet (issue 6 part A)")

    async def wait_resolved(self, duration: float) -> Outcome:
        """Closed loop: succeeded once the incident's cause alerts all cleared (or it resolved), failed when they
        still fire after `duration` seconds."""
        number = self._incident_id
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
