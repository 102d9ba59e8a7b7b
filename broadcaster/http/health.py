"""/health and /metrics: live readings, never cached."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..edge import EDGE_HEADERS, NO_STORE, edge_headers
from ..status.assessment import Assessment
from .common import guarded


class HealthSource(Protocol):
    def assess(self) -> Assessment:
        """How the stream is doing now: /health answers its body, 503 unless ok."""


def health(source: HealthSource) -> Handler:
    @guarded
    async def health(request: web.Request) -> web.Response:
        reading = source.assess()
        return web.json_response(reading.body, status=200 if reading.ok else 503,
                                 headers=edge_headers({hdrs.CACHE_CONTROL: NO_STORE}))

    return health


def metrics(registry: CollectorRegistry, headers: Mapping[str, str] = EDGE_HEADERS) -> Handler:
    @guarded
    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        # CONTENT_TYPE_LATEST carries a version and charset, so it goes in as a header, not content_type.
        return web.Response(body=body, headers={**headers, hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST,
                                                hdrs.CACHE_CONTROL: NO_STORE})

    return metrics
