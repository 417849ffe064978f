"""Label matchers as Prometheus and Alertmanager write them (`name="v"`, `!=`, `=~`, `!~`) and label-set text."""

from __future__ import annotations

import heapq
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class MatchOp(StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


_LEGACY_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*", re.ASCII)
_RESERVED = frozenset("{}!=~,\\\"'`")  # Alertmanager's matcher lexer: these (and whitespace) end an unquoted token
_OPS = (MatchOp.RE, MatchOp.NRE, MatchOp.NE, MatchOp.EQ)  # two-character operators first
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}
_QUOTE_ESCAPES = {v: "\\" + k for k, v in _SIMPLE_ESCAPES.items()}
_HEX_LENGTH = {"x": 2, "u": 4, "U": 8}
# Go's RE2 lets `(?i)` open the pattern; Python refuses a global flag once we wrap it in a group, so scope it.
_LEADING_FLAGS = re.compile(r"\(\?([ims]+)\)")


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher; a missing label matches as the empty string, regexes are fully anchored."""

    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("label name must not be empty")
        op = MatchOp(self.op)  # also accepts the operator as plain text
        object.__setattr__(self, "op", op)
        regex = compile_regex(self.value) if op in (MatchOp.RE, MatchOp.NRE) else None
        object.__setattr__(self, "_regex", regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self._regex is None:
            return (value == self.value) == (self.op is MatchOp.EQ)
        return (self._regex.fullmatch(value) is not None) == (self.op is MatchOp.RE)

    def __str__(self) -> str:
        return f"{format_name(self.name)}{self.op.value}{quote(self.value)}"


class FirstMatch(Generic[T]):
    """Items in precedence order, each with its matchers; `first(labels)` is the first item whose matchers all
    match, at a cost that does not grow with the number of items (rules route alerts, services map them).

    Each item is indexed under one of its `name="value"` matchers (preferably one on `prefer`); items without one
    are scanned. An alert's candidates are the index hits for its labels plus the scanned items, tried in order.
    """

    __slots__ = ("_index", "_items", "_scan")

    def __init__(self, items: Iterable[tuple[T, Sequence[Matcher]]], prefer: str = "alertname") -> None:
        self._items = tuple((item, tuple(matchers)) for item, matchers in items)
        self._index: dict[tuple[str, str], list[int]] = {}
        self._scan: list[int] = []
        for order, (_, matchers) in enumerate(self._items):
            indexed = _index_matcher(matchers, prefer)
            if indexed is None:
                self._scan.append(order)
            else:
                self._index.setdefault((indexed.name, indexed.value), []).append(order)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return (item for item, _ in self._items)

    def first(self, labels: Mapping[str, str]) -> T | None:
        """The first item whose matchers all match `labels`, or None."""
        hits = [self._index[pair] for pair in labels.items() if pair in self._index]
        candidates: Iterable[int] = heapq.merge(self._scan, *hits) if hits else self._scan
        for order in candidates:
            item, matchers = self._items[order]
            if all(m.matches(labels) for m in matchers):
                return item
        return None


def _index_matcher(matchers: Sequence[Matcher], prefer: str) -> Matcher | None:
    """The equality matcher to index under: one on `prefer` if there is one. An empty value also matches a
    missing label, which no index lookup by the alert's own labels would find, so it is never used."""
    usable = [m for m in matchers if m.op is MatchOp.EQ and m.value]
    return next((m for m in usable if m.name == prefer), usable[0] if usable else None)


def parse_matcher(text: str) -> Matcher:
    """The matcher in `text`, e.g. `alertname="NodeDown"`, `"my label"!~"a|b"` or `job=node`.

    Names and values are double-quoted Go strings or bare words without whitespace and `{}!=~,\\"'` + "`".
    Raises ValueError saying what is wrong and where.
    """
    scanner = _Scanner(text)
    name = scanner.token("label name")
    op = scanner.operator(name)
    value = scanner.token(f"value after {format_name(name)}{op.value}")
    scanner.end()
    return Matcher(name, op, value)


def compile_regex(pattern: str) -> re.Pattern[str]:
    """`pattern` compiled for a full match (call `.fullmatch`); raises ValueError if Python cannot use it.

    Like RE2 in Alertmanager, `\\d \\w \\s \\b` are ASCII and `.` does not match a newline.
    """
    flags = _LEADING_FLAGS.match(pattern)
    body = f"(?{flags.group(1)}:{pattern[flags.end() :]})" if flags else f"(?:{pattern})"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # Python's warning for `[[:alpha:]]`, which it reads differently
        try:
            return re.compile(body, re.ASCII)
        except FutureWarning as e:
            raise ValueError(f"unsupported regex {pattern!r}: POSIX classes like [[:alpha:]] are not supported") from e
        except re.error as e:
            raise ValueError(f"invalid regex {pattern!r}: {e.msg}") from e  # e's position counts our wrapping


