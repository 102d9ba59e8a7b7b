"""Clients that want more than their own share, as plain HTTP, on a loop of their own (loop_thread.py):

- forged reporters (`forge_reports`): heartbeats of made-up viewer pages, many ids from many addresses
  (CF-Connecting-IP, trusted from a loopback peer), each saying the bucket fails for it, in both forms of
  Hb-Pathway;
- a fetcher (`Fetcher`): asks the VM's pathway for its newest segments as fast as it can (with a fresh
  query each time when told to: past a CDN's cache), following redirects, ignoring Retry-After; what it
  got is counted by status, with the bytes."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from broadcaster.playlist import hls

# A fetcher that got no bytes (refused, or sent to the bucket) asks again after this, not after the
# Retry-After it was given (1 s): soon enough to take nearly every byte the service would give it (a
# segment's worth of a share comes in about a second), late enough that what is measured is bytes, not
# the CPU of a two-core machine answering refusals.
REFUSED_PAUSE = 0.05


async def forge_reports(url: str, addresses: list[str], pages_per_address: int, seconds: float,
                        every: float = 1.0) -> Counter[int]:
    """Beats of `pages_per_address` made-up pages from each address, every `every` seconds for
    `seconds`, each saying it plays the bucket and failed on it; the answers' statuses counted."""
    pages = [(address, secrets.token_urlsafe(16)) for address in addresses for _ in range(pages_per_address)]
    said: Counter[int] = Counter()
    words = ("bucket 255 0 0", "bucket bucket=255 backup=255")
    end = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:

        async def beat(address: str, page: str, word: str) -> None:
            headers = {"Hb-Watching": page, "CF-Connecting-IP": address, "Hb-Pathway": word}
            async with session.post(f"{url}/live/watching", headers=headers) as response:
                said[response.status] += 1

        while time.monotonic() < end:
            await asyncio.gather(*(beat(address, page, word) for address, page in pages for word in words))
            await asyncio.sleep(every)
    return said


@dataclass
class Fetcher:
    """Asks `url`'s VM pathway (variant `variant`) for its newest segments, as `address`, until stop()
    (from any thread: run() may run on another loop's)."""

    url: str
    address: str
    variant: int = 0
    fresh_query: bool = True
    statuses: Counter[str] = field(default_factory=Counter)  # each answer's status (after redirects)
    redirected_to_bucket: int = 0  # answers that were a redirect away from the service
    bytes: int = 0  # segment bytes it got from the service
    started: float = 0.0
    stopped: float = 0.0
    _stopping: bool = False

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        self.started = time.monotonic()
        headers = {"CF-Connecting-IP": self.address}
        count = itertools.count()
        segments: list[str] = []
        listed_at = -1e9
        try:
            async with aiohttp.ClientSession(headers=headers) as session:
                while not self._stopping:
                    if time.monotonic() - listed_at > 1.0 or not segments:
                        segments = await self._newest(session) or segments
                        listed_at = time.monotonic()
                    if not segments:
                        await asyncio.sleep(REFUSED_PAUSE)
                        continue
                    path = segments[next(count) % len(segments)]
                    if not await self._fetch(session, path, next(count)):
                        await asyncio.sleep(REFUSED_PAUSE)  # not the Retry-After it was told
        finally:
            self.stopped = time.monotonic()

    async def _newest(self, session: aiohttp.ClientSession) -> list[str]:
        """The last three segment URIs the VM's media playlist lists (root-relative paths)."""
        async with session.get(f"{self.url}/live/{hls.VM_FOLDER}/{self.variant}/playlist.m3u8") as response:
            if response.status != 200:
                return []
            text = await response.text()
        return [line for line in text.splitlines() if line and not line.startswith("#")][-3:]

    async def _fetch(self, session: aiohttp.ClientSession, path: str, n: int) -> bool:
        """One segment request, redirects within the service followed; True when it got bytes."""
        target = f"{self.url}{path}?x={n}" if self.fresh_query else f"{self.url}{path}"
        for _ in range(3):
            async with session.get(target, allow_redirects=False) as response:
                status, location = response.status, response.headers.get("Location", "")
                if status == 302 and location.startswith("/"):  # the same segment without the query
                    target = f"{self.url}{location}"
                    continue
                self.statuses[str(status)] += 1
                if status == 302:  # to the bucket: nothing from the VM
                    self.redirected_to_bucket += 1
                    return False
                body = await response.read()
                if status in (200, 206):
                    self.bytes += len(body)
                    return True
                return False
        return False

    @property
    def seconds(self) -> float:
        return (self.stopped or time.monotonic()) - self.started
