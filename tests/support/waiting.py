"""Waiting on a condition with a timeout, never a fixed sleep: the suite's one `until`."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

WAIT = 10.0  # seconds any one condition may take before the test fails


async def until(condition: Callable[[], Any], what: str = "", timeout: float = WAIT, *,
                every: float = 0.001, detail: Callable[[], object] | None = None) -> Any:
    """Waits for `condition` (a function, or a coroutine function: a probe that polls something) to
    give something true, checked every `every` seconds; returns it. No fixed sleep decides anything:
    the pace is a poll's, the timeout a bound. A failure names `what` and, when given, `detail()`
    (what the test saw last). An exception from the condition ends the wait at once."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                got = condition()
                value = await got if inspect.isawaitable(got) else got
                if value:
                    return value
                await asyncio.sleep(every)
    except TimeoutError:
        seen = f": {detail()}" if detail is not None else ""
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what or condition}{seen}") from None
