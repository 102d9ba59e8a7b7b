"""Players watched through an outage (tests/test_steering_browser.py): the viewer page, hls.js (with and
without content steering), video.js and Shaka, each in its own Chromium context, every segment response
recorded with a hash of its body and the pathway that served it (a VM redirect to the bucket noted apart),
compared with the writers' ledger, and the picture watched for stalls (time standing still for more than
STALL_MS while neither paused nor seeking, once it has played)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


from broadcaster.demo.ledger import Finished, Ledger
from tests.support.counting_proxy import AGENT_TAG
from tests.support.gates import BucketGates
from tests.support.local_http import Served
from tests.support.loop_thread import LoopThread
from tests.support.page_open import Agents, open_page
from tests.support.player_pages import PAGES, PROBE_JS, STALL_MS, page_state, player_pages

@contextlib.asynccontextmanager
async def on_the_rig(rig: LoopThread, gates: BucketGates) -> AsyncIterator[BucketGates]:
    """`gates` answering from the rig's loop (tests/support/loop_thread.py), not the browser's."""
    await rig.run(gates.__aenter__())
    try:
        yield gates
    finally:
        await rig.run(gates.__aexit__(None, None, None))


class TimedLedger(Ledger):
    """The writers' ledger, with when (time.monotonic()) each file was last closed: when Owncast had
    finished a segment, which a stall is judged against (a player cannot play what the source has not
    made yet; on a loaded machine the emulator's ffmpeg falls behind the clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.finished_at: dict[str, float] = {}

    def record(self, path: Path, finished: Finished) -> None:
        super().record(path, finished)
        self.finished_at[os.path.abspath(path)] = time.monotonic()

    def when(self, path: Path) -> float | None:
        return self.finished_at.get(os.path.abspath(path))


@dataclass
class Fetched:
    at: float  # time.monotonic() when the response came
    pathway: str  # bucket | vm | other
    url: str
    status: int
    variant: int
    name: str
    body: Finished | None = None  # of a 200
    length: int | None = None  # its Content-Length: what was sent, the body read or not (an aborted fetch)

    @property
    def sent(self) -> int:
        """The bytes of this answer: its body as read, else what its Content-Length said was sent."""
        return self.body.size if self.body is not None else (self.length or 0)


@dataclass
class Watched:
    """One page: what it fetched and how its picture moved."""

    name: str
    page: Any
    fetched: list[Fetched] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    pending: set[asyncio.Task[None]] = field(default_factory=set)
    refused: list[tuple[float, int, str]] = field(default_factory=list)  # (when, status, URL): 4xx/5xx, 0 no answer
    redirected: list[tuple[float, str]] = field(default_factory=list)  # (when, URL) of each segment redirect
    playlists: list[tuple[float, int, str]] = field(default_factory=list)  # (when, status, URL) of each playlist answer
    cached: list[str] = field(default_factory=list)  # segment URLs the browser's cache answered (no byte sent)
    requests: list[tuple[float, str]] = field(default_factory=list)  # (when, URL) of each request the page made
    thrown: list[str] = field(default_factory=list)  # what its scripts threw (pageerror)
    clock: float = 0.0  # time.monotonic() - performance.now() / 1000 in the page: its stalls on our clock

    async def stalls(self) -> list[dict[str, Any]]:
        """Stalls so far, the one going on included; `start`: its start on time.monotonic()'s clock."""
        got: dict[str, Any] = await self.page.evaluate("() => ({ stalls: probe.stalls, current: probe.current })")
        stalls = [dict(s, start=self.clock + s["at"] / 1000) for s in got["stalls"]]
        if got["current"] > STALL_MS:
            stalls.append({"at": None, "ms": got["current"], "ongoing": True,
                           "start": time.monotonic() - got["current"] / 1000})
        return stalls

    async def set_clock(self) -> None:
        before = time.monotonic()
        now_ms = float(await self.page.evaluate("() => performance.now()"))
        self.clock = (before + time.monotonic()) / 2 - now_ms / 1000

    def waited_for(self, stall: dict[str, Any]) -> Fetched | None:
        """The segment a stall waited for: of those the page got (200) while it stood still, the first in
        the stream (the next after what it had buffered; a burst fetched at its end lists later ones)."""
        end = stall["start"] + stall["ms"] / 1000
        got = [f for f in self.fetched if f.status == 200 and stall["start"] <= f.at <= end + 0.2]
        return min(got, key=lambda f: _number(f.name)) if got else None

    async def played(self) -> float:
        return float(await self.page.evaluate("() => window.probe.played"))

    async def buffered(self) -> float:
        """Seconds of media the video holds ahead of its position (what it plays with no fetch at all)."""
        return float(await self.page.evaluate("""() => {
          const v = document.querySelector('video');
          if (!v) return 0;
          for (let i = 0; i < v.buffered.length; i++) {
            if (v.buffered.start(i) <= v.currentTime + 0.1 && v.currentTime <= v.buffered.end(i)) {
              return v.buffered.end(i) - v.currentTime;
            }
          }
          return 0;
        }"""))

    async def fatal(self) -> list[str]:
        return list((await page_state(self.page))["fatal"])

    async def errors(self) -> list[str]:
        return list((await page_state(self.page))["said"])[-12:]

    def segments(self, since: float = 0.0, pathway: str | None = None) -> list[Fetched]:
        return [f for f in self.fetched if f.at >= since and (pathway is None or f.pathway == pathway)]


def _number(name: str) -> int:
    """Owncast's number of a segment file (stream-<id>-<n>.ts)."""
    digits = name.rsplit("-", 1)[-1].split(".")[0]
    return int(digits) if digits.isdigit() else -1


class Players(Served):
    """The pages, served from 127.0.0.1 (the players' pages) or the service (its viewer page)."""

    def __init__(self, browser: Any, service_url: str, bucket_url: str, hls_dir: Path, ledger: TimedLedger,
                 addresses: dict[str, str] | None = None) -> None:
        """`addresses`: each page's own address, by name, as its User-Agent names it (counting_proxy.py's
        AGENT_TAG: a proxy in front of the service passes it on in CF-Connecting-IP)."""
        super().__init__(player_pages(PAGES))
        self.browser = browser
        self.addresses = addresses or {}
        self.service_url = service_url
        self.bucket_host = urlsplit(bucket_url).netloc
        self.service_host = urlsplit(service_url).netloc
        self.hls_dir = hls_dir
        self.ledger = ledger
        self.watched: list[Watched] = []
        self._contexts: list[Any] = []
        self._agents = Agents(browser)

    async def __aexit__(self, *exc: object) -> None:
        for context in self._contexts:
            try:
                await asyncio.wait_for(context.close(), 15)
            except Exception:  # noqa: BLE001 (closing what is left: the test's outcome stands)
                pass
        await super().__aexit__()

    async def open(self, name: str) -> Watched:
        """`viewer` (the service's page) or one of player_pages.py's PAGES, playing the service's master."""
        address = self.addresses.get(name)
        agent = await self._agents.tagged(f"{AGENT_TAG}{address}") if address else None
        opened = await open_page(self.browser, None, scripts=(PROBE_JS,), user_agent=agent)
        self._contexts.append(opened.context)
        context, page = opened.context, opened.page
        watched = Watched(name, page, console=opened.said, thrown=opened.thrown)
        page.on("response", lambda response: self._record(watched, response))
        page.on("request", lambda request: watched.requests.append((time.monotonic(), request.url)))
        # A fetch that got no answer at all (the gate's connection refused or reset, a player's abort):
        # refused too, status 0; the viewer page leaves the bucket on these as on a 5xx (player.js).
        page.on("requestfailed", lambda request: watched.refused.append((round(time.monotonic(), 1), 0, request.url)))
        # What the browser's own cache answered (an immutable segment the page fetched before, at the same
        # URL: the VM's URI listed on both pathways): Chromium's DevTools protocol tells, Playwright not.
        cdp = await context.new_cdp_session(page)
        from_cache: set[str] = set()
        cdp.on("Network.requestServedFromCache", lambda e: from_cache.add(e["requestId"]))
        cdp.on("Network.responseReceived", lambda e: watched.cached.append(e["response"]["url"])
               if (e["requestId"] in from_cache or e["response"].get("fromDiskCache"))
               and urlsplit(e["response"]["url"]).path.endswith(".ts") else None)
        await cdp.send("Network.enable")
        if name == "viewer":
            await page.goto(f"{self.service_url}/")
        else:
            await page.goto(f"{self.url}/page/{name}?src={self.service_url}/live/master.m3u8")
        await watched.set_clock()
        self.watched.append(watched)
        return watched

    async def again(self, watched: Watched) -> Watched:
        """`watched`'s page closed and opened anew: a new session of its player. What the old one fetched
        is judged no more (its hashes not awaited)."""
        for task in watched.pending:
            task.cancel()
        self.watched.remove(watched)
        context = watched.page.context
        self._contexts.remove(context)
        await asyncio.wait_for(context.close(), 15)
        return await self.open(watched.name)

    def _record(self, watched: Watched, response: Any) -> None:
        url = response.url
        parts = urlsplit(url)
        if response.status >= 400:
            watched.refused.append((round(time.monotonic(), 1), response.status, url))
        if parts.path.endswith((".m3u8", ".json")):
            watched.playlists.append((round(time.monotonic(), 1), response.status, url))
        if not parts.path.endswith(".ts"):
            return
        if 300 <= response.status < 400:  # the VM sending the player to the bucket: the next response is its
            watched.redirected.append((round(time.monotonic(), 1), url))
            return
        pieces = parts.path.split("/")
        host = parts.netloc
        pathway = "bucket" if host == self.bucket_host else "vm" if host == self.service_host else "other"
        try:
            variant = int(pieces[-2])
        except ValueError:
            variant = -1
        length = response.headers.get("content-length", "")
        fetched = Fetched(time.monotonic(), pathway, url, response.status, variant, pieces[-1],
                          length=int(length) if length.isdigit() else None)
        watched.fetched.append(fetched)
        if response.status == 200:
            task = asyncio.ensure_future(self._hash(response, fetched))
            watched.pending.add(task)
            task.add_done_callback(watched.pending.discard)

    @staticmethod
    async def _hash(response: Any, fetched: Fetched) -> None:
        try:
            body = await response.body()
        except Exception:  # noqa: BLE001 (the page went, or the body was dropped: nothing to compare)
            return
        fetched.body = Finished(hashlib.sha256(body).hexdigest(), len(body))

    def mismatches(self) -> list[str]:
        """Segments a page got (200) that are not byte for byte what Owncast finished writing."""
        out = []
        for watched in self.watched:
            for f in watched.fetched:
                if f.status != 200 or f.body is None:
                    continue
                reason = self.ledger.mismatch(self.hls_dir / str(f.variant) / f.name, f.body)
                if reason is not None:
                    out.append(f"{watched.name} {f.pathway} {f.name}: {reason}")
        return out

    def finished_at(self, fetched: Fetched) -> float | None:
        """When Owncast finished writing the segment `fetched` is (time.monotonic())."""
        return self.ledger.when(self.hls_dir / str(fetched.variant) / fetched.name)

    async def settle(self) -> None:
        """Wait for the bodies still being hashed."""
        pending = [t for w in self.watched for t in w.pending]
        if pending:
            await asyncio.wait(pending, timeout=10)
