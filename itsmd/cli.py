"""The `itsmd` command: serve, check, test, replay (more commands arrive with their features)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import uvloop

from itsmd import __version__, logs
from itsmd.config import Config, find_config, load_config
from itsmd.config.routing import load_routing
from itsmd.errors import ConfigError, ItsmdError, StartupError

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
    return p


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
    load = _loader(args.config)
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
