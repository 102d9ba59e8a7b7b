"""The service seen from outside, as a player sees it: poll its playlists, check every version with the
HLS checker, remember what each variant listed."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from broadcaster.demo.emulator import OwncastEmulator
from broadcaster.playlist import hls
from broadcaster.source.owncast import parse_media_playlist
from tests.support.hls_checker import VariantSetChecker
from tests.support.listing import listing
from tests.support.owncast_writer import owncast_number
from tests.support.scrape import Samples, scraped
from tests.support.waiting import until


@dataclass
class Observed:
    """Everything seen while polling: Owncast's segments and ours, and every version checked."""

    owncast: dict[int, dict[str, float]] = field(default_factory=lambda: {0: {}, 1: {}})
    ours: dict[int, dict[int, tuple[str, float]]] = field(default_factory=lambda: {0: {}, 1: {}})
    checker: VariantSetChecker = field(default_factory=VariantSetChecker)
    ended: set[int] = field(default_factory=set)
    gaps: dict[int, set[str]] = field(default_factory=dict)  # variant -> URIs listed with EXT-X-GAP
    answers: dict[int, str] = field(default_factory=dict)  # variant -> its playlist's last answer, in short
    after_discontinuity: set[str] = field(default_factory=set)  # URIs listed after #EXT-X-DISCONTINUITY
    sequences: set[int] = field(default_factory=set)  # every EXT-X-DISCONTINUITY-SEQUENCE seen (0: none)

    def note_owncast(self, oc: OwncastEmulator) -> None:
        for v in (0, 1):
            try:
                playlist = parse_media_playlist(oc.variant_playlist(v).read_text())
            except Exception:
                continue  # half-written or being replaced: the next poll reads it
            for s in playlist.segments:
                if not s.is_offline_clip:
                    self.owncast[v][s.name] = s.duration

    def note_ours(self, v: int, text: str, base: str = "") -> None:
        """A version of variant `v`'s playlist, fetched from `base`: each URI kept resolved against it, as a
        player resolves it (the bucket's URL, or the VM's path while players are steered away)."""
        self.checker.assert_ok(str(v), text)
        found = re.search(r"^#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)$", text, re.MULTILINE)
        before = int(found.group(1)) if found else 0
        self.sequences.add(before)
        for e in listing(text):
            uri = urljoin(base, e.uri)
            if e.discontinuity > before:
                self.after_discontinuity.add(uri)
            before = e.discontinuity
            self.ours[v][e.number] = (uri, e.duration)
            if e.gap:
                self.gaps.setdefault(v, set()).add(uri)
        if "#EXT-X-ENDLIST" in text.splitlines():
            self.ended.add(v)

    def describe(self) -> str:
        """What a wait shows when it fails: segments listed per variant, which ended, the last answers."""
        return f"listed {self.counts()}, ended {sorted(self.ended)}, last answers {self.answers}"

    def at(self, http: aiohttp.ClientSession, url: str, oc: OwncastEmulator) -> Looking:
        """This record kept up to date by looking at Owncast and the service at `url`."""
        return Looking(self, http, url, oc)

    def counts(self) -> dict[int, int]:
        """Segments listed so far per variant."""
        return {v: len(listed) for v, listed in self.ours.items()}

    def uris(self, v: int) -> list[str]:
        """Every URI variant `v` listed, by media sequence number."""
        return [self.ours[v][n][0] for n in sorted(self.ours[v])]

    def assert_in_owncast_order(self, v: int, skipped: Collection[int] = (), span: bool = False) -> None:
        """Every segment Owncast listed, but its numbers `skipped`, listed once, in Owncast's order, under
        consecutive media sequence numbers. `span`: only those Owncast listed between the first and the last
        we listed (Owncast was seen before the service's first and after its last listing)."""
        msns = sorted(self.ours[v])
        assert msns == list(range(msns[0], msns[0] + len(msns))), f"variant {v}: a media sequence was skipped"
        listed = [uri.rsplit("/", 1)[1] for uri in self.uris(v)]
        known = sorted(self.owncast[v], key=owncast_number)
        # Ours from the first segment Owncast was seen listing: on a loaded machine Owncast's playlist may
        # have moved past our first before it was first read.
        names = [n for n in listed if owncast_number(n) >= owncast_number(known[0])]
        low, high = (owncast_number(listed[0]), owncast_number(listed[-1])) if span else (0, math.inf)
        expected = [n for n in known if owncast_number(n) not in skipped and low <= owncast_number(n) <= high]
        assert names == expected, f"variant {v}: listed {names}, Owncast {expected}"

    def listed_files(self, oc: OwncastEmulator, bucket: str | None = None) -> list[tuple[str, Path]]:
        """Every segment URL we listed, with the Owncast file it was made from (for tests.support.whole);
        not a gap's (EXT-X-GAP: its URI holds no media and is not to be loaded, 4.4.4.7). `bucket`: the
        bucket's public URL (R2_KEY_PREFIX "live"), where a segment last listed at the VM's URI (players
        steered away from a busy machine's slow bucket) is looked for instead: for a check made once the
        service that answered that URI has stopped."""
        def url(v: int, uri: str) -> str:
            name = uri.rsplit("/", 1)[1]
            if bucket is not None and urlsplit(uri).path == f"{hls.VM_SEGMENT_FOLDER}/{v}/{name}":
                return f"{bucket}/{hls.object_key('live', v, name)}"
            return uri
        return [(url(v, uri), oc.variant_dir(v) / uri.rsplit("/", 1)[1])
                for v in self.ours for uri, _ in self.ours[v].values() if uri not in self.gaps.get(v, ())]


