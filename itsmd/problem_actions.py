"""What people do to problems: change state, owner or title (`PATCH`) and record a known error (`PUT
.../known-error`), each one write with its timeline record."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from itsmd.core.problem import (
    TITLE_MAX_LENGTH,
    UNRESOLVED,
    State,
    display_id,
    known_error_refusal,
    refusal,
)
from itsmd.errors import BadRequest, Conflict, NotFound
from itsmd.storage import events, problems
from itsmd.storage.events import Event

_PATCH_KEYS = frozenset({"state", "owner", "title", "comment"})
_KNOWN_ERROR_KEYS = frozenset({"root_cause", "workaround", "playbook", "comment"})
_OWNER_MAX_LENGTH = 200
_TEXT_MAX_LENGTH = 65536
_PLAYBOOK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")  # as in the playbook and rule schemas


def _existing(conn: Connection, number: int) -> dict[str, Any]:
    row = problems.get(conn, number)
    if row is None:
        raise NotFound("no such problem")
    return row


def _unknown_keys(body: dict[str, Any], allowed: frozenset[str]) -> None:
    extra = sorted(k for k in body if k not in allowed)
    if extra:
        raise BadRequest(f"unknown field(s) {', '.join(map(repr, extra))} (allowed: {', '.join(sorted(allowed))})")


def _text(body: dict[str, Any], key: str, max_length: int, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise BadRequest(f"{key} must be a non-empty string of at most {max_length} characters")
    return value


def _comment(body: dict[str, Any]) -> str:
    comment = body.get("comment", "")
    if not isinstance(comment, str):
        raise BadRequest("comment must be a string")
    return comment


def _state_values(conn: Connection, row: dict[str, Any], target: State, now: datetime) -> dict[str, Any]:
    """The columns a move to `target` changes; Conflict when the state machine or the signature refuses it."""
    state = State(row["state"])
    why = refusal(state, target, row["known_error"] is not None)
    if why:
        raise Conflict(why)
    if target == state:
        return {}
    values: dict[str, Any] = {"state": target}
    if target in UNRESOLVED and state not in UNRESOLVED:  # a resolved problem reopens
        other = problems.other_unresolved(conn, row["signature_hash"], row["id"])
        if other is not None:
            raise Conflict(f"{display_id(other)} is the unresolved problem of this signature; work on that one")
        values.update(resolved_at=None, reopen_count=row["reopen_count"] + 1)
    if target == State.RESOLVED:
        values["resolved_at"] = now
    elif target == State.CLOSED:
        values["closed_at"] = now
    return values


def patch(conn: Connection, number: int, actor: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """`{"state"?, "owner"?, "title"?, "comment"?}`: NotFound, Conflict (409) or BadRequest when it cannot be."""
    _unknown_keys(body, _PATCH_KEYS)
    if not _PATCH_KEYS.difference({"comment"}).intersection(body):
        raise BadRequest("give at least one of state, owner, title")
    comment = _comment(body)
    row = _existing(conn, number)
    values: dict[str, Any] = {}
    if "title" in body:
        values["title"] = _text(body, "title", TITLE_MAX_LENGTH)
    if "owner" in body:
        values["owner"] = _text(body, "owner", _OWNER_MAX_LENGTH, required=False)  # null: no owner
    if "state" in body:
        target = body["state"]
        if not isinstance(target, str) or target not in set(State):
            raise BadRequest(f"state must be one of {', '.join(State)}")
        values.update(_state_values(conn, row, State(target), now))
    notes: list[Event] = []
    if "state" in values:
        notes.append(Event(now, "problem", number, actor, "state_changed",
                           comment or f"{row['state']} -> {values['state']} by {actor}",
                           {"from": row["state"], "to": values["state"]}))
    changed: dict[str, Any] = {k: values[k] for k in ("owner", "title") if k in values and values[k] != row[k]}
    if changed:
        notes.append(Event(now, "problem", number, actor, "updated", comment or f"{', '.join(changed)} by {actor}",
                           changed))
    if notes:
        values["updated_at"] = now
        problems.change(conn, number, values)
        events.append(conn, notes)
    return {**row, **values}


def record_known_error(conn: Connection, number: int, actor: str, body: dict[str, Any],
                       now: datetime) -> dict[str, Any]:
    """`{"root_cause", "workaround", "playbook"?, "comment"?}`: the problem becomes a known error; new incidents
    of its signature link to it at once."""
    _unknown_keys(body, _KNOWN_ERROR_KEYS)
    comment = _comment(body)
    root_cause = _text(body, "root_cause", _TEXT_MAX_LENGTH)
    workaround = _text(body, "workaround", _TEXT_MAX_LENGTH)
    playbook = body.get("playbook")
    if playbook is not None and (not isinstance(playbook, str) or len(playbook) > 200
                                 or not _PLAYBOOK_NAME.fullmatch(playbook)):
        raise BadRequest("playbook must be a playbook name (letters, digits and _ . @ -) or null")
    row = _existing(conn, number)
    why = known_error_refusal(State(row["state"]))
    if why:
        raise Conflict(why)
    known = {"root_cause": root_cause, "workaround": workaround, "playbook": playbook}
    values = {"known_error": known, "state": State.KNOWN_ERROR, "updated_at": now}
    problems.change(conn, number, values)
    verb = "updated" if row["known_error"] is not None else "recorded"
    events.append(conn, [Event(now, "problem", number, actor, "known_error",
                               comment or f"known error {verb} by {actor}",
                               {"from": row["state"], "to": State.KNOWN_ERROR, "playbook": playbook})])
    return {**row, **values}
