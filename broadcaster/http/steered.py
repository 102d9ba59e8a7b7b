"""What content steering hands the HTTP server (http.Pathways), wired from the service's parts: the
multivariant playlists that name every pathway, every other pathway's media playlists (served here;
their segments are where each pathway's URIs say), the VM's segments, and the steering manifest."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Protocol

from ..bucket.held import Held, HeldFile
from ..playlist import hls
from ..playlist.master import Pathway as Offered
from ..publish.pathways import PathwayPlan
from ..publish.visible import VisiblePlaylists
from ..settings import Settings
from ..steering.masters import SteeredMasters
from ..steering.metrics import PathwayCounts
from ..steering.policy import MIN_UPLOAD_WAIT, SteeringPolicy
from .app import Pathways, ServedPathway
from .clients import Proxies
from .pathway import OwnFailure, VmSegments
from .playlists import Reading
from .vm_budget import BURST_SECONDS, ByteBudget


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
        # Its file beneath HLS_DIR when nothing is held of it (a segment's key is PREFIX/<variant>/<file>).
        return self._held.at_hand(key, tuple(key.rsplit("/", 2)[-2:]))

    def read(self, copy: HeldFile) -> bytes:
        return self._held.read(copy)


class Serving(Protocol):
    """What the steering policy says of the first bucket (steering/policy.py)."""

    def bucket_serves(self) -> bool: ...

    def target_duration(self) -> int | None: ...


class Waits(Protocol):
    """The first bucket's pathway's playlists (publish/visible.py's VisiblePlaylists)."""

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> object | None: ...


class InBucket:
    """Where the VM sends a player for a segment while the first bucket serves: the bucket's copy, at the
    URL the first bucket's playlist lists it (public, or presigned), once its upload landed."""

    def __init__(self, steering: Serving, located: Located, first: Waits,
                 key_for: Callable[[int, str], str]) -> None:
        self._steering = steering
        self._located = located
        self._first = first
        self._key_for = key_for

    def now(self, variant: int, name: str) -> str | None:
        """The bucket's copy of a segment the VM does not hold (any more), while the bucket serves."""
        if not self._steering.bucket_serves():
            return None
        at = self._located.found(hls.VM_PATHWAY, self._key_for(variant, name))
        return at[1] if at is not None else None

    async def within(self, variant: int, name: str) -> str | None:
        """The bucket's copy while the bucket serves, once its upload landed, waited for as long as an
        upload may wait before it steers players away (then: None, and the VM answers)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self._steering.target_duration() or 3, MIN_UPLOAD_WAIT)
        key = self._key_for(variant, name)
        if not self._steering.bucket_serves():
            return None
        at = self._located.found(hls.VM_PATHWAY, key)
        if at is None or at[1] is not None:
            return at[1] if at is not None else None
        remaining = deadline - loop.time()
        if remaining <= 0 or await self._first.wait_for_sequence(variant, at[0], remaining) is None:
            return None
        # Asked once more, not in a loop: the first bucket's playlist lists it now (or answered for
        # another reason), and one it lists as a gap (or listed and let go before it landed) would
        # answer again at once, for ever, without the loop yielding.
        if not self._steering.bucket_serves():
            return None
        at = self._located.found(hls.VM_PATHWAY, key)
        return at[1] if at is not None else None


def pathways(s: Settings, plan: PathwayPlan, steering: SteeringPolicy, playlists: Mapping[str, VisiblePlaylists],
             held: Held | None, located: Located, counts: PathwayCounts,
             readers: Mapping[str, Reading] | None = None) -> Pathways:
    """`playlists`: each pathway's, by ID (the first bucket's included); `held`: what the VM serves from
    (None: no VM pathway); `located`: where the publisher lists each segment; `readers`: each other
    pathway's, whose versions are made only while read (publish/readers.py)."""
    prefix = s.r2_key_prefix
    first = playlists[hls.BUCKET_PATHWAY]

    def key_for(variant: int, name: str) -> str:
        return hls.object_key(prefix, variant, name)

    def bitrate() -> int | None:
        """The highest BANDWIDTH the multivariant playlist announces: one stream, at most."""
        return max((v.bandwidth for v in first.announced or ()), default=None)

    segments = None
    if held is not None and hls.VM_PATHWAY in s.pathways:
        rate = s.vm_segment_mbps * 125_000  # bytes a second
        there = InBucket(steering, located, first, key_for)
        # A client whose own page failed on the bucket gets bytes of its own, one stream's bitrate at most.
        own = OwnFailure(steering.bucket_serves, steering.client_failing, bitrate)
        segments = VmSegments(HeldSegments(held, located), key_for, ByteBudget(rate, rate * BURST_SECONDS),
                              on_sent=counts.sent, proxies=Proxies(s.forwarded_allow_ips, s.trust_cf_connecting_ip),
                              elsewhere=there.within, landed=there.now, own_failure=own)
    # The VM's pathway on a hostname of its own (VM_PATHWAY_URL, docs/steering.md#cloudflares-terms): its
    # variants named there, whichever folder the multivariant playlist was asked at.
    offered = [Offered(p.id, f"{s.vm_pathway_url}/live/{hls.VM_FOLDER}/", hls.MEDIA_PLAYLIST_NAME)
               if p.id == hls.VM_PATHWAY and s.vm_pathway_url else Offered(p.id, p.folder) for p in plan.pathways]
    others = tuple(ServedPathway(p.id, p.folder, playlists[p.id], _away(steering, p.id),
                                 (readers or {}).get(p.id)) for p in plan.pathways[1:])

    def newest(variant: int) -> int | None:
        numbers = [r.last_sequence for p in playlists.values() if (r := p.media_playlist(variant)) is not None]
        return max(numbers, default=None)

    return Pathways(masters=SteeredMasters(first, offered, lambda: steering.first, playlists),
                    steering=steering, newest=newest, others=others, segments=segments,
                    count_steering=counts.manifest, away=_away(steering, hls.BUCKET_PATHWAY))


def _away(steering: SteeringPolicy, pathway: str) -> Callable[[], bool]:
    return lambda: steering.first != pathway
