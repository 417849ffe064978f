"""The `exec` step: a program run from an argv list (never a shell) in its own process group, with a clean
environment, output capped, and the whole group killed on timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Mapping, Sequence

from itsmd.actions.result import OUTPUT_CAP, OutputTail, StepResult

# The only variables a step inherits from the daemon's environment; everything else (tokens, database URLs) is
# left behind. Names never come from alert labels.
ENVIRONMENT_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "KUBECONFIG", "SSL_CERT_FILE",
                         "SSL_CERT_DIR", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                         "NO_PROXY")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Fixed-name variables the runner may add for the step (e.g. ITSMD_RUN_ID, ITSMD_IDEMPOTENCY_KEY).
_EXTRA_NAME = re.compile(r"ITSMD_[A-Z0-9_]+")
_READ_SIZE = 65536


def clean_environment(source: Mapping[str, str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allowlisted variables of `source` (PATH defaulted), plus `extra`, whose names must be ITSMD_*."""
    env = {name: source[name] for name in ENVIRONMENT_ALLOWLIST if name in source}
    env.setdefault("PATH", DEFAULT_PATH)
    for name, value in (extra or {}).items():
        if not _EXTRA_NAME.fullmatch(name):
            raise ValueError(f"extra environment variable {name!r} must be named ITSMD_[A-Z0-9_]+")
        env[name] = value
    return env


class Executor:
    """Runs exec steps. `environment` is the daemon's (only ENVIRONMENT_ALLOWLIST is passed on); `kill_grace`
    seconds between SIGTERM and SIGKILL on timeout; `output_cap` bytes of output kept."""

    def __init__(self, environment: Mapping[str, str], *, kill_grace: float = 5.0, output_cap: int = OUTPUT_CAP,
                 cwd: str = "/") -> None:
        self.environment = dict(environment)
        self.kill_grace = kill_grace
        self.output_cap = output_cap
        self.cwd = cwd

    async def run(self, argv: Sequence[str], timeout: float, *, stdin: bytes | None = None,
                  extra_env: Mapping[str, str] | None = None) -> StepResult:
        """Run `argv` for at most `timeout` seconds; succeeded when it exits 0 in time. stdout and stderr are
        captured together (the last `output_cap` bytes kept). On timeout the process group gets SIGTERM, then
        SIGKILL after `kill_grace`; children left behind by a finished step are killed too."""
        if not argv:
            raise ValueError("empty argv")
        env = clean_environment(self.environment, extra_env)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=self.cwd,
                start_new_session=True, close_fds=True)
        except OSError as e:
            return StepResult(False, error=f"cannot execute {argv[0]}: {e.strerror or e}")
        tail = OutputTail(self.output_cap)
        feeding = asyncio.ensure_future(_feed(proc, stdin)) if stdin is not None else None
        reading = asyncio.ensure_future(_drain(proc, tail))
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.gather(reading, proc.wait())), timeout)
        except TimeoutError:
            timed_out = True
            await self._terminate(proc, reading)
        except asyncio.CancelledError:
            await self._terminate(proc, reading)
            raise
        finally:
            _kill_group(proc.pid, signal.SIGKILL)  # stragglers of the group, also after a normal end
            if feeding is not None:
                feeding.cancel()
        code = proc.returncode
        if timed_out:
            return StepResult(False, exit_code=code, output=tail.text(), output_bytes=tail.total, timed_out=True,
                              error=f"timed out after {timeout:g}s")
        return StepResult(code == 0, exit_code=code, output=tail.text(), output_bytes=tail.total)

    async def _terminate(self, proc: asyncio.subprocess.Process, reading: asyncio.Future[None]) -> None:
        """SIGTERM to the group; SIGKILL to the group when the leader or the output pipe outlives the grace."""
        _kill_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(asyncio.gather(reading, proc.wait())), self.kill_grace)
        _kill_group(proc.pid, signal.SIGKILL)
        await proc.wait()
        try:
            await asyncio.wait_for(asyncio.shield(reading), self.kill_grace)
        except TimeoutError:
            reading.cancel()  # a descendant that left the group still holds the pipe: stop reading it


async def _drain(proc: asyncio.subprocess.Process, tail: OutputTail) -> None:
    assert proc.stdout is not None
    while chunk := await proc.stdout.read(_READ_SIZE):
        tail.add(chunk)


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(data)
        await proc.stdin.drain()
        proc.stdin.close()


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
