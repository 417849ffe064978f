"""Step kinds as the runner calls them: one coroutine per kind, each returning an Outcome.

An adapter over `itsmd.actions` (exec, http, sleep, notify, silence): the one place that knows their signatures.
`wait_resolved` lives here because it reads the store. Templates are rendered here, in the sandbox, from the run's
stored context: alert values enter as data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from itsmd.actions import sleep
from itsmd.actions.exec import Executor
from itsmd.actions.http import HttpCaller
from itsmd.actions.notify import Note, StepNotifier
from itsmd.actions.result import StepResult
from itsmd.actions.silence import Request, Silencer, marker
from itsmd.core import binding
from itsmd.core.incident import UNRESOLVED
from itsmd.core.playbook import (
    ExecSpec,
    HttpSpec,
    NotifySpec,
    SilenceSpec,
    SleepSpec,
    Step,
    WaitResolvedSpec,
)
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
    notifier: StepNotifier | None = None
    silencer: Silencer | None = None


class Kinds:
    """The step kinds of one run: the daemon's executors, plus what wait_resolved needs (the store, the run's
    incident, the poll interval). `env` holds the fixed-name variables an exec step gets (run id, key)."""

    def __init__(self, store: SqlStore, incident_id: int | None, actions: Actions, poll: float = 0.5,
                 env: Mapping[str, str] | None = None, run_id: str = "", cycle: int = 0) -> None:
        self._run_id = run_id  # RUN-n: keys the notify step's outbox rows and marks the silence step's silences
        self._cycle = cycle
        self._store = store
        self._incident_id = incident_id
        self._actions = actions
        self._poll = poll
        self._env = dict(env or {})

    async def run(self, step: Step, context: Mapping[str, Any], timeout: float) -> Outcome:
        """Execute one attempt; ValueError when a template of the step fails (nothing was executed)."""
        spec = step.spec
        if isinstance(spec, SleepSpec):
            if spec.duration > timeout:
                await sleep.pause(timeout)
                return Outcome(StepState.TIMED_OUT, output=f"timed out after {timeout:g}s")
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
        if isinstance(spec, NotifySpec) and self._actions.notifier is not None:
            note = Note(self._run_id, self._incident_id, self._cycle, step.name, spec.to, spec.text.render(context))
            return outcome(await self._actions.notifier.send(note))
        if isinstance(spec, SilenceSpec) and self._actions.silencer is not None:
            return outcome(await self._actions.silencer.silence(self.silence_request(step, spec, context), timeout))
        return Outcome(StepState.FAILED, output=f"step kind {step.kind} cannot run here")

    def silence_request(self, step: Step, spec: SilenceSpec, context: Mapping[str, Any]) -> Request:
        """Each matcher one JSON object; a rendered value is only ever that matcher's value."""
        matchers = [{"name": m.name, "value": m.value.render(context), "isRegex": m.is_regex,
                     "isEqual": m.is_equal} for m in spec.matchers]
        comment = spec.comment.render(context) if spec.comment is not None else ""
        return Request(marker(self._run_id, step.name), matchers, spec.duration,
                       comment or f"itsmd {self._run_id}: step {step.name}")

    async def expire_silences(self) -> tuple[list[str], list[str]]:
        """Expire the live silences of this run's silence steps: (ids expired, problems)."""
        if self._actions.silencer is None:
            return [], []
        return await self._actions.silencer.expire(marker(self._run_id, ""))

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
