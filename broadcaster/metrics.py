"""Prometheus metrics, one registry per service instance (so tests can run many side by side)."""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable, Iterable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import __version__

_NS = "hls_broadcaster"

# Upload and listing delays: tens of ms on a good day, seconds when R2 struggles.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# upload_failures_total{reason}: a misbehaving endpoint can invent any number of reasons, and each label
# value is a time series for ever, so only these are kept as they are.
UPLOAD_FAILURE_REASONS = frozenset({
    # S3/R2 error codes
    "AccessDenied", "AuthorizationHeaderMalformed", "BadDigest", "EntityTooLarge", "InternalError",
    "InvalidAccessKeyId", "InvalidArgument", "InvalidBucketName", "InvalidRequest", "MissingContentMD5",
    "NoSuchBucket", "NoSuchKey", "NotImplemented", "RequestTimeout", "RequestTimeTooSkewed",
    "ServiceUnavailable", "SignatureDoesNotMatch", "SlowDown", "TooManyRequests",
    # bare HTTP statuses (a body botocore could not parse)
    "400", "401", "403", "404", "408", "429", "500", "502", "503", "504",
    # ours and the HTTP client's
    "Timeout", "ResponseTooLarge", "ConnectTimeoutError", "ReadTimeoutError", "EndpointConnectionError",
    "ConnectionClosedError", "HTTPClientError", "ProxyConnectionError", "SSLError",
    "ResponseStreamingError", "ClientConnectorError", "ServerDisconnectedError", "ClientPayloadError",
    "ClientOSError", "ConnectionResetError", "ConnectionRefusedError", "OSError",
})  # fmt: skip
OTHER = "other"


def bounded(value: str, known: frozenset[str]) -> str:
    """`value` when it is one of `known`, else "other": label values from a fixed set."""
    return value if value in known else OTHER


F = TypeVar("F", CounterMetricFamily, GaugeMetricFamily)


def labelled(kind: type[F], name: str, documentation: str, label: str,
             values: Iterable[tuple[str, float]]) -> F:
    """A family of one label, a sample for each (label value, value)."""
    family = kind(name, documentation, labels=(label,))
    for key, value in values:
        family.add_metric((key,), value)
    return family


class Scraped(Collector):
    """A collector whose families are made when scraped: described by them too."""

    def describe(self) -> Iterable[Metric]:
        return self.collect()


