"""Server text made safe for a terminal: control characters (C0, DEL, C1), line and bidi controls and lone
surrogates are shown as escapes, never written raw (an alert label could otherwise drive the terminal)."""

from __future__ import annotations

import re
from typing import Any

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_FRACTION = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.\d+Z$")


def _escaped(m: re.Match[str]) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def escape(text: str, keep_newlines: bool = False) -> str:
    """`text` with every unsafe character escaped (newlines kept as such only when asked: our own messages)."""
    if keep_newlines:
        return "\n".join(_UNSAFE.sub(_escaped, line) for line in text.split("\n"))
    return _UNSAFE.sub(_escaped, text)


def short_time(text: str) -> str:
    """`2026-11-25T22:00:00.000000Z` as `2026-11-25T22:00:00Z` (tables need no microseconds)."""
    m = _FRACTION.match(text)
    return f"{m.group(1)}Z" if m else text


def plain(value: Any) -> str:
    """One cell's text: None as `-`, booleans as yes/no, lists joined, mappings as k=v; always escaped."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(plain(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{plain(k)}={plain(v)}" for k, v in value.items())
    if isinstance(value, str):
        return escape(short_time(value))
    return escape(str(value))
