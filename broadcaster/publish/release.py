"""Makes new playlist versions public in the one safe order: saved to STATE_DIR first (a crash must not
forget a number a client has seen), then visible and offered to the bucket, then told. When the save
fails, a version below the last save's reserve is shown once STATE_DIR/served records it; else versions
are held back until a save succeeds (docs/hls-rules.md#numbers-across-restarts)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..bucket.mirror import PlaylistMirror
from ..metrics import Metrics
from ..playlist import hls
from ..playlist.rendered import Rendered, Version
from ..source.owncast import SourceSegment, SourceVariant
from ..source.tasks import cancelled
from ..state.snapshots import Snapshots
from .visible import VisiblePlaylists

# (variant, media sequence, Owncast's segment, the URL listed), once the listing is visible.
ListedHook = Callable[[int, int, SourceSegment, str], None]

Listing = tuple[int, int, SourceSegment, float, str]  # a listing not yet visible: ..., seen_at, URL

log = logging.getLogger(__name__)

class ShownTo(Protocol):
    """Told how far each playlist was shown on each pathway, as it becomes visible."""

    def shown(self, renderings: Mapping[str, Mapping[int, Version]], *, replace: bool = False) -> None:
        """`replace`: a restored state's versions, nothing else visible."""


RESERVED = "reserved"  # the top-level key of the numbers a saved state reserves (hls.SEQUENCE_RESERVE)
HELD_RETRY = 1.0  # seconds between saves while versions are held back, new segments or not


@dataclass(frozen=True, slots=True)
class Versions:
    """Every variant's current version on each pathway, pushed on each change."""

    renderings: dict[str, dict[int, Version]]  # pathway -> variant -> its version there
    edges: dict[int, Rendered]  # the first bucket's versions for the bucket (no blocking reload); empty without a mirror
    target: int | None  # the target duration the publisher decided
    # The publisher's memory when these versions were pushed; None when no state file is kept.
    memory: dict[str, object] | None = None
    # How many times the playlists restarted before these versions: one pushed before is never shown after.
    restarts: int = 0

    @property
    def in_bucket(self) -> dict[int, Version]:
        return self.renderings.get(hls.BUCKET_PATHWAY, {})


@dataclass(frozen=True)
class Outlets:
    """Where each new version goes, in this order: saved, shown, offered to the bucket, told."""

    playlists: VisiblePlaylists
    snapshots: Snapshots | None = None
    mirror: PlaylistMirror | None = None
    on_listed: tuple[ListedHook, ...] = ()
    pathways: Mapping[str, VisiblePlaylists] = field(default_factory=dict)


