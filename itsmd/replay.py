"""`itsmd replay`: recorded webhook bodies (JSON lines) through the real normalize and pipeline on a rehearsal,
the fake clock following the recording; prints the incidents and problems that result."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from itsmd.app import tune_collector
from itsmd.clock import Clock, SystemClock
from itsmd.config import Config
from itsmd.core.timestamp import parse_time
from itsmd.errors import BadRequest, ConfigError, PayloadTooLarge
from itsmd.pipeline import normalize
from itsmd.rehearsal import Rehearsal

DEFAULT_BATCH = 1000  # deliveries per pipeline transaction: nothing else waits for the writer in a replay
_MAX_SHOWN = 20  # problems printed; the rest are counted


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    at: datetime | None  # None: a bare body (at the previous line's time, or now for the first)
    body: Any


@dataclass
class Result:
    incidents: list[dict[str, Any]]
    problems: list[dict[str, Any]]
    deliveries: int
    alerts: int
    quarantined: int
    bad_lines: list[str]
    runs: list[dict[str, Any]] = field(default_factory=list)  # dry: created by the pipeline, never executed


def read_lines(lines: Iterable[bytes]) -> Iterator[Line | str]:
    """Each non-blank line as a Line, or as a message saying why it cannot be one."""
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            doc = normalize.parse_json(raw)
        except BadRequest as e:
            yield f"line {number}: {e}"
            continue
        if isinstance(doc, dict) and "body" in doc and "at" in doc:
            at = doc["at"]
            try:
                when = parse_time(at) if isinstance(at, str) else None
            except ValueError as e:
                yield f"line {number}: at: {e}"
                continue
            if when is None:
                yield f"line {number}: at: expected an RFC 3339 time, got {str(at)[:40]!r}"
                continue
            yield Line(number, when, doc["body"])
        else:
            yield Line(number, None, doc)


async def replay(config: Config, lines: Iterable[bytes], batch: int = DEFAULT_BATCH, window: float = 1.0,
                 clock: Clock | None = None) -> Result:
    """Feed every line at its time. The pipeline runs over what arrived once per `window` seconds of recorded time
    or `batch` deliveries, whichever comes first, at the time of the last of them (the daemon's pipeline runs on
    arrival: a replayed incident may open up to `window` later than it would have); deadlines tick where they
    fall."""
    parsed = read_lines(lines)
    bad: list[str] = []
    first = None
    for item in parsed:
        if isinstance(item, str):
            bad.append(item)
        else:
            first = item
            break
    start = (first.at if first and first.at else None) or (clock or SystemClock()).now()
    async with Rehearsal(config, start, batch=batch) as r:
        pending, since = 0, start
        max_alerts = config.limits.max_alerts_per_request
        for item in _chain(first, parsed):
            if isinstance(item, str):
                bad.append(item)
                continue
            when = max(item.at or r.now, r.now)
            if pending and ((when - since).total_seconds() >= window or pending >= batch):
                await r.process()
                pending = 0
            if not pending:
                await r.advance(when)
                since = when
            r.move(when)
            try:
                if isinstance(item.body, list):
                    delivery = normalize.push(item.body, r.now, config.ingest.resolve_timeout, max_alerts)
                    source = "push"
                else:
                    delivery = normalize.webhook(item.body, r.now, max_alerts)
                    source = "webhook"
            except (BadRequest, PayloadTooLarge) as e:
                bad.append(f"line {item.number}: {e}")
                continue
            r.deliver(delivery, source)
            pending += 1
        await r.process()
        await r.advance(r.now)
        return Result(await r.incidents(), await r.problems(), r.deliveries, r.alerts, r.quarantined, bad,
                      await r.runs())


def _chain(first: Line | None, rest: Iterator[Line | str]) -> Iterator[Line | str]:
    if first is not None:
        yield first
    yield from rest


def print_result(result: Result, fmt: str, out: TextIO, err: TextIO, file: str) -> int:
    """The incidents and problems as tables or as `{"incidents", "problems", "runs"}`; bad lines on `err` as
    `FILE: line N: message`. 1 if any line was bad, else 0."""
    for problem in result.bad_lines[:_MAX_SHOWN]:
        print(f"{file}: {problem}", file=err)
    if len(result.bad_lines) > _MAX_SHOWN:
        print(f"{file}: ... {len(result.bad_lines) - _MAX_SHOWN} more bad lines", file=err)
    if fmt == "json":
        doc = {"incidents": result.incidents, "problems": result.problems, "runs": result.runs}
        out.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        _tables(result, out)
    return 1 if result.bad_lines else 0


def _tables(result: Result, out: TextIO) -> None:
    print(f"{result.deliveries} deliveries, {result.alerts} alerts ({result.quarantined} quarantined): "
          f"{len(result.incidents)} incidents, {len(result.problems)} problems, {len(result.runs)} runs (dry)",
          file=out)
    print(file=out)
    _table(out, ["ID", "STATE", "PRIO", "RULE", "SERVICE", "ALERTS", "FIRING", "OPENED", "TITLE"],
           [[i["id"], i["state"], i["priority"], i["rule"], i["service"] or "-", i["alert_count"], i["firing_count"],
             i["opened_at"], i["title"]] for i in result.incidents])
    if result.problems:
        print(file=out)
        _table(out, ["ID", "STATE", "INCIDENTS", "LAST SEEN", "SIGNATURE", "TITLE"],
               [[p["id"], p["state"], p["incident_count"], p["last_seen_at"], p["signature"], p["title"]]
                for p in result.problems])


def _table(out: TextIO, head: list[str], rows: list[list[Any]]) -> None:
    cells = [head] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(head))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths[:-1], strict=True)) + "  " + r[-1], file=out)


def _cell(value: Any) -> str:
    """A value for a table cell: control characters escaped (alert data is shown, never interpreted)."""
    text = str(value)
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text



def main(file: Path, load: Callable[[], Config], fmt: str, batch: int | None) -> int:
    """The command: the config as `serve` finds it, the file read line by line; 1 on problems."""
    try:
        config = load()
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return 1
    try:
        with file.open("rb") as lines:
            tune_collector()  # the command's process only (tests call `replay` in theirs)
            result = asyncio.run(replay(config, lines, batch=batch or DEFAULT_BATCH))
    except OSError as e:
        print(f"{file}: cannot read: {e.strerror}", file=sys.stderr)
        return 1
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return 1
    return print_result(result, fmt, sys.stdout, sys.stderr, str(file))
