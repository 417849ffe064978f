"""Silences as written — a `POST /api/v1/silences` body or an item of `silences:` in itsmd.yaml — checked by the
JSON Schema's `silence` definition and compiled to core Silences, every problem with its path."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from jsonschema import Draft202012Validator

from itsmd.config.document import load_validator, validate
from itsmd.config.duration import parse_duration
from itsmd.config.problem import PathElement, Problem, format_path
from itsmd.core.cron import CronSchedule
from itsmd.core.matcher import Matcher, parse_matcher
from itsmd.core.silence import Silence
from itsmd.core.timestamp import format_time, parse_time

CONFIG_CREATOR = "config"
CONFIG_PREFIX = "config:"
Where = tuple[PathElement, ...]


@functools.cache
def _validator() -> Draft202012Validator:
    """The `silence` definition of the config schema, as a schema of its own (for API bodies)."""
    schema = load_validator("itsmd.schema.json").schema
    assert isinstance(schema, Mapping)
    defs = schema["$defs"]
    return Draft202012Validator({"$defs": defs, "$ref": "#/$defs/silence"})


def _time(value: Any) -> datetime | None:
    """An RFC 3339 string, or a YAML timestamp with an offset; None when absent."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a time needs an offset, like 2026-12-01T02:00:00Z")
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 time like 2026-12-01T02:00:00Z")
    when = parse_time(value)
    if when is None:
        raise ValueError("the zero time is not a time")
    return when


def compile_silence(
    raw: Mapping[str, Any], where: Where = (), *, silence_id: str | None = None, starts_at: datetime | None = None,
) -> tuple[Silence | None, list[Problem]]:
    """The Silence of a schema-valid item, or None and its problems.

    `silence_id` None gives a config silence its id from its definition; `starts_at` is the default start.
    """
    problems: list[Problem] = []

    def fail(key: PathElement | None, message: str, *more: PathElement) -> None:
        problems.append(Problem((*where, key, *more) if key is not None else where, message))

    matchers: list[Matcher] = []
    for j, text in enumerate(raw["matchers"]):
        try:
            matchers.append(parse_matcher(text))
        except ValueError as e:
            fail("matchers", str(e), j)
    times: dict[str, datetime | None] = {}
    for key in ("starts_at", "ends_at"):
        try:
            times[key] = _time(raw.get(key))
        except ValueError as e:
            fail(key, str(e))
    zone = raw.get("timezone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        fail("timezone", f"unknown time zone {zone[:60]!r}; use an IANA name like UTC or Europe/Berlin")
        zone = "UTC"
    schedule = duration = None
    if raw.get("schedule") is not None:
        try:
            schedule = CronSchedule(raw["schedule"], zone)
        except ValueError as e:
            fail("schedule", str(e))
    if raw.get("duration") is not None:
        try:
            duration = parse_duration(raw["duration"])
        except ValueError as e:
            fail("duration", str(e))
    if problems:
        return None, problems
    try:
        silence = Silence(
            silence_id or "", tuple(matchers), times["starts_at"] or starts_at, times["ends_at"], schedule, duration,
            raw.get("created_by", CONFIG_CREATOR), raw.get("comment", ""),
        )
    except ValueError as e:
        return None, [Problem(where, str(e))]
    return (silence if silence_id else replace(silence, id=config_id(silence))), []


def config_id(s: Silence) -> str:
    """The id of a declared silence: a hash of its definition, so an unchanged one keeps it across reloads."""
    doc = {
        "matchers": [str(m) for m in s.matchers], "starts_at": format_time(s.starts_at),
        "ends_at": format_time(s.ends_at), "schedule": s.schedule.expression if s.schedule else None,
        "timezone": s.schedule.timezone if s.schedule else None, "duration": s.duration,
        "created_by": s.created_by, "comment": s.comment,
    }
    return CONFIG_PREFIX + hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


def compile_declared(items: list[Any], broken: list[Where]) -> tuple[tuple[Silence, ...], list[Problem]]:
    """The `silences:` list of the config; items with schema problems (`broken` paths) are left out."""
    out: dict[str, tuple[int, Silence]] = {}
    problems: list[Problem] = []
    for i, raw in enumerate(items):
        where: Where = ("silences", i)
        if any(path[: len(where)] == where for path in broken):
            continue
        silence, found = compile_silence(raw, where)
        problems += found
        if silence is None:
            continue
        if silence.id in out:
            problems.append(Problem(where, f"the same silence as {format_path(('silences', out[silence.id][0]))}"))
            continue
        out[silence.id] = (i, silence)
    return tuple(s for _, s in out.values()), problems


def from_request(body: Any, now: datetime, silence_id: str) -> Silence:
    """The silence a `POST /api/v1/silences` body asks for (starting now unless it says); ValueError naming
    every problem."""
    problems = validate(body, _validator())
    silence = None
    if not problems:
        silence, problems = compile_silence(body, silence_id=silence_id)
        for key in ("created_by", "comment"):
            if not isinstance(body.get(key), str) or not body[key].strip():
                problems.append(Problem((key,), "required: a non-empty string"))
    if silence is not None and silence.ends_at is not None:
        if silence.ends_at <= now:
            problems.append(Problem(("ends_at",), "must be in the future"))
        elif silence.starts_at is not None and silence.ends_at <= silence.starts_at:
            problems.append(Problem(("ends_at",), "must be after starts_at"))
    if problems or silence is None:
        raise ValueError("; ".join(f"{format_path(p.path)}: {p.message}" if p.path else p.message
                                   for p in problems))
    return silence if silence.starts_at is not None else replace(silence, starts_at=now)
