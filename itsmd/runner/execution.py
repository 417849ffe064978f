"""One run's execution: its steps in order (with `when`, timeouts, retries, outputs for later steps), the
`on_failure` steps, the run's timeout, and recovery of a run orphaned by a crash. Every change is written
before it matters: a step is marked `running` (committed) before its process starts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from itsmd.clock import Clock
from itsmd.core.guard import Breaker, breaker_record
from itsmd.core.incident import UNRESOLVED
from itsmd.core.paging import run_cause
from itsmd.core.playbook import Playbook, SleepSpec, Step, StepKind, WaitResolvedSpec, step_context
from itsmd.core.run import (
    Phase,
    Reason,
    Recovery,
    Resume,
    RunState,
    StepMark,
    StepState,
    display_id,
    recover,
)
from itsmd.core.timestamp import format_time
from itsmd.pipeline.remediate import load_breaker, save_breaker
from itsmd.runner.kinds import Kinds, Outcome
from itsmd.storage import events, incidents, pages, runs
from itsmd.storage.events import Event
from itsmd.storage.store import SqlStore
from itsmd.template import render_bool

log = logging.getLogger("itsmd.runner")
MAX_OUTPUT = 65536  # characters of a step's output kept (the tail)
SELF_TIMED = 1.0  # seconds the backstop timeout leaves a step that ends itself at its timeout
ENDED_STEP = {StepState.SUCCEEDED: "succeeded", StepState.FAILED: "failed", StepState.TIMED_OUT: "timed_out"}


@dataclass
class Claimed:
    row: dict[str, Any]  # the run as it was before the claim
    playbook: Playbook | None


class Execution:
    """Executes one claimed run to its end (or until the daemon stops: then it stays `running`, leased)."""

    def __init__(self, store: SqlStore, clock: Clock, claimed: Claimed, kinds: Kinds, owner: str) -> None:
        self.store, self.clock, self.kinds, self.owner = store, clock, kinds, owner
        self.row = claimed.row
        self.playbook = claimed.playbook
        self.id: int = self.row["id"]
        self.incident_id: int | None = self.row["incident_id"]
        self.results: dict[str, dict[str, Any]] = {}
        self.cancel_requested = False
        self._premarked: int | None = None  # seq of the first step, marked running by the run's start write

    # --- the timeline ---------------------------------------------------------------------------------------

    def _event(self, now: datetime, action: str, reason: str, **data: Any) -> list[Event]:
        if self.incident_id is None:
            return []
        return [Event(now, "incident", self.incident_id, "system", action, reason,
                      {"run_id": display_id(self.id), "playbook": self.row["playbook"], **data})]

    # --- the run ---------------------------------------------------------------------------------------------

    async def run(self) -> str:
        """Execute; returns the final state."""
        steps = (await self.store.read(lambda conn: runs.steps_of(conn, [self.id])))[self.id]
        if self.playbook is None:
            return await self._end(RunState.FAILED, Reason.PLAYBOOK_MISSING, "the playbook is no longer loaded")
        now = self.clock.now()
        deadline = self.row["deadline"]
        if self.row["state"] == RunState.RUNNING:  # orphaned by a crash: recover
            recovery = recover([StepMark(StepState(s["state"]), bool(s["idempotent"])) for s in steps])
            for s in steps[:recovery.index]:
                self.results[s["name"]] = {"exit_code": s["exit_code"], "status": s["status"],
                                           "output": s["output"] or "", "json": s["result"]}
            if recovery.action == Resume.UNKNOWN:
                return await self._unknown(steps[recovery.index], recovery)
            if deadline is not None and deadline <= now:
                return await self._end(RunState.TIMED_OUT, Reason.RUN_TIMED_OUT, "the run's timeout passed")
            await self.store.write(lambda conn: events.append(conn, self._event(
                now, "run_resumed", f"run of {self.row['playbook']} resumed after a restart: {recovery.reason}",
                step=steps[recovery.index]["name"] if recovery.index < len(steps) else None)))
            start = recovery.index
        else:
            deadline = now + timedelta(seconds=self.playbook.timeout)
            if not await self._begin(now, deadline, self._first_at_once(steps)):
                return await self._end(RunState.CANCELLED, Reason.RESOLVED, "the incident resolved before the run")
            start = 0
        left = max(0.0, (deadline - self.clock.now()).total_seconds()) if deadline else self.playbook.timeout
        try:
            async with asyncio.timeout(left):
                return await self._steps(steps, start)
        except TimeoutError:
            return await self._end(RunState.TIMED_OUT, Reason.RUN_TIMED_OUT,
                                   f"the run's timeout of {self.playbook.timeout:g}s passed", StepState.TIMED_OUT)

    async def cancelled(self) -> str:
        """The run's task was cancelled on an operator's request (its step's process is gone)."""
        return await self._end(RunState.CANCELLED, Reason.CANCELLED, "cancelled by an operator", StepState.CANCELLED)

    async def end_error(self) -> str:
        return await self._end(RunState.FAILED, Reason.ERROR, "internal error (see the log)", StepState.FAILED)

    def _first_at_once(self, steps: list[dict[str, Any]]) -> int | None:
        """The seq of the first step when its process starts right after the run's start (no `when` to decide,
        no delay before its first attempt): the start write then also marks it running, saving a commit."""
        assert self.playbook is not None
        first = next((s for s in steps if s["phase"] == Phase.MAIN), None)
        step = self.playbook.step(first["name"]) if first is not None else None
        if first is None or step is None or step.when is not None or step.retries.delay(1):
            return None
        return int(first["seq"])

    async def _begin(self, now: datetime, deadline: datetime, first: int | None) -> bool:
        """Start the run in one write, with its first step marked running when `first` is its seq; False (nothing
        written) when its incident resolved meanwhile."""
        def work(conn: Connection) -> bool:
            incident = incidents.get(conn, self.incident_id) if self.incident_id is not None else None
            if incident is not None and incident["state"] not in UNRESOLVED:
                return False
            runs.change(conn, self.id, {"started_at": now, "deadline": deadline, "updated_at": now})
            if first is not None:
                runs.change_step(conn, self.id, first, self._running(1, now))
            events.append(conn, self._event(now, "run_running", f"run of {self.row['playbook']} started",
                                            target=self.row["target"]))
            return True
        begun = bool(await self.store.write(work))
        self._premarked = first if begun else None
        return begun

    async def _steps(self, steps: list[dict[str, Any]], start: int) -> str:
        assert self.playbook is not None
        main = [s for s in steps if s["phase"] == Phase.MAIN]
        bad = (StepState.FAILED, StepState.TIMED_OUT)
        earlier = next((s for s in main if s["seq"] < start and s["state"] in bad), None)  # resumed after it
        failed = (StepState(earlier["state"]), earlier["name"]) if earlier else None
        for stored in main:
            if failed is not None or stored["seq"] < start:
                continue
            state = await self._step(stored, self.playbook.step(stored["name"]))
            if state in bad:
                failed = (state, stored["name"])
        if failed is None:
            await self._skip_rest(steps, Phase.ON_FAILURE)
            return await self._end(RunState.SUCCEEDED, None, "every step succeeded")
        await self._skip_rest(steps, Phase.MAIN)
        for stored in steps:
            if stored["phase"] == Phase.ON_FAILURE and stored["seq"] >= start:
                await self._step(stored, self.playbook.step(stored["name"]))
        state, name = failed
        reason = Reason.STEP_TIMED_OUT if state == StepState.TIMED_OUT else Reason.STEP_FAILED
        return await self._end(RunState.FAILED, reason, f"step {name} {state}")

    async def _skip_rest(self, steps: list[dict[str, Any]], phase: Phase) -> None:
        pending = [s["seq"] for s in steps if s["phase"] == phase]

        def work(conn: Connection) -> None:
            for seq in pending:
                runs.change_step_if(conn, self.id, seq, StepState.PENDING, {"state": StepState.SKIPPED})
        await self.store.write(work)

    async def _step(self, stored: dict[str, Any], step: Step | None) -> StepState:
        seq, name = stored["seq"], stored["name"]
        if step is None:
            await self._record(seq, StepState.FAILED, 0, Outcome(StepState.FAILED, output="step not in playbook"))
            return StepState.FAILED
        context = step_context(self._base(), self.results)
        if step.when is not None:
            try:
                go = render_bool(step.when, context)
            except ValueError as e:
                await self._record(seq, StepState.FAILED, 0, Outcome(StepState.FAILED, output=f"when: {e}"))
                return StepState.FAILED
            if not go:
                await self._record(seq, StepState.SKIPPED, 0, Outcome(StepState.SKIPPED))
                self.results[name] = Outcome(StepState.SKIPPED).result()
                return StepState.SKIPPED
        attempts = step.retries.attempts
        outcome = Outcome(StepState.FAILED)
        for attempt in range(1, attempts + 1):
            delay = step.retries.delay(attempt)
            if delay:
                await asyncio.sleep(delay)
            if self._premarked == seq and attempt == 1:
                self._premarked = None  # committed running by the run's start write
            else:
                await self._mark_running(seq, attempt)
            outcome = await self._attempt(step, context)
            if outcome.state == StepState.SUCCEEDED or attempt == attempts:
                break
            await self._record(seq, outcome.state, attempt, outcome, final=False)
        await self._record(seq, outcome.state, attempts if outcome.state != StepState.SUCCEEDED else None, outcome)
        self.results[name] = outcome.result()
        return outcome.state

    async def _attempt(self, step: Step, context: Mapping[str, Any]) -> Outcome:
        timeout = step.effective_timeout
        # sleep and wait_resolved end by themselves at `timeout`; the backstop must not beat them to it (a sleep
        # step without a timeout has timeout == duration, and the earlier deadline would always win)
        grace = SELF_TIMED if isinstance(step.spec, SleepSpec | WaitResolvedSpec) else 0.0
        try:
            async with asyncio.timeout(timeout + grace):
                return await self.kinds.run(step, context, timeout)
        except TimeoutError:
            return Outcome(StepState.TIMED_OUT, output=f"timed out after {timeout:g}s")
        except ValueError as e:  # a template failed: the step cannot run
            return Outcome(StepState.FAILED, output=str(e)[:1000])

    def _base(self) -> dict[str, Any]:
        return dict(self.row["context"])

    @staticmethod
    def _running(attempt: int, now: datetime) -> dict[str, Any]:
        return {"state": StepState.RUNNING, "attempt": attempt, "started_at": now, "finished_at": None}

    async def _mark_running(self, seq: int, attempt: int) -> None:
        values = self._running(attempt, self.clock.now())
        await self.store.write(lambda conn: runs.change_step(conn, self.id, seq, values))

    async def _record(self, seq: int, state: StepState, attempt: int | None, outcome: Outcome,
                      final: bool = True) -> None:
        now = self.clock.now()
        values: dict[str, Any] = {"exit_code": outcome.exit_code, "status": outcome.status,
                                  "output": outcome.output[-MAX_OUTPUT:], "result": outcome.json,
                                  "finished_at": now}
        if final:
            values["state"] = state
        if attempt is not None and attempt > 0:
            values["attempt"] = attempt
        await self.store.write(lambda conn: runs.change_step(conn, self.id, seq, values))

    async def _unknown(self, stored: dict[str, Any], recovery: Recovery) -> str:
        now = self.clock.now()

        def work(conn: Connection) -> None:
            runs.change_step(conn, self.id, stored["seq"], {"state": StepState.UNKNOWN, "finished_at": now,
                                                            "output": "the daemon stopped while this step ran"})
        await self.store.write(work)
        return await self._end(RunState.UNKNOWN, Reason.NEEDS_HUMAN,
                               f"step {stored['name']}: {recovery.reason}; a person must check and decide")

    async def _expire_silences(self) -> None:
        """The run's silences end with it (their `endsAt` bounds them if this fails: the daemon died, an
        Alertmanager is down); the outcome goes to the timeline."""
        expired, problems = await self.kinds.expire_silences()
        if not expired and not problems:
            return
        now = self.clock.now()
        text = (f"expired silence(s) {', '.join(expired)}" if expired else "") + (
            f"{'; ' if expired else ''}could not expire: {'; '.join(problems)} (they end at their endsAt)"
            if problems else "")
        if problems:
            log.warning("silences of run %s not expired: %s", display_id(self.id), "; ".join(problems))
        note = self._event(now, "run_silences_expired", f"run of {self.row['playbook']}: {text}", silences=expired)
        await self.store.write(lambda conn: events.append(conn, note))

    async def _end(self, state: RunState, reason: Reason | None, why: str,
                   open_steps: StepState = StepState.SKIPPED) -> str:
        now = self.clock.now()
        playbook = self.playbook

        def work(conn: Connection) -> str:
            current = runs.state_of(conn, self.id)
            final = RunState.CANCELLED if current == RunState.CANCELLED else state
            runs.change(conn, self.id, {"state": final, "reason": str(reason) if final == state and reason else
                                        (str(Reason.CANCELLED) if final != state else None),
                                        "finished_at": now, "lease_owner": None, "lease_until": None,
                                        "updated_at": now})
            runs.finish_steps(conn, self.id, open_steps if final == state else StepState.CANCELLED, now)
            text = f"run of {self.row['playbook']} {final}: {why if final == state else 'cancelled'}"
            events.append(conn, self._event(now, f"run_{final}", text, why=str(reason) if reason else None,
                                            finished_at=format_time(now)))
            if self.incident_id is not None and run_cause(final) is not None:
                pages.review_soon(conn, self.incident_id, now)  # the pager decides now, not at its next deadline
            if playbook is not None and playbook.circuit_breaker is not None and final in (
                    RunState.SUCCEEDED, RunState.FAILED, RunState.TIMED_OUT, RunState.UNKNOWN):
                before: Breaker = load_breaker(conn, playbook.name)
                after = breaker_record(before, playbook, final == RunState.SUCCEEDED, now)
                if after != before:
                    save_breaker(conn, playbook.name, after, now)
            return str(final)

        final = await self.store.write(work)
        if playbook is not None and any(s.kind == StepKind.SILENCE for s in (*playbook.steps, *playbook.on_failure)):
            await self._expire_silences()
        log.info("run ended", extra={"run": display_id(self.id), "playbook": self.row["playbook"], "state": final,
                                     "reason": str(reason) if reason else None})
        return str(final)