class Metrics:
    """Every metric the service exports. Labels are bounded: variant index, reason, playlist."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry

        def counter(name: str, documentation: str, *labels: str) -> Counter:
            return Counter(f"{_NS}_{name}", documentation, labels, registry=r)

        def gauge(name: str, documentation: str, *labels: str) -> Gauge:
            return Gauge(f"{_NS}_{name}", documentation, labels, registry=r)

        self.segments_seen = counter("segments_seen", "Segments Owncast listed that we have not seen before",
                                     "variant")
        # The buckets' families: one series per bucket pathway, written through a BucketMetrics.
        self.segments_uploaded = counter("segments_uploaded", "Segments (and init sections) stored in the "
                                         "bucket", "pathway", "variant")
        self.segments_listed = counter("segments_listed", "Segments added to our playlists", "variant")
        self.segments_lost = counter("segments_lost", "Segments Owncast listed that will never be listed by "
                                     "us (one given up as a gap in its variant, then uploaded once Owncast "
                                     "finished it, counts as late instead)", "variant", "reason")
        self.segments_unfinished = counter("segments_unfinished", "Segments Owncast listed while it was "
                                           "still writing them (or before it made the file): each upload "
                                           "waited until Owncast had finished the file", "variant")
        self.segment_reuploads = counter("segment_reuploads", "Segments uploaded again because Owncast "
            "changed the file during the upload (only the last upload is listed)", "variant")
        self.segment_rewrites = counter("segment_rewrites", "Segment files written again after their upload "
                                        "(their writer opened them again after closing them): uploaded "
                                        "again, so the bucket holds each file's final bytes", "variant")
        self.segments_late = counter("segments_late", "Segments a variant's live playlist gave up as a gap "
                                     "(EXT-X-GAP) while Owncast was still writing them, uploaded once "
                                     "Owncast finished them: in the bucket, recordings and clips", "variant")
        self.inotify_overflows = counter("inotify_overflows", "Times the kernel's inotify queue overflowed "
            "and events were lost (every playlist is read again; a file written meanwhile is judged without "
            "its events, never taken for finished on them)")
        self.upload_failures = counter("upload_failures", "Failed upload attempts (each is retried)",
                                       "pathway", "reason")
        self.bytes_uploaded = counter("uploaded_bytes", "Bytes stored in the bucket", "pathway", "variant")
        self.target_duration = gauge("target_duration_seconds", "EXT-X-TARGETDURATION of the playlists "
                                     "served now")
        self.target_changes = counter("target_duration_changes", "New playlists started for another target "
                                      "duration (reason: new_stream, longer_segment)", "reason")
        self.target_kept = counter("target_duration_kept", "New streams with shorter segments that kept the "
                                   "longer target duration, as the stream before them had not ended (no "
                                   "EXT-X-ENDLIST): a plain discontinuity instead of a new playlist")
        self.variants_cut_apart = counter("variants_cut_apart", "Owncast runs whose variants are cut at "
                                          "different instants (passthrough), listed variant by variant")
        self.input_rejected = counter("input_rejected", "Files or playlist entries in HLS_DIR skipped as "
                                      "unsafe or invalid", "reason")
        self.upload_duration = Histogram(
            f"{_NS}_upload_duration_seconds", "Time of one successful PutObject, retries excluded", ["pathway"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.listing_delay = Histogram(
            f"{_NS}_listing_delay_seconds",
            "From reading Owncast's playlist that lists a segment to our playlist listing it",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.playlist_requests = PlaylistRequests(r)
        self.window_segments = gauge("window_segments", "Segments in the live window", "variant")
        self.upload_queue = gauge("upload_queue_depth", "Segments waiting to be uploaded or listed")
        self.last_segment = gauge("last_segment_timestamp_seconds", "Unix time the last segment was listed",
                                  "variant")
        self.upload_realtime_ratio = gauge("upload_realtime_ratio", "Moving average of (successful PutObject "
            "time / segment duration); above 1 the bucket is slower than real time")
        self.cleanup_deleted = counter("cleanup_deleted", "Old segments deleted from the bucket", "pathway")
        self.cleanup_pending = gauge("cleanup_pending", "Old segments waiting until they may be deleted",
                                     "pathway")
        self.storage_up = gauge("storage_up", "1 if the last storage operation succeeded", "pathway")
        self.upload_wait = gauge("upload_wait_seconds", "How long the oldest upload to the bucket not landed "
                                 "yet has waited (0: none waits)", "pathway")
        self.playlist_uploads = counter("playlist_uploads", "Playlist versions written to the bucket "
                                        "(PUBLISH_PLAYLISTS)", "result")
        self.playlist_upload_lag = gauge("playlist_upload_lag_seconds", "Age of the newest playlist version "
                                         "not yet in the bucket (0 when the bucket is current)")
        self.state_save_failures = counter("state_save_failures", "Writes of STATE_DIR/state.json that "
                                           "failed (full or read-only disk)")
        self.state_save_failing = gauge("state_save_failing", "1 while the last save failed, or state.json "
            "cannot be rewritten though journal lines work: a restart now continues above the numbers shown")
        self.listing_held = gauge("listing_held", "1 while new playlist versions are held back: state cannot "
            "be saved and the media sequence numbers the last saved state reserved are used up")
        self.master_missing = gauge("master_playlist_missing", "1 while Owncast writes variant playlists but "
            "its multivariant playlist cannot be read: nothing of the stream is served")
        self.p2p_tracker_up = gauge("p2p_tracker_up", "1 while the P2P tracker (P2P_TRACKERS) answers and "
                                    "serves this stream's swarm; 0 while viewers cannot meet through it "
                                    "(they play from the bucket alone)", "tracker")
        self.public_reads_up = gauge("public_reads_up", "1 while the segments listed answer at the URLs they "
            "are listed with (R2_PUBLIC_URL, or presigned); 0 while the newest fails twice in a row, or the "
            "object stored at start did not answer: viewers get errors (/health names the setting)")
        self.build = Info(f"{_NS}_build", "Version of the service", registry=r)
        self.build.info({"version": __version__, "python": platform.python_version()})


class BucketMetrics:
    """One bucket's series of the buckets' families (Metrics), labelled with its pathway."""

    def __init__(self, metrics: Metrics, pathway: str) -> None:
        self.pathway = pathway
        self.storage_up = metrics.storage_up.labels(pathway=pathway)
        self.upload_wait = metrics.upload_wait.labels(pathway=pathway)
        self.upload_duration = metrics.upload_duration.labels(pathway=pathway)
        self.cleanup_deleted = metrics.cleanup_deleted.labels(pathway=pathway)
        self.cleanup_pending = metrics.cleanup_pending.labels(pathway=pathway)
        self.upload_failures = functools.partial(metrics.upload_failures.labels, pathway=pathway)
        self.segments_uploaded = functools.partial(metrics.segments_uploaded.labels, pathway=pathway)
        self.bytes_uploaded = functools.partial(metrics.bytes_uploaded.labels, pathway=pathway)

    @classmethod
    def of(cls, metrics: Metrics | BucketMetrics, pathway: str = "bucket") -> BucketMetrics:
        return metrics if isinstance(metrics, BucketMetrics) else cls(metrics, pathway)


class PlaylistRequests(Scraped):
    """hls_broadcaster_playlist_requests_total in a plain dict, cheaper than a Counter (bench/serve.py)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self.total = 0  # every playlist request: whether players read the stream (steering's probe.Watched)
        self.on_request: Callable[[], None] = lambda: None
        registry.register(self)

    def inc(self, playlist: str, status: int) -> None:
        key = (playlist, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        self.total += 1
        self.on_request()

    def collect(self) -> list[Metric]:
        family = CounterMetricFamily(f"{_NS}_playlist_requests", "Playlist requests served",
                                     labels=("playlist", "status"))
        for (playlist, status), count in sorted(self._counts.items()):
            family.add_metric((playlist, str(status)), count)
        return [family]


REJECT_REASONS = ("connections", "events", "events_per_client", "held", "held_per_client", "header_timeout",
                  "idle_evicted", "write_timeout")


# Kinds also exported under a name of their own (the dashboard and alerts use it).
_OWN_NAMES = {
    "held": (f"{_NS}_held_requests", "Playlist requests held until their segment is listed (blocking reload)"),
    "events": (f"{_NS}_event_streams", "Open /live/events streams"),
}


class ConnectionMetrics(Scraped):
    """Connections rejected, open and capped per kind; open counts are read from their owners when scraped."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._rejected = dict.fromkeys(REJECT_REASONS, 0)
        self._kinds: dict[str, tuple[Callable[[], int], int]] = {}
        registry.register(self)

    def rejected(self, reason: str) -> None:
        self._rejected[reason if reason in self._rejected else "connections"] += 1

    def watch(self, kind: str, current: Callable[[], int], limit: int) -> None:
        self._kinds[kind] = (current, limit)

    def collect(self) -> list[Metric]:
        rejected = labelled(CounterMetricFamily, f"{_NS}_connections_rejected", "Connections or requests "
            "refused or closed to keep within the file-handle budget", "reason", self._rejected.items())
        open_ = GaugeMetricFamily(f"{_NS}_connections_open", "Open client connections, event streams and held "
                                  "blocking requests", labels=("kind",))
        limit = GaugeMetricFamily(f"{_NS}_connections_limit", "Caps derived from the file-handle budget",
                                  labels=("kind",))
        own: list[Metric] = []
        for kind, (current, cap) in self._kinds.items():
            now = current()
            open_.add_metric((kind,), now)
            limit.add_metric((kind,), cap)
            if kind in _OWN_NAMES:
                name, help_text = _OWN_NAMES[kind]
                own.append(GaugeMetricFamily(name, help_text, value=now))
        return [rejected, open_, limit, *own]


class AudienceMetrics(Scraped):
    """The viewer count's figures, read from the count when scraped (nothing on the beat's path)."""

    def __init__(self, registry: CollectorRegistry, watching: Callable[[], int], p2p: Callable[[], int],
                 refused: Callable[[], dict[str, int]], stalled: Callable[[], int] = lambda: 0) -> None:
        self._watching, self._p2p, self._refused, self._stalled = watching, p2p, refused, stalled
        registry.register(self)

    def collect(self) -> list[Metric]:
        refused = labelled(CounterMetricFamily, f"{_NS}_viewer_heartbeats_refused", "Viewer page heartbeats "
            "not counted: past the per-address or total cap, or a malformed id",
            "reason", sorted(self._refused().items()))
        return [
            GaugeMetricFamily(f"{_NS}_viewers", "Viewer pages playing now (a heartbeat within VIEWER_TIMEOUT)",
                              value=self._watching()),
            GaugeMetricFamily(f"{_NS}_viewers_p2p", "Of the viewer pages playing now, those with P2P on",
                              value=self._p2p()),
            GaugeMetricFamily(f"{_NS}_viewers_stalled", "Of the viewer pages playing now, those that "
                              "reported a stall in the last 5 minutes", value=self._stalled()),
            refused,
        ]
