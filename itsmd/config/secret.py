"""Secret values (tokens, webhook URLs, keys, passwords) and where they come from: `*_file` or `*_env`."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from pathlib import Path


class Secret:
    """A secret string that never shows itself in `repr`, `str`, f-strings or logs; `reveal()` returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


def read_secret(source: str, reference: str, base_dir: Path, env: Mapping[str, str]) -> Secret:
    """The secret a `*_file` (source "file") or `*_env` (source "env") key points at.

    Files are read relative to `base_dir`, trailing whitespace stripped. Raises ValueError naming the file or
    variable, never its content, when it cannot be read or is empty.
    """
    if source == "env":
        if reference not in env:
            raise ValueError(f"environment variable {reference} is not set")
        value = env[reference].rstrip()
        if not value:
            raise ValueError(f"environment variable {reference} is empty")
        return Secret(value)
    path = base_dir / reference
    try:
        value = path.read_bytes().decode("utf-8").rstrip()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"cannot read {path}: not UTF-8 text") from e
    if not value:
        raise ValueError(f"{path} is empty")
    return Secret(value)
