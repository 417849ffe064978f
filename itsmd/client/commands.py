"""The client's commands: `ls`, `show` and every action of the API for each collection, parsed by argparse and
run against one daemon. Exit codes: 0 ok, 1 the server answered an error, 2 usage, 3 cannot connect."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TextIO

from itsmd.client.api import DEFAULT_URL, Api, segment
from itsmd.client.kinds import INCIDENTS, KINDS, PROBLEMS, RUNS, SECTIONS, SILENCES, Kind
from itsmd.client.render import Renderer
from itsmd.client.text import escape
from itsmd.clock import Clock, SystemClock
from itsmd.config.duration import parse_duration
from itsmd.core.timestamp import format_time, parse_time
from itsmd.errors import ApiError, Unreachable

EXIT_SERVER, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
MAX_PAGES = 100_000  # --all stops here even if a server kept answering cursors


@dataclass(frozen=True)
class Result:
    doc: Any
    listing: bool = False


Handler = Callable[[Api, argparse.Namespace], Result]


@dataclass(frozen=True)
class Option:
    """A command-line option that becomes one key of the request body."""

    flag: str
    key: str
    help: str
    required: bool = False
    choices: tuple[str, ...] | None = None


COMMENT = Option("--comment", "comment", "a comment for the timeline")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help=f"the daemon (default: $ITSMD_URL, else {DEFAULT_URL})")
    p.add_argument("--token", help="bearer token (default: $ITSMD_TOKEN)")
    p.add_argument("--format", choices=["table", "json"], default="table", help="table (default) or json")


def _leaf(actions: Any, name: str, help: str, handler: Handler, with_id: str | None = None,
          options: Sequence[Option] = ()) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = actions.add_parser(name, help=help, description=help)
    if with_id:
        p.add_argument("id", metavar="ID", help=with_id)
    for o in options:
        p.add_argument(o.flag, dest=o.key, required=o.required, choices=o.choices, metavar=o.key.upper(),
                       help=o.help)
    _common(p)
    p.set_defaults(handler=handler, parser=p)
    return p


def _body(args: argparse.Namespace, options: Sequence[Option]) -> dict[str, Any]:
    return {o.key: getattr(args, o.key) for o in options if getattr(args, o.key) is not None}


def add_listing(actions: Any, kind: Kind) -> None:
    """`ls` with the kind's filters, `--limit`, `--cursor` and `--all`."""

    def ls(api: Api, args: argparse.Namespace) -> Result:
        values = ((f.param, getattr(args, f"filter_{f.option[2:]}")) for f in kind.filters)
        query: dict[str, str | None] = {param: v for param, v in values if v is not None}  # --active/--inactive
        query["cursor"] = args.cursor
        if args.limit is not None:
            query["limit"] = str(args.limit)
        doc = api.get(kind.path, query)
        if not args.all:
            return Result(doc, listing=True)
        items, seen = list(doc["items"]), set[str]()
        while doc.get("next_cursor") and doc["next_cursor"] not in seen and len(seen) < MAX_PAGES:
            seen.add(doc["next_cursor"])
            doc = api.get(kind.path, {**query, "cursor": doc["next_cursor"]})
            items += doc["items"]
        return Result({"items": items, "next_cursor": None}, listing=True)

    p = _leaf(actions, "ls", f"list {kind.name}, newest first", ls)
    p.set_defaults(kind=kind)
    shared: dict[str, Any] = {}
    for f in kind.filters:
        dest = f"filter_{f.option[2:]}"
        if f.flag_value is not None:
            group = shared.setdefault(f.param, p.add_mutually_exclusive_group())
            group.add_argument(f.option, dest=dest, action="store_const", const=f.flag_value, help=f.help)
        else:
            p.add_argument(f.option, dest=dest, choices=f.choices, metavar=f.param.upper(), help=f.help)
    p.add_argument("--limit", type=int, help="items per page (server default 100, max 1000)")
    p.add_argument("--cursor", help="continue after a previous page")
    p.add_argument("--all", action="store_true", help="follow next_cursor to the end")


