"""An Alertmanager's v2 API as itsmd uses it: the alerts firing there (`GET /api/v2/alerts`) and the silences of
the `silence` step (`POST /api/v2/silences`, `GET /api/v2/silences`, `DELETE /api/v2/silence/{id}`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from yarl import URL

from itsmd.config.model import AlertmanagerTarget
from itsmd.core.alert import IncomingAlert, Rejected, Status, from_webhook
from itsmd.core.reconcile import RemoteState
from itsmd.core.timestamp import format_time
from itsmd.errors import BadRequest, UpstreamError
from itsmd.pipeline.dedup import fingerprint_of
from itsmd.pipeline.normalize import parse_json

# Every firing alert, suppressed ones included: a silenced or inhibited alert still fires (it must not be
# flagged stale here), it is only not notified. Resolved alerts are never listed by this endpoint.
_FIRING = {"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"}


@dataclass(frozen=True, slots=True)
class RemoteAlert:
    alert: IncomingAlert  # as a webhook would carry it: firing, no expiry
    fingerprint: str  # computed here from the labels, never Alertmanager's field
    state: RemoteState


@dataclass(frozen=True, slots=True)
class Firing:
    """What one read found: the alerts, and how many were left out because itsmd would reject them."""

    alerts: list[RemoteAlert]
    rejected: int


def shown(url: str) -> str:
    """The URL for logs: no user, password, query or fragment (they may carry credentials)."""
    try:
        return str(URL(url).with_user(None).with_query(None).with_fragment(None))
    except ValueError:
        return "(unparsable URL)"


def _why(e: BaseException, timeout: float) -> str:
    if isinstance(e, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(e, aiohttp.ClientConnectorError):
        return f"cannot connect: {e.os_error.strerror or type(e.os_error).__name__}"
    return type(e).__name__  # other client errors may quote the URL: name the kind only


def _remote(raw: Any, now: datetime) -> RemoteAlert:
    if not isinstance(raw, dict):
        raise Rejected("alert must be an object")
    status = raw.get("status")
    state = status.get("state") if isinstance(status, dict) else None
    as_sent = {"status": Status.FIRING, "labels": raw.get("labels"), "annotations": raw.get("annotations"),
               "startsAt": raw.get("startsAt"), "generatorURL": raw.get("generatorURL")}
    alert = from_webhook(as_sent, now)
    known = RemoteState(state) if isinstance(state, str) and state in set(RemoteState) else None
    return RemoteAlert(alert, fingerprint_of(alert), known or RemoteState.UNPROCESSED)


def parse(body: bytes, now: datetime) -> Firing:
    """The firing alerts of a `GET /api/v2/alerts` answer; UpstreamError when it is not an alert list."""
    try:
        doc = parse_json(body)
    except BadRequest as e:
        raise UpstreamError(str(e)) from e
    if not isinstance(doc, list):
        raise UpstreamError("the answer is not a JSON list of alerts")
    alerts, rejected = [], 0
    for raw in doc:
        try:
            alerts.append(_remote(raw, now))
        except Rejected:
            rejected += 1
    return Firing(alerts, rejected)


async def firing(session: aiohttp.ClientSession, target: AlertmanagerTarget, timeout: float,
                 now: datetime) -> Firing:
    """Read the alerts firing in `target`; UpstreamError (naming the URL without secrets) when it cannot be."""
    where = shown(target.url)
    headers = {"Authorization": f"Bearer {target.token.reveal()}"} if target.token is not None else {}
    url = target.url.rstrip("/") + "/api/v2/alerts"
    try:
        async with session.get(url, params=_FIRING, headers=headers, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            if resp.status != 200:
                raise UpstreamError(f"{where}: GET /api/v2/alerts answered {resp.status}")
            body = await resp.read()
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        raise UpstreamError(f"{where}: {_why(e, timeout)}") from e
    try:
        return parse(body, now)
    except UpstreamError as e:
        raise UpstreamError(f"{where}: {e}") from e


# --- silences ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RemoteSilence:
    id: str
    state: str  # active | pending | expired
    created_by: str
    ends_at: str


def _auth(target: AlertmanagerTarget) -> dict[str, str]:
    return {"Authorization": f"Bearer {target.token.reveal()}"} if target.token is not None else {}


async def _call(session: aiohttp.ClientSession, target: AlertmanagerTarget, method: str, path: str, timeout: float,
                body: object = None) -> bytes:
    """One API call; its body when it answered 200, else UpstreamError naming the URL without secrets."""
    where = shown(target.url)
    url = target.url.rstrip("/") + path
    try:
        async with session.request(method, url, json=body, headers=_auth(target), allow_redirects=False,
                                   timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            answer = await resp.content.read(1 << 22)
            if resp.status != 200:
                why = answer[:200].decode("utf-8", "replace").strip()
                raise UpstreamError(f"{where}: {method} {path.split('/silence/')[0]} answered {resp.status}"
                                    + (f": {why}" if why else ""))
            return answer
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        raise UpstreamError(f"{where}: {_why(e, timeout)}") from e


async def silences(session: aiohttp.ClientSession, target: AlertmanagerTarget, timeout: float) -> list[RemoteSilence]:
    """Every silence `target` keeps (expired ones included, until its retention drops them)."""
    try:
        doc = parse_json(await _call(session, target, "GET", "/api/v2/silences", timeout))
    except BadRequest as e:
        raise UpstreamError(f"{shown(target.url)}: {e}") from e
    if not isinstance(doc, list):
        raise UpstreamError(f"{shown(target.url)}: GET /api/v2/silences: not a JSON list")
    out = []
    for raw in doc:
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            status = raw.get("status")
            state = status.get("state") if isinstance(status, dict) else None
            out.append(RemoteSilence(raw["id"], str(state), str(raw.get("createdBy", "")), str(raw.get("endsAt"))))
    return out


def silence_body(matchers: Sequence[Mapping[str, object]], starts: datetime, ends: datetime, created_by: str,
                 comment: str) -> dict[str, object]:
    """A `postableSilence`: each matcher `{name, value, isRegex, isEqual}` is one JSON object, so a value is data."""
    return {"matchers": list(matchers), "startsAt": format_time(starts), "endsAt": format_time(ends),
            "createdBy": created_by, "comment": comment}


async def create_silence(session: aiohttp.ClientSession, target: AlertmanagerTarget, body: Mapping[str, object],
                         timeout: float) -> str:
    """Create the silence; its id."""
    answer = await _call(session, target, "POST", "/api/v2/silences", timeout, body)
    try:
        doc = parse_json(answer)
    except BadRequest as e:
        raise UpstreamError(f"{shown(target.url)}: {e}") from e
    silence_id = doc.get("silenceID") if isinstance(doc, dict) else None
    if not isinstance(silence_id, str) or not silence_id:
        raise UpstreamError(f"{shown(target.url)}: POST /api/v2/silences answered no silenceID")
    return silence_id


async def expire_silence(session: aiohttp.ClientSession, target: AlertmanagerTarget, silence_id: str,
                         timeout: float) -> None:
    await _call(session, target, "DELETE", f"/api/v2/silence/{URL.build(path=silence_id).raw_path}", timeout)
