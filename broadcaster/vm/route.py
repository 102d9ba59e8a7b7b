"""The VM's segment route as the service wires it: what it serves from (held.py), where it sends a player
instead while the first bucket serves (bucket_copy.py), what it may send (budget.py: VM_SEGMENT_MBPS),
and who gets bytes on its own page's report (segments.OwnFailure)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from aiohttp import web

from ..playlist import hls
from ..settings import Settings
from ..steering.metrics import PathwayCounts
from ..steering.policy import SteeringPolicy
from .bucket_copy import HeldSegments, InBucket, Located, Waits
from .budget import BURST_SECONDS, ByteBudget, VmBytes
from .held import Held
from .segments import OwnFailure, VmSegments


class Announced(Protocol):
    @property
    def bandwidth(self) -> int: ...


class FirstPlaylists(Waits, Protocol):
    @property
    def announced(self) -> Sequence[Announced] | None: ...


def vm_route(s: Settings, steering: SteeringPolicy, first: FirstPlaylists, held: Held, located: Located,
             counts: PathwayCounts, client: Callable[[web.Request], str | None]) -> VmSegments:
    """`first`: the first bucket's playlists (what it lists, and the variants announced); `located`: where
    the publisher lists each segment; `client`: a request's client, as the viewer count keys it."""
    prefix = s.r2_key_prefix

    def key_for(variant: int, name: str) -> str:
        return hls.object_key(prefix, variant, name)

    def bitrate() -> int | None:
        """The highest BANDWIDTH the multivariant playlist announces: one stream, at most."""
        return max((v.bandwidth for v in first.announced or ()), default=None)

    rate = s.vm_segment_mbps * 125_000  # bytes a second
    # A client whose own page failed on the bucket gets bytes of its own, one stream's bitrate at most.
    own = OwnFailure(steering.bucket_serves, steering.client_failing, bitrate)
    return VmSegments(HeldSegments(held, located), key_for, VmBytes(ByteBudget(rate, rate * BURST_SECONDS)),
                      on_sent=counts.sent, client=client, bucket=InBucket(steering, located, first, key_for),
                      own_failure=own)