class Release:
    def __init__(self, outlets: Outlets, metrics: Metrics, *, key_prefix: str, limit: int = 0,
                 shown_to: ShownTo | None = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._playlists = outlets.playlists
        self._shows = {hls.BUCKET_PATHWAY: outlets.playlists, **outlets.pathways}
        self._shown_to = shown_to
        self._metrics = metrics
        self._latest = Versions({}, {}, None)
        self._prefix = key_prefix
        self.snapshots = outlets.snapshots
        self.mirror = outlets.mirror
        self._on_listed = outlets.on_listed
        self._mono = monotonic
        self._unpublished: list[Listing] = []  # listings in versions not yet saved and shown
        self._dirty = asyncio.Event()
        self._saver: asyncio.Task[None] | None = None
        self.limit = limit  # numbers below it may be shown without a new save (the last save's reserve)
        self._in_view: set[int] = set()  # variants whose playlist is visible
        self.held = False  # versions are held back: past the limit, and the save failed

    def listed(self, listing: Listing) -> None:
        self._unpublished.append(listing)

    @property
    def saves(self) -> bool:
        """A state file is kept: each version is saved before it is shown."""
        return self.snapshots is not None and self.snapshots.file is not None

    def changed(self, versions: Versions) -> None:
        if versions.target != self._latest.target:
            for shown in self._shows.values():
                shown.under(versions.target)
        self._latest = versions
        if self._all_shown(versions):
            return
        if not self.saves or self._saver is None:
            self._apply(versions, self._take_listings())
        else:
            self._dirty.set()

    def _all_shown(self, versions: Versions) -> bool:
        return all(shown.version(i) is r for pid, made in versions.renderings.items()
                   if (shown := self._shows.get(pid)) is not None for i, r in made.items())

    def announce(self, variants: list[SourceVariant]) -> None:
        for shown in self._shows.values():
            shown.announce(variants)

    @property
    def announced(self) -> list[SourceVariant] | None:
        return self._playlists.announced

    def restored(self, versions: Versions, limit: int) -> None:
        """What a restored state shows, before anything is served: visible at once, nothing told."""
        self._latest = versions
        self.limit = limit
        self._in_view = set(versions.in_bucket)
        for pid, shown in self._shows.items():
            shown.under(versions.target)
            shown.replace(versions.renderings.get(pid, {}))
        if self._shown_to is not None:
            self._shown_to.shown(versions.renderings, replace=True)

    def _take_listings(self) -> list[Listing]:
        listings, self._unpublished = self._unpublished, []
        return listings

    def _apply(self, versions: Versions, listings: list[Listing]) -> None:
        renderings = versions.in_bucket
        self._in_view.update(renderings)
        shows = self._shows
        for pid, made in versions.renderings.items():
            playlists = shows.get(pid)
            if playlists is not None:
                playlists.show(made)  # wakes requests held for a newer version (blocking reload)
        if self._shown_to is not None:
            self._shown_to.shown(versions.renderings)
        self._offer(versions)
        now = self._mono()
        # A listing is told once the first bucket's playlist shows it.
        shown = [listing for listing in listings
                 if listing[0] in renderings and listing[1] <= renderings[listing[0]].last_sequence]
        self._unpublished[:0] = [listing for listing in listings if listing not in shown]
        for index, sequence, src, seen_at, uri in shown:
            self._metrics.listing_delay.observe(now - seen_at)
            for told in self._on_listed:
                told(index, sequence, src, uri)

    async def _save_loop(self, snapshots: Snapshots) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # held: saved again even without a new segment
                async with asyncio.timeout(HELD_RETRY if self.held else None):
                    await self._dirty.wait()
            self._dirty.clear()
            versions = self._latest
            if not self._unpublished and self._all_shown(versions):
                continue  # a change an earlier save covered
            assert versions.memory is not None, "a version pushed without the memory to save"
            listings = self._take_listings()
            saved = await snapshots.save(versions.memory)  # a failure is logged and shown by /health
            if saved is not None:
                self.limit = max(self.limit, saved[RESERVED])
            high = max((r.last_sequence for made in versions.renderings.values() for r in made.values()),
                       default=-1)
            # Unsaved, a version is shown only once STATE_DIR/served says how far.
            if versions.restarts != self._latest.restarts:
                # The playlists restarted while this was saved: never shown now, the next save shows them.
                self._unpublished[:0] = listings
            elif high < self.limit and (saved is not None or await snapshots.record_shown(high)):
                self._hold(False)
                self._apply(versions, listings)
            else:
                self._unpublished[:0] = listings  # told once a later version holding them is shown
                self._hold(True)

    def _hold(self, held: bool) -> None:
        if held == self.held:
            return
        self.held = held
        self._metrics.listing_held.set(int(held))
        if held:
            log.error("new playlist versions held back: state cannot be saved, and the media sequence numbers "
                      "reserved by the last saved state (below %d) are used up or how far versions were shown "
                      "cannot be recorded; listing resumes once a save succeeds", self.limit)
        else:
            log.info("state saved: new playlist versions are shown again")

    def _offer(self, versions: Versions) -> None:
        """Visible versions go to the bucket too; the master once its variants are there."""
        mirror, target = self.mirror, versions.target
        if mirror is None or target is None:
            return
        cache_control = hls.playlist_cache_control(target)
        for index, rendered in versions.edges.items():
            key = hls.object_key(self._prefix, index, hls.MEDIA_PLAYLIST_NAME)
            mirror.offer(key, rendered, cache_control)
        announced = self._playlists.announced
        master = self._playlists.master_playlist()
        if master is not None and announced:
            needs = tuple(hls.object_key(self._prefix, v.index, hls.MEDIA_PLAYLIST_NAME) for v in announced)
            mirror.offer(self.master_key, master, cache_control, requires=needs)

    @property
    def master_key(self) -> str:
        return hls.bucket_key(self._prefix, hls.MASTER_PLAYLIST_NAME)

    def offer_to_mirror(self) -> None:
        latest = self._latest
        self._offer(latest if self._in_view else Versions({}, {}, latest.target))

    async def start(self) -> None:
        if self.snapshots is not None and self.saves and self._saver is None:
            self._saver = asyncio.create_task(self._save_loop(self.snapshots), name="state-saver")

    async def close(self) -> None:
        saver, self._saver = self._saver, None
        await cancelled(saver)
        if self.snapshots is not None:
            await self.snapshots.close()
