"""What content steering hands the HTTP server (http.Pathways), wired from the service's parts."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

from ..playlist import hls
from ..playlist.master import Pathway as Offered
from ..publish.pathways import PathwayPlan
from ..publish.visible import VisiblePlaylists
from ..settings import Settings
from ..steering.masters import SteeredMasters
from ..steering.metrics import PathwayCounts
from ..steering.policy import SteeringPolicy
from ..vm.bucket_copy import Doubt, HeldSegments, InBucket, Located
from ..vm.budget import BURST_SECONDS, ByteBudget, VmBytes
from ..vm.held import Held
from ..vm.segments import OwnFailure, VmSegments
from .app import Pathways, ServedPathway
from .clients import Proxies
from .watching import client_key


def vm_segments(s: Settings, steering: SteeringPolicy, first: VisiblePlaylists, held: Held, located: Located,
                counts: PathwayCounts, doubt: Doubt) -> VmSegments:
    """The VM's segment route (vm/segments.py); `doubt`: the first bucket's failed probe, whose next answer
    a redirect there awaits."""
    proxies = Proxies(s.forwarded_allow_ips, s.trust_cf_connecting_ip)  # who may name the client
    key_for = functools.partial(hls.object_key, s.r2_key_prefix)
    rate = s.vm_segment_mbps * 125_000  # bytes a second
    # A client whose own page failed on the bucket gets bytes of its own, at most the highest BANDWIDTH.
    own = OwnFailure(steering.bucket_serves, steering.client_failing,
                     lambda: max((v.bandwidth for v in first.announced or ()), default=None))
    return VmSegments(HeldSegments(held, located), key_for, VmBytes(ByteBudget(rate, rate * BURST_SECONDS)),
                      on_sent=counts.sent, client=lambda request: client_key(request, proxies),
                      bucket=InBucket(steering, located, first, key_for, doubt), own_failure=own)


def pathways(s: Settings, plan: PathwayPlan, steering: SteeringPolicy, playlists: Mapping[str, VisiblePlaylists],
             segments: VmSegments | None, counts: PathwayCounts) -> Pathways:
    """`playlists`: each pathway's, by ID; `segments`: the VM's segment route (None: no VM pathway)."""
    first = playlists[hls.BUCKET_PATHWAY]

    # The VM's pathway on a hostname of its own (VM_PATHWAY_URL): its variants named there.
    offered = [Offered(p.id, f"{s.vm_pathway_url}/live/{hls.VM_FOLDER}/", hls.MEDIA_PLAYLIST_NAME)
               if p.id == hls.VM_PATHWAY and s.vm_pathway_url else Offered(p.id, p.folder) for p in plan.pathways]
    others = tuple(ServedPathway(p.id, p.folder, playlists[p.id], _away(steering, p.id)) for p in plan.pathways[1:])

    def newest(variant: int) -> int | None:
        numbers = [n for p in playlists.values() if (n := p.last_sequence(variant)) is not None]
        return max(numbers, default=None)

    return Pathways(masters=SteeredMasters(offered, lambda: steering.first, playlists),
                    steering=steering, newest=newest, others=others, segments=segments,
                    count_steering=counts.manifest, away=_away(steering, hls.BUCKET_PATHWAY))


def _away(steering: SteeringPolicy, pathway: str) -> Callable[[], bool]:
    return lambda: steering.first != pathway
