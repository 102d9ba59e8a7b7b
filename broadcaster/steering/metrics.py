"""The steering metrics, read when scraped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..metrics import Scraped, labelled
from ..playlist import hls
from .policy import REASONS, SteeringPolicy
from .reports import PathwayReports

_NS = "hls_broadcaster"
STEERING_LABELS = ("none", "other")  # a manifest request's _HLS_pathway: a pathway offered, or one of these
# What the VM's pathway answered besides an HTTP status (vm/segments.py; the metric's help says each).
SHARE, REPORTED, LATE, RESET = "share", "reported", "late", "reset"


class PathwayCounts:
    """What the VM's pathway answered, and the steering manifest's requests by the pathway played."""

    def __init__(self, steered: Callable[[], bool], pathways: tuple[str, ...] = hls.PATHWAYS) -> None:
        self._steered = steered
        self._labels = frozenset((*pathways, *STEERING_LABELS))
        self.bytes = {True: 0, False: 0}
        self.requests: dict[int | str, int] = {}
        self.steering: dict[str, int] = {}
        self.manifests = 0  # every steering manifest request: players read the stream (probe.Watched)
        self.on_request: Callable[[], None] = lambda: None

    def sent(self, status: int | str, size: int) -> None:
        self.requests[status] = self.requests.get(status, 0) + 1
        if size:
            self.bytes[self._steered()] += size

    def manifest(self, pathway: str) -> None:
        label = pathway if pathway in self._labels else "other"
        self.steering[label] = self.steering.get(label, 0) + 1
        self.manifests += 1
        self.on_request()


class Copies(Protocol):
    """What the VM holds for its pathway, as these metrics read it (vm/held.py's Held)."""

    @property
    def total_bytes(self) -> int: ...

    @property
    def evicted(self) -> int: ...

    max_bytes: int
    kept: int
    failures: int


class SteeringMetrics(Scraped):
    def __init__(self, registry: CollectorRegistry, policy: SteeringPolicy, copies: Copies, counts: PathwayCounts,
                 cap_bytes_per_second: float, reports: PathwayReports) -> None:
        self._policy, self._copies, self._counts, self._cap = policy, copies, counts, cap_bytes_per_second
        self._reports = reports
        registry.register(self)

    def collect(self) -> list[Metric]:
        policy, copies, counts = self._policy, self._copies, self._counts
        first = GaugeMetricFamily(f"{_NS}_pathway", "1 for the pathway players are steered to and the reason it "
                                  "is first: normal (the bucket), or why the bucket is not (uploads, "
                                  "public_url, down); 0 for every other pair", labels=("pathway", "reason"))
        switches = CounterMetricFamily(f"{_NS}_pathway_switches", "Times players were steered to a pathway, by "
                                       "the reason", labels=("pathway", "reason"))
        for pair in ((pathway, reason) for pathway in policy.pathways for reason in REASONS):
            first.add_metric(pair, int(pair == (policy.first, policy.reason)))
            switches.add_metric(pair, policy.switches.get(pair, 0))
        rank = labelled(GaugeMetricFamily, f"{_NS}_pathway_priority", "Each pathway's place in the steering "
            "manifest's PATHWAY-PRIORITY (0: first)",
            "pathway", ((pathway, i) for i, pathway in enumerate(policy.priority)))
        sent = labelled(CounterMetricFamily, f"{_NS}_vm_segment_bytes", "Segment bytes the VM's pathway "
            "sent, by whether players were steered to it then (no: players that left the bucket on their "
            "own errors)", "steered", [("yes", counts.bytes[True]), ("no", counts.bytes[False])])
        requests = labelled(CounterMetricFamily, f"{_NS}_vm_segment_requests", "Segment requests the VM's "
            "pathway answered, by status (503: a bound for everyone reached; share: a client past its own "
            "share, answered 503; reported: clients served on their own page's report past their quarter "
            "of the bytes together, answered 503; late: a segment not in the bucket yet while it serves, "
            "answered 503; reset: the client reset the connection mid-answer)",
            "status", sorted((str(status), n) for status, n in counts.requests.items()))
        manifests = labelled(CounterMetricFamily, f"{_NS}_steering_requests", "Steering manifest requests, "
            "by the pathway the player said it plays (_HLS_pathway)",
            "pathway", sorted(counts.steering.items()))
        pages = labelled(GaugeMetricFamily, f"{_NS}_viewers_pathway", "Viewer pages by the pathway their "
            "last playback report says they play", "pathway", sorted(policy.pages().items()))
        reports = self._reports
        heard = labelled(CounterMetricFamily, f"{_NS}_pathway_reports", "Viewer pages' words on their "
            "pathway heard (Hb-Pathway, with a counted heartbeat), by whether they name failed fetches "
            "(claims: they move nobody)",
            "failures", [("some", reports.failing), ("none", reports.heard - reports.failing)])
        ignored = CounterMetricFamily(f"{_NS}_pathway_report_words_ignored", "Words of those not understood "
                                      "(an unknown pathway id, a count that is not a whole number, another "
                                      "form), ignored", value=reports.ignored)
        return [
            first, switches, rank, sent, requests, manifests, pages, heard, ignored,
            GaugeMetricFamily(f"{_NS}_vm_segment_cap_bytes_per_second", "The most segment bytes a second the "
                              "VM's pathway sends (VM_SEGMENT_MBPS)", value=self._cap),
            GaugeMetricFamily(f"{_NS}_vm_copies_bytes", "Bytes of the copies the VM keeps of segments some "
                              "bucket has not got yet (an upload failed), on disk", value=copies.total_bytes),
            GaugeMetricFamily(f"{_NS}_vm_copies_limit_bytes", "VM_COPIES_MB in bytes", value=copies.max_bytes),
            CounterMetricFamily(f"{_NS}_vm_copies", "Copies kept of segments an upload failed for (each "
                                "until every bucket has it)", value=copies.kept),
            CounterMetricFamily(f"{_NS}_vm_copies_failed", "Segments the VM could not keep a copy of (disk "
                                "full...): their uploads read Owncast's file while it is there",
                                value=copies.failures),
            CounterMetricFamily(f"{_NS}_vm_copies_evicted", "Copies dropped for VM_COPIES_MB before every bucket "
                                "had them", value=copies.evicted),
        ]
