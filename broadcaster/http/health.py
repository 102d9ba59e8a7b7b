"""/health and /metrics: live readings, never cached."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..edge import EDGE_HEADERS, NO_STORE, SERVER_NAME, edge_headers
from .common import guarded
from .keys import HEALTH, METRICS


@guarded
async def health(request: web.Request) -> web.Response:
    reading = request.app[HEALTH].assess()
    return web.json_response(reading.body, status=200 if reading.ok else 503, headers=edge_headers({hdrs.CACHE_CONTROL: NO_STORE}))


def _metrics(headers: Mapping[str, str]) -> Handler:
    @guarded
    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(request.app[METRICS].registry)
        # CONTENT_TYPE_LATEST carries a version and charset, so it goes in as a header, not content_type.
        return web.Response(body=body, headers={**headers, hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST,
                                                hdrs.CACHE_CONTROL: NO_STORE})

    return metrics


metrics = _metrics(EDGE_HEADERS)
private_metrics = _metrics({hdrs.SERVER: SERVER_NAME})
