"""What the service's Prometheus registry exposes."""

from __future__ import annotations

import tempfile
from pathlib import Path

from broadcaster.vm.held import Held
from broadcaster.metrics import AudienceMetrics, BucketMetrics, ConnectionMetrics, Metrics
from broadcaster.status.audience import Audience
from broadcaster.status.playback import Playback
from broadcaster.steering.metrics import PathwayCounts, SteeringMetrics
from broadcaster.steering.policy import BucketSignals, SteeringPolicy
from broadcaster.steering.reports import PathwayReports
from broadcaster.status.playback_metrics import PlaybackMetrics


def exported_series() -> set[str]:
    """Every series name the service's registry exposes, as Prometheus sees it."""
    suffixes = {
        "counter": ("_total", "_created"), "gauge": ("",), "info": ("_info",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
    }  # fmt: skip
    metrics = Metrics()
    registry = metrics.registry
    BucketMetrics(metrics, "bucket")  # each bucket's series, as its uploader and cleaner write them
    # As the service wires it: its routes count held requests, its hub event streams.
    connections = ConnectionMetrics(registry)
    connections.watch("held", lambda: 0, 1)
    connections.watch("events", lambda: 0, 1)
    AudienceMetrics(registry, lambda: 0, lambda: 0, dict)  # and the viewer count its audience
    PlaybackMetrics(registry, Playback(Audience(30), interval=10))  # and its pages' playback reports
    # and content steering (PATHWAYS=bucket,vm)
    policy = SteeringPolicy(("bucket", "vm"), {"bucket": BucketSignals(behind=lambda: 0.0)}, lambda: 3, interval=10)
    counts = PathwayCounts(lambda: False)
    counts.sent(200, 1)
    counts.manifest("bucket")
    with tempfile.TemporaryDirectory() as folder:
        SteeringMetrics(registry, policy, Held(Path(folder), Path(folder), max_bytes=1, keep_for=1), counts, 1.0,
                        PathwayReports(policy.report))
        return {family.name + s for family in registry.collect() for s in suffixes[family.type]}
