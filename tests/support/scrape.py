"""The service's /metrics as Prometheus reads it: every sample by name and labels, and the sums tests
judge (a counter over every label, or over the labels named)."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

# (sample name, its labels sorted) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parsed(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def scraped(http: aiohttp.ClientSession, url: str) -> Samples:
    """GET `url`/metrics (a 200) and parse it."""
    async with http.get(f"{url}/metrics") as r:
        assert r.status == 200, r.status
        return parsed(await r.text())


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0 without one)."""
    want = set(labels.items())
    return sum(value for (sample, have), value in samples.items() if sample == name and want <= set(have))


def by_label(samples: Samples, name: str, label: str, **labels: str) -> dict[str, float]:
    """The samples named `name` whose labels include `labels`, summed by the value of `label`."""
    out: dict[str, float] = {}
    want = set(labels.items())
    for (sample, have), value in samples.items():
        if sample == name and want <= set(have) and label in dict(have):
            out[dict(have)[label]] = out.get(dict(have)[label], 0.0) + value
    return out
