"""The `itsmd` command: serve, check, test, replay, audit, and the API client (incidents, problems, ...)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

from itsmd import __version__, logs
from itsmd.client import commands as client
from itsmd.client import report as formats
from itsmd.client.kinds import AUDIT
from itsmd.config import Config, find_config, load_config
from itsmd.config.routing import load_routing
from itsmd.core.report import Dimension
from itsmd.errors import ApiError, ConfigError, ItsmdError, StartupError

EXIT_PROBLEMS = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="itsmd", description="Incident automation daemon for Alertmanager.")
    p.add_argument("--version", action="version", version=f"itsmd {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the daemon")
    serve.add_argument("-c", "--config", help="config file (default: ./itsmd.yaml if present)")
    check = sub.add_parser("check", help="validate the configuration; exit 1 on any problem")
    check.add_argument("-c", "--config", help="config file (default: ./itsmd.yaml if present)")
    test = sub.add_parser("test", help="run rule test files (fake clock); exit 1 on any failure")
    test.add_argument("-c", "--config", help="config file (default: ./itsmd.yaml if present)")
    test.add_argument("files", nargs="+", metavar="FILE", help="rule test files")
    replay = sub.add_parser("replay", help="feed recorded webhook bodies through the pipeline in memory")
    replay.add_argument("file", metavar="FILE", help="JSON lines: {\"at\": RFC3339, \"body\": {...}} or a bare body")
    replay.add_argument("-c", "--config", help="config file (default: ./itsmd.yaml if present)")
    replay.add_argument("--format", choices=["table", "json"], default="table")
    replay.add_argument("--batch", type=int, default=None, help="deliveries per pipeline transaction")
    client.add_parsers(sub, os.environ)
    audit = sub.add_parser("audit", help="the hash-chained audit log")
    audit_actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = audit_actions.add_parser("verify", help="recompute the hash chain; exit 1 naming the first broken record")
    verify.add_argument("-c", "--config", help="config file (default: ./itsmd.yaml if present)")
    client.add_listing(audit_actions, AUDIT)  # `itsmd audit ls` through the API (admin)
    _report_parser(sub)
    return p


def _report_parser(sub: Any) -> None:
    report = sub.add_parser("report", help="manager reports (MTTA, MTTR, automation, recurring problems)")
    report.add_argument("kind", choices=["summary", "mttr", "recurring"])
    source = report.add_mutually_exclusive_group()
    source.add_argument("-c", "--config", help="read the database of this config (default: ./itsmd.yaml if present)")
    source.add_argument("--url", help="ask a running daemon instead (token: --token or $ITSMD_TOKEN)")
    report.add_argument("--token", help="bearer token for --url (default: $ITSMD_TOKEN)")
    report.add_argument("--from", dest="start", help="RFC 3339 (default: four weeks before --to)")
    report.add_argument("--to", dest="end", help="RFC 3339 (default: now)")
    report.add_argument("--by", choices=[str(d) for d in Dimension])
    report.add_argument("--format", choices=formats.FORMATS, default="table")
    report.add_argument("--noisiest", type=int, default=0, metavar="N", help="summary: also the N noisiest alert names")


def _report(args: argparse.Namespace) -> int:
    """`itsmd report`: from the daemon with --url, else from the configured database."""
    from itsmd import report
    from itsmd.client.api import Api
    from itsmd.clock import SystemClock
    from itsmd.core.report import period
    from itsmd.core.timestamp import parse_time

    try:
        if args.url:
            api = Api(args.url, args.token or os.environ.get("ITSMD_TOKEN") or None)
            query = {"from": args.start, "to": args.end, "by": args.by, "noisiest": str(args.noisiest or "") or None}
            doc = api.get(f"/api/v1/reports/{args.kind}", query)
        else:
            start = parse_time(args.start) if args.start else None
            end = parse_time(args.end) if args.end else None
            now = SystemClock().now()
            by = Dimension(args.by) if args.by else None
            doc = report.from_database(_loader(args.config)(), args.kind, period(start, end, now), by, now,
                                       args.noisiest)
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    except ApiError as e:
        print(f"itsmd: {e} (HTTP {e.status})", file=sys.stderr)
        return EXIT_PROBLEMS
    except (ItsmdError, ValueError) as e:
        print(f"itsmd: {e}", file=sys.stderr)
        return EXIT_PROBLEMS
    formats.write(args.kind, doc, args.format, sys.stdout)
    return 0


def _loader(arg: str | None) -> Callable[[], Config]:
    cwd, env = Path.cwd(), dict(os.environ)  # a reload reads what the start read
    path = find_config(arg, cwd)
    return lambda: load_config(path, env, cwd)


def _check(load: Callable[[], Config]) -> int:
    """Validate the config file, then the rules, services and playbooks it names; print every problem."""
    try:
        config = load()
        routing = load_routing(config)
    except ConfigError as e:
        for problem in e.problems:
            print(problem)
        return EXIT_PROBLEMS
    sizes = ((len(routing.rules), "rules"), (len(routing.services), "services"), (len(routing.playbooks), "playbooks"))
    counts = [f"{n} {what}" for n, what in sizes if n]
    print(f"ok ({', '.join(counts)})" if counts else "ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if client.is_client(args):
        return client.run(args, os.environ, sys.stdout, sys.stderr)
    if args.command == "report":
        return _report(args)
    load = _loader(args.config)
    if args.command == "audit":
        from itsmd import audit

        return audit.verify(load, sys.stdout, sys.stderr)
    if args.command == "check":
        return _check(load)
    if args.command == "test":
        from itsmd import ruletests  # imported late, like the daemon: `check` needs none of it

        return ruletests.main([Path(f) for f in args.files], load)
    if args.command == "replay":
        from itsmd import replay

        return replay.main(Path(args.file), load, args.format, args.batch)
    try:
        config = load()
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(config.log.format, config.log.level)
    from itsmd.app import serve  # imported late: `check` needs none of the daemon

    try:
        uvloop.run(serve(config, load, os.environ))
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    except StartupError as e:
        print(f"itsmd: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except ItsmdError as e:
        print(f"itsmd: {e}", file=sys.stderr)
        return EXIT_PROBLEMS
    return 0
