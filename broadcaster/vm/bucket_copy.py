"""The VM's pathway's segments as its route reads them, and where it sends a player instead while the
first bucket serves: the bucket's copy, once its upload landed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..playlist import hls
from ..steering.policy import MIN_UPLOAD_WAIT, PROBE_AGAIN
from .held import Held, HeldFile

DOUBT_WAIT = 2 * PROBE_AGAIN  # a request's wait for the bucket's next probe after one failed


class Located(Protocol):
    """Where the publisher lists a segment (publish/publisher.py's Publisher.found)."""

    def found(self, pathway: str, key: str) -> tuple[int, str | None] | None: ...


class HeldSegments:
    """The VM's segments as the route reads them: what the service holds of a key the VM's pathway lists."""

    def __init__(self, held: Held, located: Located) -> None:
        self._held = held
        self._located = located

    def servable(self, key: str) -> HeldFile | None:
        if self._located.found(hls.VM_PATHWAY, key) is None:
            return None
        return self._held.at_hand(key, tuple(key.rsplit("/", 2)[-2:]))  # its parts: <variant>/<file>

    def read(self, copy: HeldFile) -> bytes:
        return self._held.read(copy)


class Serving(Protocol):
    """What the steering policy says of the first bucket (steering/policy.py)."""

    def bucket_serves(self) -> bool: ...

    def target_duration(self) -> int | None: ...


class Waits(Protocol):
    """The first bucket's pathway's playlists (publish/visible.py's VisiblePlaylists)."""

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> object | None: ...


class Doubt(Protocol):
    """Whether the first bucket's last probe failed, and a wait for the next (steering/probe.py)."""

    def doubted(self) -> bool: ...

    async def next_probe(self, seconds: float) -> None: ...


@dataclass(frozen=True, eq=False)
class InBucket:
    """Where the VM sends a player while the first bucket serves: the URL its playlist lists the copy at."""

    steering: Serving
    located: Located
    first: Waits
    key_for: Callable[[int, str], str]
    doubt: Doubt

    def doubted(self) -> bool:
        return self.doubt.doubted()

    def now(self, variant: int, name: str) -> str | None:
        """The bucket's copy of a segment the VM does not hold (any more), while the bucket serves."""
        if not self.steering.bucket_serves():
            return None
        at = self.located.found(hls.VM_PATHWAY, self.key_for(variant, name))
        return at[1] if at is not None else None

    async def within(self, variant: int, name: str) -> str | None:
        """The bucket's copy once its upload landed, waited for as long as an upload may wait (else None: the
        VM answers). While the bucket's last probe failed, a player asking may have left it failing, so the
        next probe is waited for (DOUBT_WAIT at most): video.js shuns a pathway that sends it back."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self.steering.target_duration() or 3, MIN_UPLOAD_WAIT)
        if not self.steering.bucket_serves() or (
                at := self.located.found(hls.VM_PATHWAY, self.key_for(variant, name))) is None:
            return None
        if at[1] is None:
            remaining = deadline - loop.time()
            if remaining <= 0 or await self.first.wait_for_sequence(variant, at[0], remaining) is None:
                return None
        # Asked once more, not in a loop: a segment listed as a gap would answer again at once, for ever.
        doubt_until = loop.time() + DOUBT_WAIT
        while self.doubt.doubted() and (left := doubt_until - loop.time()) > 0:
            await self.doubt.next_probe(left)
        return self.now(variant, name)