def quote(text: str) -> str:
    """`text` as a Go double-quoted string (what Prometheus prints), readable back by `parse_matcher`."""
    out = ['"']
    for ch in text:
        escape = _QUOTE_ESCAPES.get(ch)
        if escape is not None:
            out.append(escape)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def format_name(name: str) -> str:
    """A label name bare when it is a classic Prometheus name, else quoted (Prometheus 3 UTF-8 style)."""
    return name if _LEGACY_NAME.fullmatch(name) else quote(name)


def format_labels(pairs: Iterable[tuple[str, str]]) -> str:
    """Label pairs as Prometheus prints a label set: `{cluster="c1", instance="a:9100"}`."""
    return "{" + ", ".join(f"{format_name(name)}={quote(value)}" for name, value in pairs) + "}"


class _Scanner:
    """A cursor over one matcher's text; errors name the text and the 1-based column."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> ValueError:
        shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return ValueError(f"invalid matcher {shown!r}: {message} (column {self.pos + 1})")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def token(self, what: str) -> str:
        self.skip_space()
        if self.pos >= len(self.text):
            raise self.fail(f"expected {what}, found the end")
        if self.text[self.pos] == '"':
            return self.quoted()
        start = self.pos
        while self.pos < len(self.text) and not _ends_bare_word(self.text[self.pos]):
            self.pos += 1
        if self.pos == start:
            raise self.fail(f"expected {what}, found {self.text[self.pos]!r}")
        return self.text[start : self.pos]

    def operator(self, name: str) -> MatchOp:
        self.skip_space()
        for op in _OPS:
            if self.text.startswith(op.value, self.pos):
                self.pos += len(op.value)
                return op
        found = repr(self.text[self.pos]) if self.pos < len(self.text) else "the end"
        raise self.fail(f"expected an operator (=, !=, =~ or !~) after {format_name(name)}, found {found}")

    def end(self) -> None:
        self.skip_space()
        if self.pos < len(self.text):
            hint = "; give one matcher per list item" if self.text[self.pos] in ",}" else ""
            raise self.fail(f"unexpected {self.text[self.pos :][:20]!r} after the value{hint}")

    def quoted(self) -> str:
        """A Go double-quoted string starting at the cursor, decoded like `strconv.Unquote`."""
        self.pos += 1
        out = bytearray()
        while True:
            if self.pos >= len(self.text):
                raise self.fail("unterminated quoted string")
            ch = self.text[self.pos]
            if ch == '"':
                self.pos += 1
                break
            if ch == "\n":
                raise self.fail("newline in quoted string; write \\n")
            if ch == "\\":
                out += self.escape()
            else:
                out += ch.encode("utf-8", "surrogatepass")
                self.pos += 1
        try:
            return out.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail("quoted string is not valid UTF-8") from e

    def escape(self) -> bytes:
        self.pos += 1
        kind = self.text[self.pos : self.pos + 1]
        if kind in _SIMPLE_ESCAPES:
            self.pos += 1
            return _SIMPLE_ESCAPES[kind].encode()
        if kind in _HEX_LENGTH:
            return self.numeric_escape(kind, 16, _HEX_LENGTH[kind])
        if kind in "01234567" and kind:
            return self.numeric_escape("", 8, 3)
        self.pos -= 1
        raise self.fail(f"unknown escape \\{kind}" if kind else "unterminated quoted string")

    def numeric_escape(self, kind: str, base: int, length: int) -> bytes:
        self.pos += len(kind)
        digits = self.text[self.pos : self.pos + length]
        try:
            number = int(digits, base) if len(digits) == length and digits.isascii() and digits.isalnum() else -1
        except ValueError:
            number = -1
        if number < 0 or (kind in ("", "x") and number > 0xFF):
            raise self.fail(f"bad escape \\{kind}{digits}")
        self.pos += length
        if kind in ("", "x"):
            return bytes([number])  # a byte, as in Go: together they must still form UTF-8
        if number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
            raise self.fail(f"escape \\{kind}{digits} is not a Unicode character")
        return chr(number).encode()


def _ends_bare_word(ch: str) -> bool:
    return ch.isspace() or ch in _RESERVED
