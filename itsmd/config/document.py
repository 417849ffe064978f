"""YAML documents checked against the JSON Schemas shipped in this package, every error a Problem."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError

from itsmd.config.problem import PathElement, Problem
from itsmd.errors import ConfigError

_MAX_SHOWN = 60  # characters of a bad value quoted in a message


def read_yaml(path: Path, shown: str) -> Any:
    """The parsed document (None if empty); raises ConfigError (`shown` as FILE) if unreadable or not YAML."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError([Problem((), f"cannot read {path}: {e.strerror}").format(shown)]) from e
    try:
        return yaml.safe_load(data)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = e.problem or "syntax error"
        context = f" ({e.context})" if e.context else ""
        raise ConfigError([Problem((), f"invalid YAML{where}: {what}{context}").format(shown)]) from e
    except yaml.YAMLError as e:
        raise ConfigError([Problem((), f"invalid YAML: {e}").format(shown)]) from e


@functools.cache
def load_validator(name: str) -> Draft202012Validator:
    """The validator of the schema file `name` shipped in `itsmd.config` (read once per process)."""
    schema = json.loads(resources.files("itsmd.config").joinpath(name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate(instance: Any, validator: Draft202012Validator) -> list[Problem]:
    """Every schema violation in `instance`, each with its path and a message fit for a person."""
    return [Problem(_path(error), _message(error)) for error in validator.iter_errors(instance)]


def _path(error: ValidationError) -> tuple[PathElement, ...]:
    return tuple(e if isinstance(e, str | int) else str(e) for e in error.absolute_path)


def _message(error: ValidationError) -> str:
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    custom = schema.get("errorMessage")
    if isinstance(custom, str):
        return custom
    if error.validator == "type":
        return f"expected {_either(error.validator_value)}, got {_json_type(error.instance)}"
    if error.validator == "enum":
        return f"must be one of {_either(error.validator_value)}; got {_short(error.instance)}"
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        unknown = [repr(k) for k in error.instance if k not in schema.get("properties", {})]
        return f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
    exclusive = _exclusive_keys(error)
    if exclusive is not None and isinstance(error.instance, Mapping):
        given = [k for k in exclusive if k in error.instance]
        if error.validator == "oneOf" and not given:
            return f"needs one of {_either(exclusive)}"
        return f"give only one of {_either(exclusive)}, not {' and '.join(given)}"
    return error.message if len(error.message) <= 200 else error.message[:200] + "..."


def _exclusive_keys(error: ValidationError) -> list[str] | None:
    """The keys of `oneOf: [{required: [a]}, ...]` (exactly one) or `not: {required: [a, b]}` (not both)."""
    value = error.validator_value
    if error.validator == "not" and isinstance(value, Mapping) and list(value) == ["required"]:
        return list(value["required"])
    if error.validator == "oneOf" and isinstance(value, Sequence) and all(map(_requires_one_key, value)):
        return [s["required"][0] for s in value]
    return None


def _requires_one_key(schema: object) -> bool:
    return isinstance(schema, Mapping) and list(schema) == ["required"] and len(schema["required"]) == 1


def _either(values: object) -> str:
    if isinstance(values, str):
        return values
    items = [str(v) for v in values] if isinstance(values, Sequence) else [str(values)]
    return ", ".join(items[:-1]) + " or " + items[-1] if len(items) > 1 else "".join(items)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__  # e.g. a YAML date


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."
