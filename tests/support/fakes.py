"""Fakes at the seams: a bucket whose every put the test controls, the sources the HTTP app reads (playlists,
health), the watcher's listener, the cleaner's bucket and clock, and the small values they carry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from broadcaster.playlist import hls
from broadcaster.playlist.chunks import Parts
from broadcaster.playlist.manifest import ManifestGenerator
from broadcaster.playlist.options import WindowOptions
from broadcaster.playlist.rendered import Rendered
from broadcaster.playlist.renderer import Listing, Renderer
from broadcaster.playlist.segments import ListedSegment, Removed
from broadcaster.source.owncast import SourcePlaylist, SourceVariant
from broadcaster.status.assessment import Assessment
from broadcaster.status.stream import StreamState
from broadcaster.bucket.store import StoreError
from broadcaster.source.writes import Finish


@dataclass
class Put:
    key: str
    body: bytes
    content_type: str
    cache_control: str


@dataclass
class FakeStore:
    """Succeeds at once unless told otherwise: `fail[key] = n` fails n times; `hold(key)` blocks
    that key's puts until `release(key)`; `down = True` fails everything, with the error code `refusal`;
    `flapping`: every other put fails (a throttled bucket). `objects`: what it holds now (after deletes)."""

    puts: list[Put] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    down: bool = False
    hang: bool = False
    refusal: str = "ServiceUnavailable"
    flapping: bool = False
    _gates: dict[str, asyncio.Event] = field(default_factory=dict)

    def hold(self, key: str) -> None:
        self._gates[key] = asyncio.Event()

    def release(self, key: str) -> None:
        self._gates.pop(key).set()

    async def put(self, key: str, body: bytes, *, content_type: str, cache_control: str) -> None:
        self.attempts.append(key)
        if self.flapping:
            self.down = len(self.attempts) % 2 == 1
        if self.hang:
            await asyncio.Event().wait()
        gate = self._gates.get(key)
        if gate is not None:
            await gate.wait()
        if self.down:
            raise StoreError(self.refusal, "bucket down")
        if self.fail.get(key, 0) > 0:
            self.fail[key] -= 1
            raise StoreError("InternalError", "try again")
        self.puts.append(Put(key, body, content_type, cache_control))

    async def probe(self) -> None:
        if self.down:
            raise StoreError("ServiceUnavailable", "bucket down")

    async def delete(self, key: str) -> None:
        self.puts = [p for p in self.puts if p.key != key]

    def keys(self) -> list[str]:
        return [p.key for p in self.puts]

    @property
    def objects(self) -> dict[str, bytes]:
        return {p.key: p.body for p in self.puts}


class WrittenWhole:
    """source.writes at the seam, for tests that write each file whole before its playlist names it:
    every file is finished when asked (tests/test_whole_segments.py tests the real one)."""

    async def finished(self, path: Path, limit: float, on_writing: Callable[[], None] | None = None) -> Finish:
        return Finish.READY

    def follow(self, hook: Callable[[Path | None], None]) -> None:
        """Nothing is written after it is finished here."""


# -- what the HTTP app reads -----------------------------------------------------------------------


class CountingRenderer(Renderer):
    """A real renderer that counts how often it actually renders a playlist's text."""

    renders = 0

    def text(self, p: Listing, server_control: bool, skipped: int = 0) -> str:
        self.renders += 1
        return super().text(p, server_control, skipped)

    def _parts(self, p: Listing, server_control: bool) -> Parts:  # the full playlist, rendered in parts
        self.renders += 1
        return super()._parts(p, server_control)


class CountingGenerator(ManifestGenerator):
    """A real generator that counts how often it actually renders its text."""

    def __init__(self, target_duration: int, options: WindowOptions) -> None:
        super().__init__(target_duration, options)
        self._versions = self._counting = CountingRenderer()

    @property
    def renders(self) -> int:
        return self._counting.renders


class FakePlaylists:
    """Variants 0..n-1 backed by real generators; the master is set by the test."""

    def __init__(self, target_duration: int | None = 6, variants: int = 2) -> None:
        self.target_duration = target_duration
        self.generators = {
            i: CountingGenerator(target_duration or 6, WindowOptions(0)) for i in range(variants)
        }
        self.master: Rendered | None = None
        self.held_requests = 0  # never holds (wait_for_sequence answers at once)
        self.owncast_master: Rendered | None = None  # the same, naming variants as Owncast: /hls/
        self._now = 1_000_000.0

    def add_segment(self, variant: int) -> None:
        gen = self.generators[variant]
        self._now += 1
        gen.append(ListedSegment(f"https://r2.example/{variant}/seg{gen.next_sequence}.ts", 1.0), self._now)

    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered | None:
        assert media_name in (hls.MEDIA_PLAYLIST_NAME, hls.OWNCAST_PLAYLIST_NAME)
        return self.master if media_name == hls.MEDIA_PLAYLIST_NAME else self.owncast_master

    def media_playlist(self, variant: int) -> Rendered | None:
        gen = self.generators.get(variant)
        # A generator without segments is a variant that is not ready yet.
        return gen.render() if gen is not None and gen.segment_count else None

    def last_sequence(self, variant: int) -> int | None:
        gen = self.generators.get(variant)
        return gen.next_sequence - 1 if gen is not None and gen.segment_count else None

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Rendered | None:
        """Never holds: the playlist if it lists `sequence`, else None at once (as after `timeout`)."""
        gen = self.generators.get(variant)
        return gen.render() if gen is not None and gen.segment_count and gen.next_sequence > sequence else None


class FakeHealth:
    """What HealthReport would assess, for the app and the StatusWatcher (`assess`); the test changes
    `answer` ((ok, /health's body) with its "stream" and "status") or sets `error`, and counts the readings."""

    def __init__(self, ok: bool = True) -> None:
        self.answer: tuple[bool, dict[str, object]] = (
            ok, {"status": "ok" if ok else "stalled", "stream": "idle", "segments": 3})
        self.calls = 0
        self.error: Exception | None = None

    def health(self) -> tuple[bool, dict[str, object]]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.answer

    def assess(self) -> Assessment:
        ok, body = self.health()
        state = StreamState.of(str(body.get("stream", "idle")), ok)
        return Assessment(ok, state, str(body["status"]), body)


# -- the watcher's listener --------------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.masters: list[list[SourceVariant]] = []
        self.playlists: list[tuple[int, SourcePlaylist]] = []
        self.changed = asyncio.Event()

    def on_master(self, variants: list[SourceVariant]) -> None:
        self.masters.append(variants)
        self.changed.set()

    def on_variant_playlist(self, index: int, playlist: SourcePlaylist) -> None:
        self.playlists.append((index, playlist))
        self.changed.set()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    def names(self, variant: int) -> list[str]:
        for index, p in reversed(self.playlists):
            if index == variant:
                return [s.name for s in p.segments]
        return []


# -- the cleaner's bucket and clock, the mirror's versions ---------------------------------------------


@dataclass
class Bucket:
    deleted: list[list[str]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    down: bool = False

    async def delete_many(self, keys: list[str]) -> list[str]:
        if self.down:
            raise StoreError("ServiceUnavailable")
        self.deleted.append(keys)
        return [k for k in keys if k in self.refuse]


class Clock:
    """A clock the test moves (`t`), for every part that takes one (monotonic or wall)."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def removed(key: str, keep: float) -> Removed:
    return Removed(ListedSegment(f"https://cdn/{key}", 1.0, key=key), removed_at=0.0, keep=keep)


def version(n: int) -> Rendered:
    return Rendered(f"#EXTM3U\n#v{n}\n".encode(), last_sequence=n)
