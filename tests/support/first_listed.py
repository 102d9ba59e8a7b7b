"""Each segment URL a watcher sees listed: when it was first listed, and its bytes fetched right then and
compared with the file Owncast finished writing (tests.support.whole), without holding up the next look
(which times how long each URL stays listed). A listed segment is in the bucket the moment it is listed
(HLS_RULES: upload first, list second)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from broadcaster.demo.ledger import Ledger
from tests.support.whole import finished

# A VM segment asked for before its upload landed is asked again for at most this long.
LATE_UPLOAD = 30.0


@dataclass
class FirstListed:
    http: aiohttp.ClientSession
    ledger: Ledger
    vm: str  # where the service's VM segment URLs start (content steering's VM pathway)
    at: dict[str, float] = field(default_factory=dict)  # URL -> monotonic, when first listed
    compared: set[str] = field(default_factory=set)  # URLs fetched and compared with the finished file
    wrong: dict[str, str] = field(default_factory=dict)  # URL -> what is wrong with its answer
    fetches: set[asyncio.Task[None]] = field(default_factory=set)  # under way

    def note(self, url: str, path: Path, now: float) -> None:
        """`url` (the Owncast file `path`) listed at `now`: fetched if this is its first listing."""
        if url in self.at:
            return
        self.at[url] = now
        task = asyncio.create_task(self.fetch(url, path))
        self.fetches.add(task)
        task.add_done_callback(self.fetches.discard)

    async def fetch(self, url: str, path: Path) -> None:
        """One exception to "in the bucket when listed", asked again as a player asks: a segment listed at
        the VM's URI while players were steered away and asked for once they are back, before its upload
        landed, is a 503 with Retry-After (vm/segments.py's `late`), then a redirect to the bucket's copy."""
        deadline = time.monotonic() + LATE_UPLOAD
        try:
            while True:
                async with self.http.get(url) as r:
                    late = (r.status == 503 and url.startswith(self.vm) and "Retry-After" in r.headers
                            and time.monotonic() < deadline)
                    if not late:
                        body = await r.read()
                        break
                    wait = float(r.headers["Retry-After"])
                await asyncio.sleep(wait)  # as the answer says; the redirect follows once the upload lands
        except aiohttp.ClientError as err:
            self.wrong[url] = f"listed, but fetching it failed: {err!r}"
            return
        if r.status != 200:
            self.wrong[url] = f"listed, but answers {r.status}"
            return
        await finished(self.ledger, path)  # its tail may still be held (LateTails)
        self.compared.add(url)
        if (problem := self.ledger.mismatch(path, body)) is not None:
            self.wrong[url] = f"the bucket holds {problem}"

    async def settle(self) -> None:
        """Wait for the fetches still under way."""
        while self.fetches:
            await asyncio.gather(*self.fetches)

    async def close(self) -> None:
        for task in self.fetches:
            task.cancel()
        await asyncio.gather(*self.fetches, return_exceptions=True)

    def problems(self) -> list[str]:
        return [f"{url}: {problem}" for url, problem in self.wrong.items()]
