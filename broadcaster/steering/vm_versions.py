"""Which versions the VM's pathway shows: the VM's own (every segment it kept, its upload landed or not)
while the VM sends segment bytes itself, and the bucket's (only what landed) while it redirects players
to the bucket (policy.bucket_serves: players are steered to the bucket and its last probe answered).

A player may be on the VM's pathway while the bucket serves: one without content steering that plays the
last of equal variants (hls.js), hls.js after an error on the bucket's (it keeps a failed pathway in its
penalty box for five minutes, whatever the steering manifest says), the viewer page for 10 s after a
failed fetch (viewer/src/pathways.js).
The VM redirects each of its segment requests to the bucket's copy, once that landed. Listing a segment
before its upload landed sent such a player to the VM for it at once, and the VM waited up to a target
duration for the upload, then sent the bytes itself: on a busy machine, where Owncast's segments come in
bursts and uploads queue, players steered back to the bucket were still fetching from the VM seconds
later (2 of 4 full runs of test_steering_browser). Listing only what landed, the VM redirects every one.

Nor does a version go back: after the VM's own versions were shown, they go on being shown until the
bucket's has caught up with the last of them (6.2.2: no number a player holds may leave the end).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..playlist.rendered import Rendered
from .bucket_pathway import Versions

RECHECK = 0.5  # seconds: a request held on the bucket's versions looks again whether the VM serves now


class VmVersions:
    """`landed`: the bucket's versions; `ahead`: the VM's own; `redirects`: the VM sends players to the
    bucket now (policy.bucket_serves)."""

    def __init__(self, landed: Versions, ahead: Versions, redirects: Callable[[], bool]) -> None:
        self._landed = landed
        self._ahead = ahead
        self._redirects = redirects
        self._through: dict[int, int] = {}  # variant -> the last number its own versions showed
        self.held_requests = 0

    @property
    def target_duration(self) -> int | None:
        return self._ahead.target_duration

    def media_playlist(self, variant: int) -> Rendered | None:
        if self._paced(variant):
            return self._landed.media_playlist(variant)
        ahead = self._ahead.media_playlist(variant)
        if ahead is not None:
            self._through[variant] = max(self._through.get(variant, -1), ahead.last_sequence)
        return ahead

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Rendered | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.held_requests += 1
        try:
            while True:
                paced = self._paced(variant)
                remaining = max(0.0, deadline - loop.time())
                source = self._landed if paced else self._ahead
                rendered = await source.wait_for_sequence(variant, sequence,
                                                          min(remaining, RECHECK) if paced else remaining)
                if rendered is not None:
                    return self.media_playlist(variant)
                if loop.time() >= deadline:
                    return None
        finally:
            self.held_requests -= 1

    def _paced(self, variant: int) -> bool:
        """The bucket's version is shown: the VM redirects, and no later version of its own was shown."""
        if not self._redirects():
            return False
        through = self._through.get(variant)
        if through is None:
            return True
        landed = self._landed.media_playlist(variant)
        if landed is None or landed.last_sequence < through:
            return False
        del self._through[variant]
        return True
