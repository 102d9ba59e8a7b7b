"""What the service's Prometheus registry exposes."""

from __future__ import annotations

from broadcaster.metrics import Metrics


def exported_series() -> set[str]:
    """Every series name the service's registry exposes, as Prometheus sees it."""
    suffixes = {
        "counter": ("_total", "_created"), "gauge": ("",), "info": ("_info",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
    }  # fmt: skip
    return {family.name + s for family in Metrics().registry.collect() for s in suffixes[family.type]}
