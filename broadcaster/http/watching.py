"""POST /live/watching: the viewer page's heartbeat while it plays (the viewer count, issue 34).

`?id=<the page's random id>[&p2p=1]` counts the page for VIEWER_TIMEOUT more seconds; `&leave=1` takes
it out at once (the page sends that on pause and when it closes). A POST, so no cache on the way keeps
or answers it; no body is read. The answer is the count (`{"watching": N}`) when the page shows it,
else 204; 429 when this beat is not counted (status/audience.py says why and bounds it).

As cheap as a playlist request (bench/heartbeat.py): no middleware, nothing looked up in the app, the
client's address hashed once and never kept (status/audience.py).
"""

from __future__ import annotations

from aiohttp import hdrs, web

from ..status.audience import Audience
from .common import NO_STORE, edge_headers, internal_error
from .playlists import client_address

_HEADERS = edge_headers({hdrs.CACHE_CONTROL: NO_STORE})
_JSON_HEADERS = edge_headers({hdrs.CACHE_CONTROL: NO_STORE, hdrs.CONTENT_TYPE: "application/json"})


class WatchingRoute:
    def __init__(self, audience: Audience, *, show: bool, trust_cf_connecting_ip: bool) -> None:
        self._audience = audience
        self._show = show
        self._trust_cf = trust_cf_connecting_ip

    async def beat(self, request: web.Request) -> web.Response:
        try:
            query = request.query
            viewer_id = query.get("id", "")
            if "leave" in query:
                self._audience.leave(viewer_id)
                return web.Response(status=204, headers=_HEADERS)
            address = client_address(request, self._trust_cf)
            if not self._audience.beat(viewer_id, address, query.get("p2p") == "1"):
                return web.Response(status=429, text="not counted\n", headers=_HEADERS)
            if not self._show:
                return web.Response(status=204, headers=_HEADERS)
            return web.Response(body=b'{"watching":%d}' % self._audience.watching, headers=_JSON_HEADERS)
        except Exception as exc:  # noqa: BLE001 (logged by internal_error)
            return internal_error(request, exc)
