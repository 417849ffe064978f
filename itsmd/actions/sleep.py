"""The `sleep` step: wait a fixed time (the runner's clock decides when it is over after a restart)."""

from __future__ import annotations

import asyncio

from itsmd.actions.result import StepResult


async def pause(seconds: float) -> StepResult:
    """Wait `seconds`; always succeeds (cancellation propagates)."""
    await asyncio.sleep(seconds)
    return StepResult(True)