def _show(actions: Any, kind: Kind, what: str) -> None:
    def show(api: Api, args: argparse.Namespace) -> Result:
        return Result(api.get(f"{kind.path}/{segment(args.id)}"))

    _leaf(actions, "show", f"one {what} with its details", show, with_id=f"{what} id")


def _act(actions: Any, kind: Kind, name: str, help: str, method: str, suffix: str,
         options: Sequence[Option] = ()) -> None:
    def act(api: Api, args: argparse.Namespace) -> Result:
        return Result(api.call(method, f"{kind.path}/{segment(args.id)}{suffix}", body=_body(args, options)))

    _leaf(actions, name, help, act, with_id="id", options=options)


def _incidents(actions: Any) -> None:
    for verb, help in (("ack", "acknowledge (from open)"), ("close", "close (from resolved)"),
                       ("reopen", "reopen (from resolved)")):
        _act(actions, INCIDENTS, verb, help, "POST", f"/{verb}", [COMMENT])
    _act(actions, INCIDENTS, "resolve", "resolve (from open or acknowledged)", "POST", "/resolve", [
        COMMENT, Option("--resolution", "resolution", "default manual", choices=(
            "manual", "auto_remediated", "self_healed"))])
    _act(actions, INCIDENTS, "assign", "assign to someone", "POST", "/assign",
         [Option("--assignee", "assignee", "who", required=True), COMMENT])
    _act(actions, INCIDENTS, "merge", "move this incident's alerts into another; this one closes", "POST", "/merge",
         [Option("--into", "into", "the incident that takes the alerts (INC-...)", required=True), COMMENT])
    _act(actions, INCIDENTS, "note", "add a note to the timeline", "POST", "/notes",
         [Option("--text", "text", "the note", required=True)])


def _problems(actions: Any) -> None:
    _act(actions, PROBLEMS, "set", "change state, owner or title", "PATCH", "", [
        Option("--state", "state", "investigating|known_error|resolved|closed|open", choices=(
            "open", "investigating", "known_error", "resolved", "closed")),
        Option("--owner", "owner", "owner"), Option("--title", "title", "title"), COMMENT])
    _act(actions, PROBLEMS, "known-error", "record the known error (root cause, workaround)", "PUT", "/known-error", [
        Option("--root-cause", "root_cause", "the root cause", required=True),
        Option("--workaround", "workaround", "the workaround", required=True),
        Option("--playbook", "playbook", "a playbook new incidents of this problem run"), COMMENT])


def _runs(actions: Any) -> None:
    for verb, help in (("approve", "approve a run awaiting approval"), ("reject", "reject a run awaiting approval"),
                       ("cancel", "cancel a pending or running run")):
        _act(actions, RUNS, verb, help, "POST", f"/{verb}", [COMMENT])
    options = [Option("--playbook", "playbook", "playbook name", required=True),
               Option("--incident", "incident_id", "the incident (INC-...)", required=True)]

    def run(api: Api, args: argparse.Namespace) -> Result:
        return Result(api.call("POST", RUNS.path, body=_body(args, options)))

    _leaf(actions, "run", "start a manual run (or re-run) of a playbook for an incident", run, options=options)


