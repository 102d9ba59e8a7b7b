"""A private stream's edge, watched for /health: the newest segment listed, fetched at its public URL
WITHOUT its token, must be refused; a 200 means the WAF rule or Worker is gone. One first-byte GET a
GUARD_EVERY while something is live; any other answer says nothing of the gate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..settings import Settings
from ..source.tasks import cancelled
from ..steering.first_byte import FirstByte
from ..steering.probe import PROBE_HEADERS

log = logging.getLogger(__name__)

GUARD_EVERY = 60.0  # seconds between looks
IDLE_EVERY = 1.0  # seconds between asking whether something is live (no request): the first look follows it
TIMEOUT = 5.0  # seconds a look may take
REFUSED = ("HTTP 401", "HTTP 403")  # what the edge answers a stranger


def edge_guard(s: Settings, newest: Callable[[], tuple[str, float] | None],
               target_duration: Callable[[], int | None]) -> EdgeGuard | None:
    """The guard of a private stream listed at R2_PUBLIC_URL, else None (live: listed within 3 targets)."""
    if not (s.private and s.segment_urls == "public"):
        return None
    return EdgeGuard(newest, lambda: 3 * (target_duration() or 3), FirstByte(PROBE_HEADERS))


class EdgeGuard:
    """`newest()`: the newest segment listed (URL, when); `fresh()`: the most seconds old it is live."""

    def __init__(self, newest: Callable[[], tuple[str, float] | None], fresh: Callable[[], float],
                 fetch: FirstByte, *, every: float = GUARD_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self._newest = newest
        self._fresh = fresh
        self._fetch = fetch
        self._every = every
        self._clock = clock
        self._reason: str | None = None
        self._task: asyncio.Task[None] | None = None

    def health_reason(self) -> str | None:
        return self._reason

    async def look(self) -> bool:
        """One look at the newest segment listed, without its token; False when nothing is live (no look)."""
        newest = self._newest()
        if newest is None or self._clock() - newest[1] > self._fresh():
            return False
        url = newest[0].partition("?")[0]
        answered, detail = await self._fetch(url, TIMEOUT)
        if answered:
            # No segment's name: /health is read by more than the operator.
            reason = (f"a private stream's segments answer without a token at their public URL (the newest: "
                      f"{detail}): the WAF rule or Worker that refuses strangers at R2_PUBLIC_URL is gone; put it "
                      "back (hls-broadcaster edge-rules, docs/private-streams-edge.md)")
        elif detail in REFUSED:
            reason = None
        else:
            return True
        if (reason is None) != (self._reason is None):  # told once each way
            if reason is None:
                log.info("the public URL refuses segments without a token again")
            else:
                log.error("%s", reason)
        self._reason = reason
        return True

    async def _run(self) -> None:
        while True:
            looked = True
            try:
                looked = await self.look()
            except Exception:  # noqa: BLE001 (a bug here must not end the watch: the next look may do)
                log.exception("looking at the edge without a token failed")
            await asyncio.sleep(self._every if looked else IDLE_EVERY)  # a pace, not a wait for a condition

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="edge-guard")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancelled(task)
        await self._fetch.close()
