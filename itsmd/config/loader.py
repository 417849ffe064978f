"""Finding and loading the config file: YAML -> JSON Schema -> frozen Config, every problem at once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from itsmd.config.document import load_validator, read_yaml, validate
from itsmd.config.model import Config
from itsmd.config.problem import Problem, format_problems
from itsmd.config.sections import compile_config, database_url
from itsmd.errors import ConfigError

CONFIG_NAME = "itsmd.yaml"
SCHEMA_NAME = "itsmd.schema.json"
DATABASE_ENV = "ITSMD_DATABASE"


def find_config(arg: str | None, cwd: Path) -> Path | None:
    """The `-c` value if given, else `cwd/itsmd.yaml` if present, else None (run on defaults)."""
    if arg:
        return Path(arg)
    candidate = cwd / CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_config(path: Path | None, env: Mapping[str, str], cwd: Path) -> Config:
    """The validated configuration; raises ConfigError with every problem as `FILE: PATH: message`.

    `path` (relative to `cwd`) None means the defaults relative to `cwd`. `env` supplies `*_env` secrets and
    `ITSMD_DATABASE`, which overrides `database` (a relative SQLite file in it is relative to `cwd`).
    """
    cwd = Path(os.path.abspath(cwd))
    shown = str(path) if path is not None else "(defaults)"
    if path is None:
        config, problems = Config.default(cwd), list[Problem]()
    else:
        config, problems = _load_file(path, shown, env, cwd)
    database = env.get(DATABASE_ENV, "").strip()
    if database:
        try:
            config = replace(config, database=database_url(database, cwd))
        except ValueError as e:
            problems.append(Problem(("database",), str(e), source=f"${DATABASE_ENV}"))
    if problems:
        raise ConfigError(format_problems(problems, shown))
    return config


def _load_file(path: Path, shown: str, env: Mapping[str, str], cwd: Path) -> tuple[Config, list[Problem]]:
    full = Path(os.path.abspath(cwd / path))
    raw = read_yaml(full, shown)
    if raw is None:  # an empty file: all defaults
        raw = {}
    problems = validate(raw, load_validator(SCHEMA_NAME))
    if not isinstance(raw, dict):
        raise ConfigError(format_problems(problems, shown))
    config, more = compile_config(raw, path=full, env=env, schema_problems=problems)
    return config, problems + more
