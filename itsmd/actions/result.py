"""A step attempt's result, as stored on the run and seen by later steps as `steps.<name>`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OUTPUT_CAP = 65536  # bytes of output kept per attempt (the tail); the rest is read, counted and dropped


@dataclass(frozen=True, slots=True)
class StepResult:
    """`exit_code` for exec, `status` for http; `error` says why a step could not complete (no secrets in it).
    `output` is at most OUTPUT_CAP bytes of text; `output_bytes` counts all that was produced."""

    succeeded: bool
    exit_code: int | None = None
    status: int | None = None
    output: str = ""
    output_bytes: int = 0
    json: Any = None
    timed_out: bool = False
    error: str | None = None

    def as_context(self) -> dict[str, Any]:
        """What later steps' templates see: `steps.<name>.{exit_code, status, output, json}`."""
        return {"exit_code": self.exit_code, "status": self.status, "output": self.output, "json": self.json}


class OutputTail:
    """The last `cap` bytes of a stream, and how many bytes it had in all: memory stays bounded whatever comes."""

    __slots__ = ("_buffer", "cap", "total")

    def __init__(self, cap: int = OUTPUT_CAP) -> None:
        self.cap = cap
        self.total = 0
        self._buffer = bytearray()

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._buffer += chunk[-self.cap:]
        if len(self._buffer) > self.cap:
            del self._buffer[: len(self._buffer) - self.cap]

    @property
    def truncated(self) -> bool:
        return self.total > len(self._buffer)

    def text(self) -> str:
        """The kept bytes as text (invalid UTF-8 replaced), with a first line saying how much was dropped."""
        body = bytes(self._buffer).decode("utf-8", errors="replace")
        if not self.truncated:
            return body
        return f"[... {self.total - len(self._buffer)} bytes of output dropped ...]\n{body}"