async def poll(http: aiohttp.ClientSession, url: str, oc: OwncastEmulator, seen: Observed) -> None:
    seen.note_owncast(oc)
    for v in (0, 1):
        playlist = f"{url}/live/{v}/playlist.m3u8"
        async with http.get(playlist) as r:
            body = await r.text()
            # Any other answer (503 before the first segment, 404 for a variant not seen yet) is looked at
            # again; the last one is kept for the message of a wait that fails.
            tail = " | ".join(body.splitlines()[-3:])
            seen.answers[v] = f"{r.status}: ...{tail[-160:]}"
            if r.status == 200:
                assert r.headers["Content-Type"] == "application/vnd.apple.mpegurl"
                seen.note_ours(v, body, playlist)


@dataclass
class Looking:
    """`seen` kept up to date from Owncast's files (`oc`) and the service at `url`: one service's run."""

    seen: Observed
    http: aiohttp.ClientSession
    url: str
    oc: OwncastEmulator

    async def poll(self) -> None:
        await poll(self.http, self.url, self.oc, self.seen)

    async def until(self, done: Callable[[], bool], what: str, timeout: float = 30.0,
                    every: float = 0.1) -> None:
        """Until `done()`, what Owncast and the service list looked at before each check."""
        async def polled() -> bool:
            await self.poll()
            return done()

        await until(polled, what, timeout, every=every, detail=self.seen.describe)

    async def listed_in_each(self, count: int, timeout: float = 30.0, every: float = 0.1) -> None:
        await self.until(lambda: min(self.seen.counts().values()) >= count,
                         f"{count} segments listed in each variant", timeout, every)

    async def listed_more(self, count: int) -> None:
        """Until each variant lists `count` more segments than variant 0 had listed so far."""
        await self.listed_in_each(len(self.seen.ours[0]) + count)

    async def ended(self, timeout: float = 20.0) -> None:
        """Owncast's broadcaster leaves (its offline tail and ENDLIST); until both our playlists end."""
        await self.oc.stop_stream(offline=True)
        await self.until(lambda: self.seen.ended == {0, 1}, "both variants ended", timeout)


@dataclass
class Observer:
    """Polls the service's media playlists, checks every version, remembers what each variant listed."""

    url: str
    http: aiohttp.ClientSession
    variants: tuple[int, ...] = (0, 1)
    checker: VariantSetChecker = field(
        default_factory=lambda: VariantSetChecker(allow_resume_after_endlist=True, allow_restart=True)
    )
    listed: dict[int, dict[int, str]] = field(default_factory=dict)  # variant -> msn -> segment name
    urls: dict[tuple[int, str], str] = field(default_factory=dict)  # (variant, segment name) -> its URI as listed
    gaps: dict[int, set[int]] = field(default_factory=dict)  # variant -> msns listed with EXT-X-GAP
    versions: int = 0

    async def poll(self) -> None:
        for v in self.variants:
            async with self.http.get(f"{self.url}/live/{v}/playlist.m3u8") as r:
                if r.status == 503 or (r.status == 404 and v not in self.listed):
                    continue  # not ready yet (a variant other than the default is unknown until then)
                assert r.status == 200, (v, r.status, await r.text())
                text = await r.text()
            self.checker.assert_ok(str(v), text)
            self.versions += 1
            assert "#EXT-X-MEDIA-SEQUENCE:" in text, text
            for e in listing(text):
                self.listed.setdefault(v, {})[e.number] = e.name
                self.urls[(v, e.name)] = e.uri
                if e.gap:
                    self.gaps.setdefault(v, set()).add(e.number)

    def segment_url(self, v: int, name: str) -> str:
        """Where a player fetches the segment: its URI resolved against the playlist's URL (the bucket's, or
        the VM's path on this host while players are steered away from the bucket)."""
        return urljoin(f"{self.url}/live/{v}/playlist.m3u8", self.urls[(v, name)])

    def names(self, v: int) -> list[str]:
        got = self.listed.get(v, {})
        return [got[n] for n in sorted(got)]

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        """Until `condition()`, the service's playlists looked at before each check."""
        async def polled() -> bool:
            await self.poll()
            return condition()

        await until(polled, what, timeout, every=0.05, detail=lambda: f"listed {self.listed}")

    async def listed_everywhere(self, *names: str, timeout: float = 10.0) -> None:
        await self.until(lambda: all(n in self.names(v) for v in self.variants for n in names), timeout,
                         f"{names} listed in every variant")

    async def metrics(self) -> Samples:
        return await scraped(self.http, self.url)

    async def health(self) -> tuple[int, dict[str, object]]:
        return await health(self.http, self.url)


async def health(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    """The service at `url`: its /health's status code and body."""
    async with http.get(f"{url}/health") as r:
        return r.status, await r.json()


async def listed_at_least(url: str, count: int, timeout: float = 60.0) -> None:
    """Until the media playlist at `url` lists `count` segments (a service uploads a backlog first, in
    order: on a loaded machine that takes seconds, and a player that came sooner would see part of it)."""
    listed = 0
    async with aiohttp.ClientSession() as http:
        async def enough() -> bool:
            nonlocal listed
            async with http.get(url) as r:
                listed = (await r.text()).count("#EXTINF") if r.status == 200 else 0
            return listed >= count

        await until(enough, f"{url} listing {count} segments", timeout, every=0.2, detail=lambda: f"{listed} listed")
