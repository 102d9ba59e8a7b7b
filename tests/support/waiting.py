"""Waiting on a condition with a timeout, never a fixed sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

WAIT = 10.0  # seconds any one condition may take before the test fails


async def until(condition: Callable[[], bool], what: str = "", timeout: float = WAIT) -> None:
    """Waits for `condition`, checked on each turn of the loop: no fixed sleep decides anything."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.001)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what or condition}") from None
