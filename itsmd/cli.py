"""The `itsmd` command: serve, check (more commands arrive with their features)."""

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
    return p


def _loader(arg: str | None) -> Callable[[], Config]:
    cwd, env = Path.cwd(), dict(os.environ)  # a reload reads what the start read
    path = find_config(arg, cwd)
    return lambda: load_config(path, env, cwd)


def _check(load: Callable[[], Config]) -> int:
    """Validate the config file, then the rules and services it names; print every problem."""
    try:
        config = load()
        routing = load_routing(config)
    except ConfigError as e:
        for problem in e.problems:
            print(problem)
        return EXIT_PROBLEMS
    counts = [f"{n} {what}" for n, what in ((len(routing.rules), "rules"), (len(routing.services), "services")) if n]
    print(f"ok ({', '.join(counts)})" if counts else "ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    load = _loader(args.config)
    if args.command == "check":
        return _check(load)
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
