"""POST /live/watching: the viewer page's heartbeat while it plays (the viewer count, issue 34).

`?id=<the page's random id>[&p2p=1]` counts the page for VIEWER_TIMEOUT more seconds; `&leave=1` takes
it out at once (the page sends that on pause and when it closes). A POST, so no cache on the way keeps
or answers it; no body is read. The answer is the count (`{"watching": N}`) when the page shows it,
else 204; 429 when this beat is not counted (status/audience.py says why and bounds it).

As cheap as a playlist request (bench/heartbeat.py): no middleware, nothing looked up in the app, the
client's address hashed once and never kept (status/audience.py).
"""

from __future__ import annotations

import ipaddress

from aiohttp import hdrs, web

from ..status.audience import Audience
from .common import NO_STORE, edge_headers, internal_error
from .playlists import CF_CONNECTING_IP

_HEADERS = edge_headers({hdrs.CACHE_CONTROL: NO_STORE})
_JSON_HEADERS = edge_headers({hdrs.CACHE_CONTROL: NO_STORE, hdrs.CONTENT_TYPE: "application/json"})


class WatchingRoute:
    def __init__(self, audience: Audience, *, show: bool, trust_cf_connecting_ip: bool) -> None:
        self._audience = audience
        self._show = show
        self._trust_cf = trust_cf_connecting_ip

    async def beat(self, request: web.Request) -> web.Response:
        try:
            # The page sends id=...[&p2p=1|&leave=1]: split by hand, not a MultiDict per beat.
            viewer_id, p2p, leave = "", False, False
            for pair in request.query_string.split("&"):
                name, _, value = pair.partition("=")
                if name == "id":
                    viewer_id = value
                elif name == "p2p":
                    p2p = value == "1"
                elif name == "leave":
                    leave = True
            if leave:
                self._audience.leave(viewer_id)
                return web.Response(status=204, headers=_HEADERS)
            address = client_key(request, self._trust_cf)
            if not self._audience.beat(viewer_id, address, p2p):
                return web.Response(status=429, text="not counted\n", headers=_HEADERS)
            if not self._show:
                return web.Response(status=204, headers=_HEADERS)
            return web.Response(body=b'{"watching":%d}' % len(self._audience), headers=_JSON_HEADERS)
        except Exception as exc:  # noqa: BLE001 (logged by internal_error)
            return internal_error(request, exc)


def client_key(request: web.Request, trust_cf: bool) -> str | None:
    """The address a page's beats count under, as playlists.client_address finds it (CF-Connecting-IP
    only when trusted; a loopback peer speaks for everyone: None; an IPv6 client is its /64), without
    parsing the usual IPv4 address: it comes from the socket, or from Cloudflare's edge, and is only hashed."""
    text = request.headers.get(CF_CONNECTING_IP) if trust_cf else None
    if text is None:
        text = request.remote
    if not text:
        return None
    if ":" not in text:
        return _ipv4_key(text, trust_cf)
    try:
        address = ipaddress.IPv6Address(text.strip())
    except ValueError:
        return None
    if address.ipv4_mapped is not None:
        return _ipv4_key(str(address.ipv4_mapped), trust_cf)
    if address.is_loopback and not trust_cf:
        return None
    return str(ipaddress.IPv6Network((address, 64), strict=False))


def _ipv4_key(text: str, trust_cf: bool) -> str | None:
    return None if text.startswith("127.") and not trust_cf else text
