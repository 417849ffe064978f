"""Playbook files: YAML -> JSON Schema -> templates, patterns and cross-checks -> one PlaybookSet, every problem
at once. Shell steps do not exist: a playbook that tries to get one is refused here."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsmd.config.document import load_validator, read_yaml, validate
from itsmd.config.duration import parse_duration
from itsmd.config.problem import PathElement, Problem, format_path, format_problems, known_names
from itsmd.config.rules import rule_files
from itsmd.core.matcher import parse_matcher
from itsmd.core.playbook import (
    DEFAULT_EXPECT,
    PARAM_CONTEXT_NAMES,
    STEP_CONTEXT_NAMES,
    STEP_RESULT_FIELDS,
    TARGET_CONTEXT_NAMES,
    Approval,
    BlastRadius,
    CircuitBreaker,
    Concurrency,
    ExecSpec,
    HttpSpec,
    JsonTemplate,
    NotifySpec,
    Param,
    Playbook,
    PlaybookSet,
    RateLimit,
    Retries,
    SilenceMatcher,
    SilenceSpec,
    SleepSpec,
    Step,
    StepSpec,
    WaitResolvedSpec,
)
from itsmd.core.rule import Fixed
from itsmd.errors import ConfigError
from itsmd.template import Template, attribute_paths, compile_template

SCHEMA_NAME = "playbooks.schema.json"
# Programs that run a command string; with `-c` (or busybox's applet of one) they are a shell step in disguise.
SHELLS = frozenset(("sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "csh", "tcsh", "fish", "busybox"))
_TEMPLATE_MARKS = ("{{", "{%", "{#")
# Output limits per template use: an argument, a URL or a JSON string is refused when longer, never cut.
_ARG_MAX = 32768
_TEXT_MAX = 4000
_WORD_MAX = 1000

Where = tuple[PathElement, ...]


@dataclass(frozen=True, slots=True)
class Loaded:
    """What the files held: the valid playbooks, every name declared (valid or not, for the rules' cross-check)
    and the problems as `FILE: PATH: message`."""

    playbooks: PlaybookSet
    declared: frozenset[str]
    problems: list[str]


def read_playbooks(globs: Sequence[str], base_dir: Path, notifiers: Collection[str] = (),
                   alertmanagers: bool = True) -> Loaded:
    """The playbooks of the files matching `globs`, one playbook per file; `headers_file` paths are relative to
    `base_dir`; `notifiers` are the names `notify.to` may use (a mapping name -> type also lets the check refuse
    PagerDuty); `alertmanagers` false makes a silence step a problem. A playbook with any problem is left out."""
    problems: list[str] = []
    playbooks: list[Playbook] = []
    declared: dict[str, str] = {}
    for path in rule_files(globs):
        file = str(path)
        try:
            data = read_yaml(path, file)
        except ConfigError as e:
            problems += e.problems
            continue
        if data is None:
            continue  # an empty file holds no playbook
        compiler = _Compiler(file, base_dir, frozenset(notifiers))
        if isinstance(notifiers, Mapping):  # name -> type: lets the check refuse notify to PagerDuty
            compiler.notifier_types = notifiers
        compiler.alertmanagers = alertmanagers
        playbook = compiler.compile(data)
        name = data.get("name") if isinstance(data, dict) else None
        if isinstance(name, str):
            if name in declared:
                compiler.problem(("name",), f"duplicate playbook name {name!r} (also {declared[name]})")
                playbook = None
            declared.setdefault(name, file)
        problems += format_problems(compiler.problems, file)
        if playbook is not None:
            playbooks.append(playbook)
    return Loaded(PlaybookSet(playbooks), frozenset(declared), problems)


def load_playbooks(globs: Sequence[str], base_dir: Path, notifiers: Collection[str] = ()) -> PlaybookSet:
    """Like `read_playbooks`, raising ConfigError with every problem."""
    loaded = read_playbooks(globs, base_dir, notifiers)
    if loaded.problems:
        raise ConfigError(loaded.problems)
    return loaded.playbooks


# The label name and operator of a silence matcher: a bare word or a double-quoted name, then = != =~ !~.
_MATCHER_HEAD = re.compile(r'\s*("(?:[^"\\]|\\.)*"|[^\s{}!=~,\\"\'`]+)\s*(=~|!~|!=|=)\s*')

_TEMPLATE_PARTS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


def silence_matcher(text: str, where: Where, tpl: Callable[[str, Where], Template]) -> SilenceMatcher:
    """A silence step's matcher: name and operator are taken literally from the text, and only what stands between
    the value's quotes is a template, so the rendered value is one literal matcher value (quotes, commas or
    newlines in it never make another matcher). Regex matchers must be written literally."""
    head = _MATCHER_HEAD.match(text)
    if head is None:
        raise ValueError(f"not a matcher: {text!r} (write name=\"value\" with = != =~ !~)")
    rest = text[head.end():].rstrip()
    if not any(mark in text for mark in _TEMPLATE_MARKS):
        m = parse_matcher(text)
        return SilenceMatcher(m.name, m.op.value, Fixed(m.value))
    name = parse_matcher(f'{head.group(1)}=""').name
    if any(mark in head.group(1) for mark in _TEMPLATE_MARKS):
        raise ValueError("the label name of a matcher must be written literally, not a template")
    op = head.group(2)
    if op in ("=~", "!~"):
        raise ValueError(f"a regex matcher ({op}) must be written literally: a value from an alert would be read "
                         "as a regex; use = or != with a template")
    if len(rest) < 2 or rest[0] != '"' or rest[-1] != '"':
        raise ValueError('a templated matcher value must be double-quoted as a whole: name="{{ labels.x }}"')
    if '"' in _TEMPLATE_PARTS.sub("", rest[1:-1]):
        raise ValueError('one matcher per list item: the value holds a " outside its {{ }} expressions')
    return SilenceMatcher(name, op, tpl(rest[1:-1], where))


def shell_problem(argv: Sequence[str]) -> str | None:
    """Why `argv` (as written) runs a shell command string, or None: `sh -c ...`, `bash -lc ...`, `env sh -c`,
    `busybox sh -c`, `/bin/bash --command ...`."""
    args = list(argv)
    while args and os.path.basename(args[0]) == "env":
        args = args[1:]
        while args and (args[0].startswith("-") or "=" in args[0]):
            args = args[1:]
    if args and os.path.basename(args[0]) == "busybox":
        args = args[1:]
    if not args or os.path.basename(args[0]) not in SHELLS:
        return None
    for arg in args[1:]:
        if arg == "--command" or (arg.startswith("-") and not arg.startswith("--") and "c" in arg[1:]):
            return (f"{os.path.basename(args[0])} {arg} runs a shell command string: shell steps do not exist; call "
                    "the program directly with an argv list (or ship a script and call it with arguments)")
        if not arg.startswith("-"):
            break
    return None


class _Compiler:
    """Compiles one file's playbook key by key, collecting every problem; None when there is any."""

    def __init__(self, file: str, base_dir: Path, notifiers: frozenset[str]) -> None:
        self.file = file
        self.base_dir = base_dir
        self.notifiers = notifiers
        self.notifier_types: Mapping[str, str] = {}
        self.alertmanagers = True  # whether `alertmanagers` are configured (the silence step needs them)
        self.problems: list[Problem] = []
        self.schema_paths: list[Where] = []
        self.params: frozenset[str] = frozenset()
        self.step_names: dict[str, Where] = {}

    def problem(self, where: Where, message: str) -> None:
        self.problems.append(Problem(where, message))

    def clean(self, where: Where) -> bool:
        return not any(path[: len(where)] == where for path in self.schema_paths)

    def get(self, raw: Mapping[Any, Any], where: Where, key: PathElement, build: Callable[[Any, Where], object],
            default: object) -> Any:
        at = (*where, key)
        if key not in raw or not self.clean(at):
            return default
        try:
            return build(raw[key], at)
        except ValueError as e:
            self.problem(at, str(e))
            return default

    def compile(self, data: Any) -> Playbook | None:
        schema_problems = validate(data, load_validator(SCHEMA_NAME))
        self.problems += schema_problems
        self.schema_paths = [p.path for p in schema_problems]
        if not isinstance(data, dict):
            return None
        raw_params = data.get("params")
        if isinstance(raw_params, dict):
            self.params = frozenset(k for k in raw_params if isinstance(k, str))
        fields: dict[str, Any] = {
            "for_each": self.get(data, (), "for_each", _same, "incident"),
            "params": self.get(data, (), "params", self.param_list, ()),
            "concurrency": self.get(data, (), "concurrency", self.concurrency, Concurrency()),
            "cooldown": self.get(data, (), "cooldown", _duration, 0.0),
            "rate_limit": self.get(data, (), "rate_limit", _rate_limit, RateLimit()),
            "circuit_breaker": self.get(data, (), "circuit_breaker", _breaker, None),
            "blast_radius": self.get(data, (), "blast_radius", _blast, None),
            "approval": self.get(data, (), "approval", _approval, Approval()),
            "timeout": self.get(data, (), "timeout", _duration, 3600.0),
        }
        steps = self.steps(data.get("steps"), ("steps",), [])
        earlier = [s.get("name") for s in data.get("steps") or () if isinstance(s, dict)]
        on_failure = self.steps(data.get("on_failure"), ("on_failure",), [n for n in earlier if isinstance(n, str)])
        if self.problems:
            return None
        try:
            return Playbook(name=data["name"], steps=steps, on_failure=on_failure, source=self.file, **fields)
        except ValueError as e:
            self.problem((), str(e))
            return None

    def template(self, source: str, where: Where, names: Sequence[str], steps: Collection[str] = (),
                 max_length: int = _ARG_MAX, truncate: bool = False) -> Template:
        """`source` compiled for `names`; `params.<p>` must be declared and `steps.<s>` an earlier step."""
        template = compile_template(source, names=names, max_length=max_length, truncate=truncate)
        if "params" in names:
            for path in sorted(attribute_paths(source, "params")):
                if path[0] not in self.params:
                    raise ValueError(f"unknown param {path[0]!r}{known_names(self.params) or '; none declared'}")
        if "steps" in names:
            for path in sorted(attribute_paths(source, "steps")):
                if path[0] not in steps:
                    raise ValueError(f"steps.{path[0]} is not an earlier step{known_names(steps)}")
                if len(path) > 1 and path[1] not in STEP_RESULT_FIELDS:
                    raise ValueError(f"steps.{path[0]}.{path[1]}: a step result has {', '.join(STEP_RESULT_FIELDS)}")
        return template

    def param_list(self, raw: Mapping[str, Any], where: Where) -> tuple[Param, ...]:
        params = []
        for name, spec in raw.items():
            at = (*where, name)
            if not self.clean(at):
                continue
            source = self.get(spec, at, "from", lambda s, w: self.template(s, w, PARAM_CONTEXT_NAMES,
                                                                             max_length=_WORD_MAX), None)
            pattern = self.get(spec, at, "pattern", _pattern, None)
            if source is not None:
                params.append(Param(name, source, pattern))
        return tuple(params)

    def concurrency(self, raw: Mapping[str, Any], where: Where) -> Concurrency:
        key = self.get(raw, where, "key",
                       lambda s, w: self.template(s, w, TARGET_CONTEXT_NAMES, max_length=_WORD_MAX), None)
        return Concurrency(key, int(raw.get("limit", 1)))

    def steps(self, items: Any, where: Where, earlier: list[str]) -> tuple[Step, ...]:
        if not isinstance(items, list):
            return ()
        steps = []
        for i, raw in enumerate(items):
            at = (*where, i)
            if isinstance(raw, dict):
                if "shell" in raw and self.clean(at):
                    self.problem((*at, "shell"), "shell steps do not exist: use exec with an argv list")
                step = self.step(raw, at, tuple(earlier))
                if step is not None:
                    steps.append(step)
                name = raw.get("name")
                if isinstance(name, str):
                    first = self.step_names.setdefault(name, at)
                    if first != at:
                        self.problem((*at, "name"), f"duplicate step name {name!r} (also {format_path(first)})")
                    earlier.append(name)
        return tuple(steps)

    def step(self, raw: Mapping[str, Any], where: Where, earlier: tuple[str, ...]) -> Step | None:
        before = len(self.problems)
        names = STEP_CONTEXT_NAMES

        def tpl(max_length: int = _ARG_MAX, truncate: bool = False) -> Callable[[str, Where], Template]:
            return lambda s, w: self.template(s, w, names, earlier, max_length, truncate)

        kinds = [k for k in ("exec", "http", "wait_resolved", "sleep", "notify", "silence") if k in raw]
        spec: StepSpec | _HttpWithTimeout | None = None
        if len(kinds) == 1 and self.clean((*where, kinds[0])):
            kind, value, at = kinds[0], raw[kinds[0]], (*where, kinds[0])
            try:
                spec = self.spec(kind, value, at, tpl)
            except ValueError as e:
                self.problem(at, str(e))
        when = self.get(raw, where, "when", tpl(_WORD_MAX), None)
        timeout = self.get(raw, where, "timeout", _duration, None)
        if isinstance(spec, _HttpWithTimeout):
            if timeout is not None:
                self.problem((*where, "http", "timeout"), "give timeout on the step or in http, not both")
            timeout, spec = spec.timeout, spec.spec
        retries = self.get(raw, where, "retries", _retries, Retries())
        if spec is None or len(self.problems) > before or not self.clean(where):
            return None
        try:
            # notify (an outbox key) and silence (found again by its createdBy) cannot act twice: idempotent
            idempotent = bool(raw.get("idempotent", isinstance(spec, NotifySpec | SilenceSpec)))
            return Step(raw["name"], spec, when, timeout, retries, idempotent)
        except ValueError as e:
            self.problem(where, str(e))
            return None

    def spec(self, kind: str, value: Any, where: Where,
             tpl: Callable[..., Callable[[str, Where], Template]]) -> StepSpec | _HttpWithTimeout | None:
        if kind == "exec":
            return self.exec_spec(value, where, tpl())
        if kind in ("wait_resolved", "sleep"):
            seconds = parse_duration(value)
            return WaitResolvedSpec(seconds) if kind == "wait_resolved" else SleepSpec(seconds)
        if kind == "notify":
            to = value.get("to", [])
            names = (to,) if isinstance(to, str) else tuple(to)
            for j, name in enumerate(names):
                at = (*where, "to") if isinstance(to, str) else (*where, "to", j)
                if name not in self.notifiers:
                    self.problem(at, f"unknown notifier {name!r}"
                                     f"{known_names(self.notifiers) or '; no notifiers configured'}")
                elif self.notifier_types.get(name) == "pagerduty":
                    self.problem(at, f"notifier {name!r} is PagerDuty, which takes pages, not messages: notify a "
                                     "chat, webhook or email notifier (a failed run pages by itself)")
            return NotifySpec(names, self.get(value, where, "text", tpl(_TEXT_MAX, True), None))
        if kind == "silence":
            if not self.alertmanagers:
                self.problem(where, "no alertmanagers configured: the silence step creates its silences through "
                                    "the Alertmanager v2 API of `alertmanagers` in itsmd.yaml")
            matchers = tuple(self.get(value, where, "matchers", lambda items, w: [
                self.get(dict(enumerate(items)), w, j, lambda t, at: silence_matcher(t, at, tpl(_WORD_MAX)), None)
                for j in range(len(items))], []))
            comment = self.get(value, where, "comment", tpl(_TEXT_MAX, True), None)
            return SilenceSpec(tuple(m for m in matchers if m is not None), parse_duration(value["duration"]),
                               comment)
        return self.http_spec(value, where, tpl)

    def exec_spec(self, argv: list[str], where: Where, tpl: Callable[[str, Where], Template]) -> ExecSpec | None:
        if any(mark in argv[0] for mark in _TEMPLATE_MARKS):
            self.problem((*where, 0), "the program (argument 0) must be written literally, not a template")
            return None
        shell = shell_problem(argv)
        if shell is not None:
            self.problem(where, shell)
            return None
        templates = [self.get(dict(enumerate(argv)), where, i, tpl, None) for i in range(len(argv))]
        return ExecSpec(tuple(templates))

    def http_spec(self, raw: Mapping[str, Any], where: Where,
                  tpl: Callable[..., Callable[[str, Where], Template]]) -> _HttpWithTimeout | HttpSpec:
        url = self.get(raw, where, "url", tpl(8192), None)
        body = self.get(raw, where, "json", lambda v, w: self.json_tree(v, w, tpl()), None)
        headers_file = raw.get("headers_file")
        spec = HttpSpec(
            method=raw.get("method", "POST" if "json" in raw else "GET"),
            url=url,
            json=body,
            headers_file=str(self.base_dir / headers_file) if headers_file else None,
            headers_env=raw.get("headers_env"),
            expect=tuple(raw["expect"]) if "expect" in raw else DEFAULT_EXPECT,
        )
        timeout = self.get(raw, where, "timeout", _duration, None)
        return spec if timeout is None else _HttpWithTimeout(spec, timeout)

    def json_tree(self, value: Any, where: Where, tpl: Callable[[str, Where], Template]) -> JsonTemplate:
        if isinstance(value, str):
            return tpl(value, where)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, list):
            return tuple(self.json_tree(v, (*where, i), tpl) for i, v in enumerate(value))
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise ValueError("JSON object keys must be strings")
            return {k: self.json_tree(v, (*where, k), tpl) for k, v in value.items()}
        raise ValueError(f"not JSON: a {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class _HttpWithTimeout:
    """An http spec whose timeout was written inside `http:` (the example's form); it becomes the step's."""

    spec: HttpSpec
    timeout: float


def _same(value: Any, where: Where) -> Any:
    return value


def _duration(value: str | float, where: Where) -> float:
    return parse_duration(value)


def _pattern(text: str, where: Where) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as e:
        raise ValueError(f"invalid regular expression: {e}") from e


def _rate_limit(raw: Mapping[str, Any], where: Where) -> RateLimit:
    return RateLimit(int(raw["max"]), parse_duration(raw["per"]))


def _breaker(raw: Mapping[str, Any], where: Where) -> CircuitBreaker:
    return CircuitBreaker(int(raw["failures"]), parse_duration(raw["within"]), parse_duration(raw["reset_after"]))


def _blast(raw: Mapping[str, Any], where: Where) -> BlastRadius:
    return BlastRadius(float(raw["max_fraction"]))


def _approval(raw: Mapping[str, Any], where: Where) -> Approval:
    timeout = parse_duration(raw["timeout"]) if "timeout" in raw else Approval().timeout
    return Approval(bool(raw.get("required", False)), timeout, raw.get("on_timeout", "escalate"))


def _retries(raw: Mapping[str, Any], where: Where) -> Retries:
    return Retries(int(raw["attempts"]), parse_duration(raw.get("backoff", 0)))

