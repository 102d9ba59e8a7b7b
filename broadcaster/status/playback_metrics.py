"""hls_broadcaster_playback_*: the playback reports' aggregates for /metrics, beside the layout they read."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ..metrics import Scraped, labelled
from . import playback as p
from .playback import Buckets, Playback

NAME = "hls_broadcaster_playback"


class PlaybackMetrics(Scraped):
    """The reports' aggregates, read when scraped; labels from fixed lists only."""

    def __init__(self, registry: CollectorRegistry, playback: Playback) -> None:
        self._playback = playback
        registry.register(self)

    def collect(self) -> list[Metric]:
        pb = self._playback

        def counter(suffix: str, documentation: str, value: float | None = None,
                    labels: tuple[str, ...] | None = None) -> CounterMetricFamily:
            return CounterMetricFamily(f"{NAME}_{suffix}", documentation, value=value, labels=labels)

        out: list[Metric] = [
            counter("reports", "Playback reports taken (at most one per page per beat interval)", pb.reports)]
        out.append(labelled(CounterMetricFamily, f"{NAME}_reports_refused", "Playback reports not taken: "
            "malformed (answered 400), too soon after the page's last, or out of bounds (more than the "
            "page could have had in the time since)", "reason", sorted(pb.refused.items())))
        out.append(labelled(GaugeMetricFamily, f"{NAME}_problem_addresses", "Client addresses (an IPv6 "
            "client: its /48) from which a page reported stalls, rejected peer segments or slow downloads "
            "from the bucket (its mean above the target duration) within the alert's window (5 min, "
            "rejections 10 min), each once however many pages it has; the alerts need two",
            "problem", pb.problem_addresses().items()))
        watched = counter("watched_seconds", "Seconds viewers' pages played, by variant (the number in its "
                          "playlist's path)", labels=("variant",))
        stalled = counter("stalled_seconds", "Seconds viewers' pages stalled (after the first frame, seeks "
                          "aside), by variant", labels=("variant",))
        stalls = counter("stalls", "Stalls viewers' pages saw, by variant", labels=("variant",))
        for label, figures in sorted(pb.variants.items()):
            watched.add_metric((label,), figures.watched_ms / 1000)
            stalled.add_metric((label,), figures.stalled_ms / 1000)
            stalls.add_metric((label,), figures.stalls)
        out += [watched, stalled, stalls]
        out.append(_histogram(f"{NAME}_startup_seconds", "From a page's navigation to its first frame, once "
                              "per page", pb.startup))
        out.append(_histogram(f"{NAME}_latency_seconds", "How far behind live viewers watch: the service's "
                              "clock minus the shown frame's PROGRAM-DATE-TIME, one per page per report",
                              pb.latency))
        out.append(counter("variant_switches", "Variant switches in viewers' players", pb.count(p.SWITCHES)))
        out.append(counter("frames", "Video frames viewers' pages decoded", pb.count(p.FRAMES)))
        out.append(counter("dropped_frames", "Of those, frames dropped", pb.count(p.DROPPED)))
        errors = counter("errors", "Player errors by kind (network, media, other) and outcome (recovered in "
                         "place, or fatal: a new player)", labels=("kind", "outcome"))
        for i, kind in enumerate(p.ERROR_KINDS):
            for j, outcome in enumerate(p.OUTCOMES):
                errors.add_metric((kind, outcome), pb.count(p.NET_OK + 2 * i + j))
        out.append(errors)
        segments = counter("segments", "Segments viewers loaded, by source (bucket: over HTTP, peer: P2P)",
                           labels=("source",))
        size = counter("segment_bytes", "Segment bytes viewers loaded, by source", labels=("source",))
        took = counter("segment_download_time_seconds", "Time viewers' segment downloads took, by source "
                       "(over the bytes: the throughput)", labels=("source",))
        download = HistogramMetricFamily(f"{NAME}_segment_download_seconds", "A page's mean segment download "
                                         "time over a report's interval, by source", labels=("source",))
        for i, source in enumerate(p.SOURCES):
            segments.add_metric((source,), pb.count((p.BUCKET_SEGMENTS, p.PEER_SEGMENTS)[i]))
            size.add_metric((source,), pb.count((p.BUCKET_BYTES, p.PEER_BYTES)[i]))
            took.add_metric((source,), pb.count((p.BUCKET_MS, p.PEER_MS)[i]) / 1000)
            download.add_metric((source,), pb.download[i].cumulative(), pb.download[i].sum)
        out += [segments, size, took, download]
        out.append(_histogram(f"{NAME}_peer_share_ratio", "Of the segment bytes a page loaded in a report's "
                              "interval, the part from peers (0 without P2P)", pb.share))
        out.append(counter("p2p_uploaded_bytes", "Segment bytes viewers sent to peers", pb.count(p.UPLOADED)))
        out.append(labelled(CounterMetricFamily, f"{NAME}_p2p_segments", "Segments from peers, by result of "
            "the SHA-256 check (verified, or rejected: altered bytes, dropped)",
            "result", [("verified", pb.count(p.VERIFIED)), ("rejected", pb.count(p.REJECTED))]))
        out.append(counter("p2p_peers_banned", "Peers viewers' pages banned for altered bytes",
                           pb.count(p.BANNED)))
        return out


def _histogram(name: str, documentation: str, buckets: Buckets) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation)
    family.add_metric((), buckets.cumulative(), buckets.sum)
    return family
