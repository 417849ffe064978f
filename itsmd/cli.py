"""The `itsmd` command: serve, check (more commands arrive with their features)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from itsmd import __version__, logs
from itsmd.config import Config, find_config, load_config
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


def _load(arg: str | None) -> Config:
    cwd = Path.cwd()
    return load_config(find_config(arg, cwd), os.environ, cwd)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        try:
            _load(args.config)
        except ConfigError as e:
            for problem in e.problems:
                print(problem)
            return EXIT_PROBLEMS
        print("ok")
        return 0
    try:
        config = _load(args.config)
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(config.log.format, config.log.level)
    from itsmd.app import serve  # imported late: `check` needs none of the daemon

    try:
        asyncio.run(serve(config))
    except StartupError as e:
        print(f"itsmd: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except ItsmdError as e:
        print(f"itsmd: {e}", file=sys.stderr)
        return EXIT_PROBLEMS
    return 0