def _silence_body(args: argparse.Namespace, clock: Clock) -> dict[str, Any]:
    """The POST body of `silences add`; usage errors (exit 2) for what cannot make a silence."""
    p: argparse.ArgumentParser = args.parser
    body: dict[str, Any] = {"matchers": args.matcher, "created_by": args.created_by, "comment": args.comment}
    if not args.created_by:
        p.error("--created-by is needed ($USER is not set)")
    if args.starts_at:
        body["starts_at"] = args.starts_at
    if args.timezone:
        body["timezone"] = args.timezone
    if args.schedule:
        if args.ends_at or not args.duration:
            p.error("--schedule takes --duration (each window's length) and no --ends-at")
        body.update(schedule=args.schedule, duration=args.duration)
    elif args.ends_at:
        if args.duration:
            p.error("give --ends-at or --duration, not both")
        body["ends_at"] = args.ends_at
    elif args.duration:
        try:
            seconds = parse_duration(args.duration)
            start = parse_time(args.starts_at) if args.starts_at else clock.now()
        except ValueError as e:
            p.error(str(e))
        body["ends_at"] = format_time((start or clock.now()) + timedelta(seconds=seconds))
    else:
        p.error("give --ends-at, --duration, or --schedule with --duration")
    return body


def _silences(actions: Any, env: Mapping[str, str], clock: Clock) -> None:
    def add(api: Api, args: argparse.Namespace) -> Result:
        return Result(api.call("POST", SILENCES.path, body=_silence_body(args, clock)))

    p = _leaf(actions, "add", "silence alerts, once or on a schedule (maintenance windows)", add)
    p.add_argument("--matcher", action="append", required=True,
                   help='a matcher like \'alertname="DiskFull"\' (repeat: all must match)')
    p.add_argument("--starts-at", help="RFC 3339 (default: now)")
    p.add_argument("--ends-at", help="RFC 3339")
    p.add_argument("--duration", help="how long (30m, 2h, 1d); with --schedule, each window's length")
    p.add_argument("--schedule", help='cron expression of a recurring window, e.g. "0 2 * * SUN"')
    p.add_argument("--timezone", help="the schedule's time zone (default UTC)")
    p.add_argument("--comment", required=True, help="why")
    p.add_argument("--created-by", default=env.get("USER"), help="who (default: $USER)")
    _act(actions, SILENCES, "expire", "end a silence now", "DELETE", "")


def add_parsers(sub: Any, env: Mapping[str, str], clock: Clock | None = None) -> None:
    """The `incidents`, `problems`, `alerts`, `runs` and `silences` commands."""
    what = {"incidents": "incident", "problems": "problem", "alerts": "alert", "runs": "run", "silences": "silence"}
    for name, kind in KINDS.items():
        p = sub.add_parser(name, help=f"{what[name]} commands (API client)")
        actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
        add_listing(actions, kind)
        _show(actions, kind, what[name])
        if kind is INCIDENTS:
            _incidents(actions)
        elif kind is PROBLEMS:
            _problems(actions)
        elif kind is RUNS:
            _runs(actions)
        elif kind is SILENCES:
            _silences(actions, env, clock or SystemClock())


def is_client(args: argparse.Namespace) -> bool:
    return getattr(args, "handler", None) is not None


def run(args: argparse.Namespace, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    """Run the parsed client command; print the answer to `out`, problems to `err`; the exit code."""
    try:
        api = Api(args.url or env.get("ITSMD_URL") or DEFAULT_URL, args.token or env.get("ITSMD_TOKEN") or None)
    except ValueError as e:
        err.write(f"itsmd: {escape(str(e))}\n")
        return EXIT_USAGE
    try:
        result = args.handler(api, args)
    except ApiError as e:
        err.write(f"itsmd: {e} (HTTP {e.status})\n")
        return EXIT_SERVER
    except Unreachable as e:
        err.write(f"itsmd: {escape(str(e))}\n")
        return EXIT_UNREACHABLE
    show = Renderer(out, colour=out.isatty() and not env.get("NO_COLOR"))
    if args.format == "json":
        show.json(result.doc)
    elif result.listing:
        show.table(args.kind.columns, result.doc["items"])
        if result.doc.get("next_cursor"):
            err.write(f"(more: --cursor {escape(str(result.doc['next_cursor']))}, or --all)\n")
    else:
        show.detail(result.doc, SECTIONS)
    return 0

