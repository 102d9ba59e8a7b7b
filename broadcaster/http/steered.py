"""What content steering hands the HTTP server (http.Pathways): the multivariant playlists that name
every pathway, the VM pathway's playlists and segments, and the steering manifest; wired from the
service's parts (the policy, the VM's copies, both pathways' playlists) and its settings."""

from __future__ import annotations

from ..playlist import hls
from ..playlist.master import Pathway
from ..publish.visible import VisiblePlaylists
from ..settings import Settings
from ..steering.backup import BackupPlaylists
from ..steering.bucket_pathway import BucketPathway, ListedAtVm
from ..steering.copies import Copies
from ..steering.masters import SteeredMasters
from ..steering.metrics import PathwayCounts
from ..steering.policy import MIN_UPLOAD_WAIT, SteeringPolicy
from ..steering.vm_playlists import VmPlaylists
from ..steering.vm_versions import VmVersions
from .app import Pathways
from .clients import Proxies
from .pathway import BURST_SECONDS, ByteBudget, OwnFailure, VmSegments


def pathways(s: Settings, steering: SteeringPolicy, copies: Copies, ahead: VisiblePlaylists, landed: VisiblePlaylists,
             counts: PathwayCounts, backup: BackupPlaylists | None = None,
             listed_at_vm: ListedAtVm | None = None) -> Pathways:
    """`ahead`: the playlists as the VM's pathway lists them (every segment the VM kept); `landed`: the
    bucket pathway's (only what is in the bucket); `counts`: what the VM's pathway answers; `backup`: a
    second bucket's pathway's playlists (only what landed there); `listed_at_vm`: what the bucket pathway
    listed at VM URIs (saved with the state)."""
    prefix = s.r2_key_prefix

    def key_for(variant: int, name: str) -> str:
        return hls.object_key(prefix, variant, name)

    rate = s.vm_segment_mbps * 125_000  # bytes a second
    # While the bucket serves, the VM's pathway lists what the bucket has (the VM redirects each there).
    vm = VmPlaylists(VmVersions(landed, ahead, steering.bucket_serves), copies, key_for, landed=landed)

    async def elsewhere(variant: int, name: str) -> str | None:
        """The bucket's copy while the bucket serves, once its upload landed (if within the wait that
        would steer players away: then the VM answers)."""
        if not steering.bucket_serves():
            return None
        wait = max(steering.target_duration() or 3, MIN_UPLOAD_WAIT)
        url = await vm.landed_url_within(variant, name, wait)
        return url if steering.bucket_serves() else None

    def landed_now(variant: int, name: str) -> str | None:
        """The bucket's copy of a segment the VM has none of (any more), while the bucket serves."""
        return vm.landed_url(variant, name) if steering.bucket_serves() else None

    def bitrate() -> int | None:
        """The highest BANDWIDTH the multivariant playlist announces: one stream, at most."""
        return max((v.bandwidth for v in ahead.announced or ()), default=None)

    # A client whose own page failed on the bucket gets bytes of its own, one stream's bitrate at most.
    own = OwnFailure(steering.bucket_serves, steering.client_failing, bitrate)
    segments = VmSegments(copies, key_for, ByteBudget(rate, rate * BURST_SECONDS), on_sent=counts.sent,
                          proxies=Proxies(s.forwarded_allow_ips, s.trust_cf_connecting_ip), elsewhere=elsewhere,
                          landed=landed_now, own_failure=own)
    folders = {hls.BUCKET_PATHWAY: "", hls.VM_PATHWAY: hls.VM_FOLDER, hls.BACKUP_PATHWAY: hls.BACKUP_FOLDER}
    offered = [Pathway(p, folders[p]) for p in s.pathways]

    def newest(variant: int) -> int | None:
        rendered = ahead.media_playlist(variant)
        return None if rendered is None else rendered.last_sequence

    others = {hls.BACKUP_PATHWAY: backup} if backup is not None else {}
    vm_offered = hls.VM_PATHWAY in s.pathways
    # Steered away from the bucket (to the VM, or to a second bucket), the bucket pathway lists what is not
    # in the bucket yet at its VM URI: a player that stays there (video.js, one without content steering)
    # plays on from the VM. Without the VM's pathway (PATHWAYS=bucket,backup) it cannot: docs/steering.md.
    bucket = (BucketPathway(landed, ahead, vm.uri, lambda: steering.first != hls.BUCKET_PATHWAY, listed_at_vm)
              if vm_offered else None)
    return Pathways(masters=SteeredMasters(ahead, offered, lambda: steering.first, landed, others), vm=vm,
                    newest=newest, steering=steering, segments=segments, count_steering=counts.manifest,
                    away=lambda: steering.first != hls.BUCKET_PATHWAY, backup=backup,
                    backup_away=lambda: steering.first != hls.BACKUP_PATHWAY,
                    vm_offered=vm_offered, bucket=bucket)
