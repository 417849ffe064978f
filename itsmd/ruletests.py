"""`itsmd test`: each test of a rule test file on a rehearsal of the real pipeline, time moved by a fake clock;
PASS or FAIL per test with a diff of expected vs got."""

from __future__ import annotations

import asyncio
import difflib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import yaml

from itsmd.config import Config
from itsmd.config.ruletests import (
    INCIDENT_TIMES,
    PROBLEM_TIMES,
    RUN_TIMES,
    Case,
    Expectation,
    SentAlert,
    Suite,
    load_suite,
)
from itsmd.core.expectation import Item, pair, project
from itsmd.core.timestamp import format_time, parse_time
from itsmd.errors import ConfigError
from itsmd.pipeline import normalize
from itsmd.rehearsal import Rehearsal


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str
    failures: tuple[str, ...]  # each a readable block: what was checked when, and the diff

    @property
    def passed(self) -> bool:
        return not self.failures


def suite_config(config: Config, suite: Suite) -> Config:
    """The config a suite runs on: its own rules and services where it names them, else those of `config`."""
    return replace(config, rules=suite.rules if suite.rules is not None else config.rules,
                   playbooks=suite.playbooks if suite.playbooks is not None else config.playbooks,
                   services=suite.services if suite.services is not None else config.services)


async def run_case(config: Config, case: Case) -> Outcome:
    """Send the case's alerts at their offsets and check each expectation at its own; ConfigError for bad rules."""
    sent: dict[float, list[SentAlert]] = {}
    for a in case.alerts:
        sent.setdefault(a.at, []).append(a)
    checks: dict[float, list[Expectation]] = {}
    for e in case.expect:
        checks.setdefault(e.at, []).append(e)
    failures: list[str] = []
    async with Rehearsal(config, case.start) as r:
        starts: dict[frozenset[tuple[str, str]], datetime] = {}
        for at in sorted(sent.keys() | checks.keys()):
            await r.advance(case.start + timedelta(seconds=at))
            if at in sent:
                body = {"version": "4", "alerts": [_webhook_alert(a, starts, r.now) for a in sent[at]]}
                r.deliver(normalize.webhook(body, r.now, max_alerts=len(sent[at])))
                await r.process()
            for expectation in checks.get(at, ()):
                failures += await _check(r, expectation, case.start)
    return Outcome(case.name, tuple(failures))


def _webhook_alert(a: SentAlert, starts: dict[frozenset[tuple[str, str]], datetime], now: datetime) -> Any:
    """The alert as Alertmanager would send it: `startsAt` fixed while it keeps firing, `endsAt` when resolved."""
    key = frozenset(a.labels.items())
    raw: dict[str, Any] = {"status": str(a.status), "labels": dict(a.labels), "annotations": dict(a.annotations)}
    if a.status == "firing":
        raw["startsAt"] = format_time(starts.setdefault(key, now))
    else:
        raw["startsAt"] = format_time(starts.pop(key, now))
        raw["endsAt"] = format_time(now)
    return raw


async def _check(r: Rehearsal, e: Expectation, start: datetime) -> list[str]:
    out: list[str] = []
    when = format_offset((r.now - start).total_seconds())
    if e.incidents is not None:
        got = [_offsets(i, INCIDENT_TIMES, start) for i in await r.incidents()]
        out += _compare(f"at {when}: incidents", e.incidents, got, INCIDENT_TIMES)
    if e.problems is not None:
        got = [_offsets(p, PROBLEM_TIMES, start) for p in await r.problems()]
        out += _compare(f"at {when}: problems", e.problems, got, PROBLEM_TIMES)
    if e.runs is not None:
        got = [_offsets(run, RUN_TIMES, start) for run in await r.runs()]
        out += _compare(f"at {when}: runs", e.runs, got, RUN_TIMES)
    return out


def _offsets(item: dict[str, Any], times: frozenset[str], start: datetime) -> dict[str, Any]:
    """The API item with its times as seconds since the test's start (as the expectations have them)."""
    out = dict(item)
    for key in times & out.keys():
        when = parse_time(out[key]) if isinstance(out[key], str) else None
        out[key] = None if when is None else (when - start).total_seconds()
    return out


def _compare(title: str, expected: Sequence[Item], got: list[dict[str, Any]], times: frozenset[str]) -> list[str]:
    """[] when every expected item matches its own actual item and no actual item is left; else one block with
    a unified diff of the expected items against the actual ones (cut to the expected keys)."""
    p = pair(expected, got)
    if p.ok:
        return []
    left: list[Any] = []
    right: list[Any] = []
    for i, j in p.pairs + p.near:
        left.append(_shown(expected[i], times))
        right.append(_shown(project(expected[i], got[j]), times))
    for i in p.missing:
        left.append(_shown(expected[i], times))
    keys = sorted({k for e in expected for k in e} or {"rule", "state"})
    for j in p.unexpected:
        right.append(_shown({k: got[j].get(k) for k in ["id", *keys] if k in got[j]}, times))
    diff = difflib.unified_diff(_yaml(left), _yaml(right), "expected", "got", lineterm="", n=100)
    summary = f"{len(p.pairs)} of {len(expected)} expected matched, {len(got)} present"
    return [f"{title} differ ({summary})\n" + "\n".join(diff)]


def _shown(item: Any, times: frozenset[str]) -> Any:
    if not isinstance(item, Mapping):
        return item
    return {k: format_offset(v) if k in times and isinstance(v, int | float) and not isinstance(v, bool) else
            dict(v) if isinstance(v, Mapping) else v for k, v in item.items()}


def _yaml(items: list[Any]) -> list[str]:
    text = yaml.safe_dump(items, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000)
    return text.splitlines() if items else ["[]"]


def format_offset(seconds: float) -> str:
    """Seconds as a duration like the config writes one: `0s`, `90s` -> `1m30s`, `-5s` for times before the
    start, fractions as `ms`."""
    sign = "-" if seconds < 0 else ""
    ms = round(abs(seconds) * 1000)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            parts.append(f"{n}{unit}")
    return sign + ("".join(parts) or "0s")


async def run_files(config: Config, files: Sequence[Path], out: TextIO) -> int:
    """Every test of every file; prints PASS/FAIL lines, failures' diffs and file problems. 1 if anything
    failed or a file has problems, else 0."""
    passed = failed = 0
    broken = False
    for path in files:
        try:
            suite = load_suite(path)
            cfg = suite_config(config, suite)
            print(suite.file, file=out)
            for case in suite.cases:
                outcome = await run_case(cfg, case)
                passed += outcome.passed
                failed += not outcome.passed
                print(f"  {'PASS' if outcome.passed else 'FAIL'}  {case.name}", file=out)
                for failure in outcome.failures:
                    print(_indent(failure, 8), file=out)
        except ConfigError as e:
            broken = True
            for problem in e.problems:
                print(problem, file=out)
    print(f"{passed} passed, {failed} failed" + (", some files have problems" if broken else ""), file=out)
    return 1 if failed or broken else 0


def _indent(text: str, width: int) -> str:
    return "\n".join(" " * width + line for line in text.splitlines())



def main(files: Sequence[Path], load: Callable[[], Config]) -> int:
    """The command: the config as `serve` finds it (`-c`, else ./itsmd.yaml, else defaults), then every file."""
    try:
        config = load()
    except ConfigError as e:
        for problem in e.problems:
            print(problem)
        return 1
    return asyncio.run(run_files(config, files, sys.stdout))
