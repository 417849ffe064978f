"""The `silence` step: an Alertmanager silence in every configured `alertmanagers`, found again by its `createdBy`
marker (so a retried or resumed step adds none) and expired when its run ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from itsmd import alertmanager
from itsmd.actions.result import StepResult
from itsmd.clock import Clock
from itsmd.config.model import AlertmanagerTarget
from itsmd.core.timestamp import format_time
from itsmd.errors import UpstreamError

log = logging.getLogger("itsmd.runner")
LIVE = frozenset(("active", "pending"))  # silences that still mute (or will)


def marker(run_id: str, step: str) -> str:
    """The `createdBy` of a step's silences: itsmd/RUN-n/step. It finds them again after a retry or a crash."""
    return f"itsmd/{run_id}/{step}"


@dataclass(frozen=True, slots=True)
class Request:
    created_by: str  # the marker
    matchers: Sequence[Mapping[str, object]]  # {name, value, isRegex, isEqual}
    duration: float
    comment: str


class Silencer:
    """Creates and expires the silences of `silence` steps through the Alertmanager v2 API (`token_file` is sent
    as a Bearer token, as reconciliation does)."""

    def __init__(self, session: aiohttp.ClientSession, targets: Callable[[], Sequence[AlertmanagerTarget]],
                 clock: Clock, timeout: float = 10.0) -> None:
        self._session, self._targets, self._clock, self._timeout = session, targets, clock, timeout

    async def silence(self, request: Request, timeout: float) -> StepResult:
        """Silence in every Alertmanager (concurrently); succeeded when all of them hold one. One that already holds
        a live silence with this marker keeps it (a retry or a resumed step adds no second one)."""
        targets = self._targets()
        if not targets:
            return StepResult(False, error="no alertmanagers configured (the silence step needs `alertmanagers`)")
        now = self._clock.now()
        ends = now + timedelta(seconds=request.duration)
        call = min(timeout, self._timeout)
        outcomes = await asyncio.gather(*(self._one(t, request, now, ends, call) for t in targets),
                                        return_exceptions=True)
        made, errors = [], []
        for target, outcome in zip(targets, outcomes, strict=True):
            if isinstance(outcome, UpstreamError):
                errors.append(str(outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                made.append({"alertmanager": alertmanager.shown(target.url), "id": outcome[0],
                             "reused": outcome[1]})
        ids = [m["id"] for m in made]
        doc = {"ids": ids, "silences": made, "ends_at": format_time(ends), "created_by": request.created_by}
        lines = [f"silence {m['id']} in {m['alertmanager']}" + (" (kept from an earlier attempt)" if m["reused"]
                                                                 else "") for m in made]
        if errors:
            return StepResult(False, output="\n".join(lines), json=doc, error="; ".join(errors))
        return StepResult(True, output="\n".join([*lines, f"until {format_time(ends)}"]), json=doc)

    async def _one(self, target: AlertmanagerTarget, request: Request, now: datetime, ends: datetime,
                   timeout: float) -> tuple[str, bool]:
        for found in await alertmanager.silences(self._session, target, timeout):
            if found.created_by == request.created_by and found.state in LIVE:
                return found.id, True
        body = alertmanager.silence_body(request.matchers, now, ends, request.created_by, request.comment)
        return await alertmanager.create_silence(self._session, target, body, timeout), False

    async def expire(self, prefix: str) -> tuple[list[str], list[str]]:
        """Expire every live silence whose marker starts with `prefix` (a run's); (ids expired, problems)."""
        expired: list[str] = []
        problems: list[str] = []
        for target in self._targets():
            try:
                for found in await alertmanager.silences(self._session, target, self._timeout):
                    if found.created_by.startswith(prefix) and found.state in LIVE:
                        await alertmanager.expire_silence(self._session, target, found.id, self._timeout)
                        expired.append(found.id)
            except UpstreamError as e:
                problems.append(str(e))
        return expired, problems
