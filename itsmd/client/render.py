"""How the client shows answers: aligned tables for lists, key/value blocks for one object (colour only when
asked: a terminal without NO_COLOR), or the JSON itself for scripts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from itsmd.client.text import escape, plain

MAX_CELL = 60  # characters a table cell shows before it is cut with an ellipsis

_RED, _YELLOW, _GREEN, _DIM, _BOLD = "31", "33", "32", "2", "1"
_TONES = {
    _RED: {"open", "firing", "failed", "timed_out", "unknown", "rejected", "P1", "P2"},
    _YELLOW: {"acknowledged", "awaiting_approval", "pending", "running", "investigating", "P3"},
    _GREEN: {"resolved", "succeeded", "known_error", "active"},
    _DIM: {"closed", "cancelled", "skipped", "expired"},
}
_TONE = {value: code for code, values in _TONES.items() for value in values}


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[dict[str, Any]], Any]
    toned: bool = False  # colour the cell by its value (states, priorities)


def field(name: str, header: str | None = None, toned: bool = False) -> Column:
    return Column(header or name.upper().replace("_", " "), lambda item: item.get(name), toned)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


class Renderer:
    def __init__(self, out: TextIO, colour: bool) -> None:
        self.out = out
        self.colour = colour

    def _paint(self, text: str, code: str | None) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and code else text

    def json(self, doc: Any) -> None:
        self.out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")

    def table(self, columns: Sequence[Column], items: Sequence[dict[str, Any]], indent: str = "") -> None:
        rows = [[_cut(plain(c.value(item))) for c in columns] for item in items]
        widths = [max([len(c.header), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
        last = len(columns) - 1
        head = "  ".join(c.header.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()
        self.out.write(indent + self._paint(head, _BOLD) + "\n")
        for row in rows:
            cells = []
            for i, (c, w, text) in enumerate(zip(columns, widths, row, strict=True)):
                padded = text.ljust(w) if i < last else text
                cells.append(self._paint(padded, _TONE.get(text)) if c.toned else padded)
            self.out.write(indent + "  ".join(cells).rstrip() + "\n")

    def detail(self, doc: dict[str, Any], sections: Mapping[str, Sequence[Column]]) -> None:
        """Scalars as `key: value`, mappings one entry a line, then each list of objects as a table."""
        later: list[tuple[str, list[Any]]] = []
        width = max((len(k) for k in doc), default=0)
        for key, value in doc.items():
            label = escape(str(key)).ljust(width)
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                later.append((key, value))
            elif isinstance(value, dict) and value:
                self.out.write(f"{label}:\n")
                for k, v in value.items():
                    self.out.write(f"  {plain(k)}: {plain(v)}\n")
            else:
                text = plain(value)
                self.out.write(f"{label}: {self._paint(text, _TONE.get(text)) if key in _TONED_KEYS else text}\n")
        for key, items in later:
            self.out.write(f"\n{escape(str(key))}:\n")
            self.table(sections.get(key) or _generic(items), items, indent="  ")


_TONED_KEYS = frozenset({"state", "status", "priority"})


def _generic(items: Sequence[dict[str, Any]]) -> list[Column]:
    return [field(str(k)) for k in list(items[0])[:6]]
