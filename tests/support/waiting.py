"""Waiting on a condition with a timeout, never a fixed sleep: the suite's one `until`."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

WAIT = 10.0  # seconds any one condition may take before the test fails


class TimedOut(AssertionError):
    """The condition was not met within the timeout: a failure, unless the caller's question was only
    "within that time?" (it catches this, never AssertionError, which a probe's own checks raise)."""


# Without `every`: checked after 1 ms, then twice as long after each look, up to 20 ms. A condition met at
# once is seen at once, and one that takes seconds (a page's beats expiring, a segment's upload) costs a
# look every 20 ms: at 1 ms throughout, a wait took about 7 % of a core (0.35 s of CPU per 5 s).
FIRST_LOOK, LONGEST_LOOK = 0.001, 0.02


async def until(condition: Callable[[], Any], what: str = "", timeout: float | None = WAIT, *,
                every: float | None = None, detail: Callable[[], object] | None = None) -> Any:
    """Waits for `condition` (a function or a coroutine function) to give something true, checked every
    `every` seconds (None: FIRST_LOOK, doubling up to LONGEST_LOOK); returns it. The timeout is a bound, not a
    pace; a failure names `what` and `detail()`. An exception from the condition ends the wait at once.
    `timeout` None: no wall-time bound, for a condition that gives a verdict either way by itself."""
    bound = asyncio.timeout(timeout)
    pause = FIRST_LOOK
    try:
        async with bound:
            while True:
                got = condition()
                value = await got if inspect.isawaitable(got) else got
                if value:
                    return value
                await asyncio.sleep(pause if every is None else every)
                pause = min(2 * pause, LONGEST_LOOK)
    except TimeoutError:
        if not bound.expired():
            raise  # the condition's own (a request's timeout, say): it ends the wait as any exception does
        seen = f": {detail()}" if detail is not None else ""
        raise TimedOut(f"timed out after {timeout:g} s waiting for {what or condition}{seen}") from None
