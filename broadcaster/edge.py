"""What every answer the handlers send carries (CORS, the Server name), and the 503 of a busy route."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import hdrs, web

SERVER_NAME = "hls-broadcaster"  # aiohttp's default Server header names its and Python's versions
NO_STORE = "no-store"  # health and metrics are live readings; a cached one would lie

# CORS (the viewer or a player may be on another origin) and our Server name, on every response.
EDGE_HEADERS: Mapping[str, str] = {
    hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: "*",
    # Content-Type/-Length and Cache-Control are readable anyway; hls.js reads Age (CDN cache age).
    hdrs.ACCESS_CONTROL_EXPOSE_HEADERS: "Age, Date, ETag, Retry-After",
    hdrs.SERVER: SERVER_NAME,
}


def edge_headers(extra: Mapping[str, str]) -> dict[str, str]:
    return {**EDGE_HEADERS, **extra}


def unavailable(text: str, retry_after: str, cache_control: str = NO_STORE) -> web.Response:
    """503 with Retry-After: busy or not ready, try again shortly."""
    return web.Response(status=503, text=text,
                        headers=edge_headers({hdrs.RETRY_AFTER: retry_after, hdrs.CACHE_CONTROL: cache_control}))
