"""One configuration problem: where it is (file and path) and what is wrong."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

PathElement = str | int


@dataclass(frozen=True, slots=True)
class Problem:
    path: tuple[PathElement, ...]  # keys and list indexes from the document's root
    message: str
    source: str | None = None  # overrides the file name, e.g. for an environment variable

    def format(self, file: str) -> str:
        """`FILE: PATH: message`, PATH like `auth.tokens[1].role` or `(root)`."""
        return f"{self.source or file}: {format_path(self.path)}: {self.message}"

    def sort_key(self) -> tuple[tuple[int, int, str], ...]:
        return tuple((1, e, "") if isinstance(e, int) else (0, 0, e) for e in self.path)


def format_path(path: tuple[PathElement, ...]) -> str:
    text = ""
    for element in path:
        text += f"[{element}]" if isinstance(element, int) else f".{element}" if text else str(element)
    return text or "(root)"


def format_problems(problems: list[Problem], file: str) -> list[str]:
    """Every problem as `FILE: PATH: message`, sorted by path (stable within one path)."""
    return [p.format(file) for p in sorted(problems, key=Problem.sort_key)]


def known_names(names: Collection[str]) -> str:
    """` (known: a, b, c)` to follow an unknown name in a message, at most ten shown; "" when there are none."""
    shown = sorted(names)
    more = f", ... ({len(shown)} in all)" if len(shown) > 10 else ""
    return f" (known: {', '.join(shown[:10])}{more})" if shown else ""
