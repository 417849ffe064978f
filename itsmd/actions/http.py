"""The `http` step: one request through the shared client session, headers from a secret file or variable,
the response status checked against `expect`; secrets never reach the result."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from itsmd.actions.result import OUTPUT_CAP, OutputTail, StepResult


def parse_headers(text: str) -> dict[str, str]:
    """HTTP headers from `Name: value` lines; blank lines and `#` comments skipped. ValueError (without the
    value) on a line that is not a header."""
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or any(c in name for c in " \t\r\n"):
            raise ValueError(f"line {number} is not `Name: value`")
        headers[name.strip()] = value.strip()
    return headers


class HttpCaller:
    """Runs http steps on `session` (shared, owned by the daemon). `environment` is where `headers_env` is read."""

    def __init__(self, session: aiohttp.ClientSession, environment: Mapping[str, str], *,
                 output_cap: int = OUTPUT_CAP) -> None:
        self.session = session
        self.environment = environment
        self.output_cap = output_cap

    def headers(self, headers_file: str | None, headers_env: str | None) -> dict[str, str]:
        """The secret headers, read now (so a rotated file is picked up); ValueError naming only the source."""
        if headers_file is not None:
            try:
                return parse_headers(Path(headers_file).read_text(encoding="utf-8"))
            except OSError as e:
                raise ValueError(f"cannot read headers_file {headers_file}: {e.strerror}") from e
            except (UnicodeDecodeError, ValueError) as e:
                raise ValueError(f"headers_file {headers_file}: {e}") from e
        if headers_env is not None:
            if headers_env not in self.environment:
                raise ValueError(f"environment variable {headers_env} is not set")
            try:
                return parse_headers(self.environment[headers_env])
            except ValueError as e:
                raise ValueError(f"environment variable {headers_env}: {e}") from e
        return {}

    async def call(self, method: str, url: str, body: Any, timeout: float, expect: Sequence[int], *,
                   headers_file: str | None = None, headers_env: str | None = None) -> StepResult:
        """Send the request (`body` None: none; else JSON) within `timeout` seconds; succeeded when the status is
        in `expect`. The output is the response body (capped), with every secret header value masked."""
        try:
            headers = self.headers(headers_file, headers_env)
        except ValueError as e:
            return StepResult(False, error=str(e))
        secrets = _secrets(headers.values())
        tail = OutputTail(self.output_cap)
        try:
            async with self.session.request(
                method, url, json=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                async for chunk in response.content.iter_chunked(65536):
                    tail.add(chunk)
                status = response.status
        except TimeoutError:
            return StepResult(False, output=_mask(tail.text(), secrets), output_bytes=tail.total, timed_out=True,
                              error=f"timed out after {timeout:g}s")
        except (aiohttp.ClientError, ValueError) as e:
            return StepResult(False, error=_mask(f"request failed: {type(e).__name__}: {e}", secrets))
        output = _mask(tail.text(), secrets)
        return StepResult(status in expect, status=status, output=output, output_bytes=tail.total,
                          json=None if tail.truncated else _json(output),
                          error=None if status in expect else f"status {status} not in {list(expect)}")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _secrets(values: Iterable[str]) -> list[str]:
    """The header values, and their words of 8 characters or more (a server may echo only the token of
    `Bearer <token>`), longest first."""
    found = {v for v in values if v} | {w for v in values for w in v.split() if len(w) >= 8}
    return sorted(found, key=len, reverse=True)


def _mask(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
