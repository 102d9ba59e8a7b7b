"""What viewers are given to fetch, wired: segment URLs, pathways, the public reads' watch, steering."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..bucket.bucket import Bucket
from ..bucket.public_check import listed_answers
from ..bucket.urls import segment_urls
from ..metrics import Metrics
from ..playlist import hls
from ..playlist.pathway import BUCKET, VM, BaseUris, Pathway, VmUris
from ..publish.pathways import FIRST, PathwayPlan
from ..publish.visible import VisiblePlaylists
from ..settings import Settings
from ..status.edge_guard import edge_guard
from ..status.public_reads import PublicReads
from ..steering.metrics import PathwayCounts
from ..steering.policy import BucketSignals, SteeringPolicy
from ..steering.probe import Newest, Probe, SteeringLoop, Watched
from ..steering.reports import PathwayReports


@dataclass(frozen=True)
class Steered:
    """Content steering's parts, made when PATHWAYS names more than one pathway."""

    policy: SteeringPolicy
    loop: SteeringLoop
    reports: PathwayReports
    counts: PathwayCounts


class Delivery:
    """`playlists`: the first bucket's; `on_change(priority)`: told each new priority steering chooses."""

    def __init__(self, s: Settings, metrics: Metrics, buckets: Mapping[str, Bucket], playlists: VisiblePlaylists,
                 on_change: Callable[[tuple[str, ...]], None]) -> None:
        first = buckets[hls.BUCKET_PATHWAY]
        self.newest = Newest()  # the first bucket's newest listing: what its probe fetches
        self.urls = segment_urls(s)  # what a playlist lists each key at (its start checks one: public_reads)
        target = lambda: playlists.target_duration  # noqa: E731
        self.public_reads = PublicReads(
            presigned=s.segment_urls == "presigned", newest=self.newest, target_duration=target,
            up=metrics.public_reads_up.set, watched=Watched(lambda: metrics.playlist_requests.total, target),
            start_check=lambda: listed_answers(first.store, self.urls.segment, s.r2_key_prefix, s.upload_timeout,
                                               first.left_behind))
        self.newest.woken = metrics.playlist_requests.on_request = self.public_reads.wake
        self.public_reads.in_outage = lambda: first.uploader.storage_ok is False  # a probe failing may be it
        self.public_reads.guard = edge_guard(s, self.newest, target)  # a private stream's edge refuses strangers
        records = pathway_records(s)
        self.steered: Steered | None = None
        self.plan = PathwayPlan(records)
        if s.steering:
            self.steered = steered(s, metrics, buckets, playlists, self.newest, self.public_reads, on_change)
            self.plan = self.steered.policy.plan(records)

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        await self.public_reads.start(probe=self.steered is None)  # steering's loop probes for it
        stack.push_async_callback(self.public_reads.stop)
        if self.steered is not None:
            await self.steered.loop.start()
            stack.push_async_callback(self.steered.loop.stop)


def pathway_records(s: Settings) -> tuple[Pathway, ...]:
    """One record per pathway PATHWAYS names, in its order."""
    extra = {b.pathway: b for b in s.extra_buckets}
    records = [FIRST]
    for pid in s.pathways[1:]:
        if pid == hls.VM_PATHWAY:
            records.append(Pathway(pid, VM, hls.VM_FOLDER, VmUris(s.vm_pathway_url)))
        else:
            records.append(Pathway(pid, BUCKET, pid, BaseUris(extra[pid].public_url)))
    return tuple(records)


def steered(s: Settings, metrics: Metrics, buckets: Mapping[str, Bucket], playlists: VisiblePlaylists,
            newest: Newest, public_reads: PublicReads,
            on_change: Callable[[tuple[str, ...]], None]) -> Steered:
    """The policy over every bucket's uploads, and the loop that runs and probes it."""
    signals = {pid: BucketSignals.of_uploads(b.behind, b.outcome) for pid, b in buckets.items()}
    policy = SteeringPolicy(s.pathways, signals, lambda: playlists.target_duration, interval=s.viewer_timeout / 3)
    probes = {pid: Probe(newest if pid == hls.BUCKET_PATHWAY else _newest_landed(b), b.check_writes)
              for pid, b in buckets.items()}
    counts = PathwayCounts(lambda: policy.first != hls.BUCKET_PATHWAY, s.pathways)
    # Players read the stream lately: the probes' GETs go only then (nobody to steer otherwise).
    watched = Watched(lambda: metrics.playlist_requests.total + counts.manifests, lambda: playlists.target_duration)
    # Each bucket's uploads tell the loop when one is late (on_late): no timer while nothing is amiss.
    loop = SteeringLoop(policy, probes, on_change=on_change, watched=watched, told_late=True,
                        heard=public_reads.pathway_heard)
    # A player's request wakes probes asleep; a listing wakes the loops that went quiet.
    metrics.playlist_requests.on_request = counts.on_request = loop.seen
    newest.woken = loop.wake
    for b in buckets.values():
        b.uploader.on_failure = loop.look  # a failed upload is evaluated at once
        b.uploader.waits.on_late, b.uploader.waits.late_after = loop.look, policy.late_after
    return Steered(policy, loop, PathwayReports(loop.report, s.pathways), counts)


def _newest_landed(bucket: Bucket) -> Callable[[], tuple[str, float] | None]:
    """The newest segment a bucket other than the first stored, at its public URL."""
    base = bucket.settings.public_url.rstrip("/")

    def newest() -> tuple[str, float] | None:
        landed = bucket.uploader.last_landed
        return None if landed is None else (f"{base}/{landed[0]}", landed[1])

    return newest
