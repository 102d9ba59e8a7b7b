"""POST /live/watching: the viewer page's heartbeat (`Hb-Watching: <page id>[ p2p|leave]`) counts it for
VIEWER_TIMEOUT; answers `{"watching": N}` (204 when not shown, 429 when not counted), with a playback report
(`Hb-Report`) the service's clock, with P2P the pages that share. Only this site's pages count: the custom
header needs a CORS preflight, refused here, and another site's `Sec-Fetch-Site` is not counted."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy, istr

from ..edge import NO_STORE, SERVER_NAME
from ..status.audience import Audience
from ..status.playback import MALFORMED, Playback
from .common import internal_error
from .clients import Proxies

WATCHING_HEADER = istr("Hb-Watching")  # folded once, not at every lookup
REPORT_HEADER = istr("Hb-Report")
PATHWAY_HEADER = istr("Hb-Pathway")  # content steering: the pathway the page plays, its failed fetches
# Built once (aiohttp copies a CIMultiDict's folded keys as they are). No CORS: only this site's pages beat.
_HEADERS = CIMultiDictProxy(CIMultiDict({hdrs.CACHE_CONTROL: NO_STORE, hdrs.SERVER: SERVER_NAME}))
SEC_FETCH_SITE = istr("Sec-Fetch-Site")
_OWN_SITE = frozenset({"same-origin", "none"})  # "none": typed in the address bar, no page sent it
_MALFORMED = MALFORMED + "\n"
# An IPv6 client counts by its /48, as the tracker does (tracker/clients.mjs says why).
IPV6_PREFIX = 48
_JSON_HEADERS = CIMultiDictProxy(CIMultiDict({hdrs.CACHE_CONTROL: NO_STORE, hdrs.SERVER: SERVER_NAME,
                                              hdrs.CONTENT_TYPE: "application/json"}))


@dataclass(frozen=True)
class WatchingRoute:
    """`pathway(viewer id, its address as client_key gives it, Hb-Pathway)`: a counted page's word on the
    pathway it plays (steering/reports.py reads it). `sharing`: P2P is on."""

    audience: Audience
    show: bool
    proxies: Proxies
    playback: Playback | None = None
    pathway: Callable[[str, str | None, str], None] | None = None
    sharing: bool = False

    async def beat(self, request: web.Request) -> web.Response:
        try:
            headers = request.headers
            viewer_id, _, flag = headers.get(WATCHING_HEADER, "").partition(" ")
            sent_from = headers.get(SEC_FETCH_SITE)
            if sent_from is not None and sent_from not in _OWN_SITE:
                self.audience.refused["other_site"] += 1
                return web.Response(status=403, text="not counted: sent from another site\n",
                                    headers=_HEADERS)
            if flag == "leave":
                self.audience.leave(viewer_id)
                return web.Response(status=204, headers=_HEADERS)
            report = None
            playback = self.playback
            if playback is not None:
                text = headers.get(REPORT_HEADER)
                if text is not None:
                    report = playback.parse(text)
                    if report is None:
                        return web.Response(status=400, text=_MALFORMED, headers=_HEADERS)
            address = client_key(request, self.proxies)
            if not self.audience.beat(viewer_id, address, flag == "p2p"):
                return web.Response(status=429, text="not counted\n", headers=_HEADERS)
            if self.pathway is not None and (said := headers.get(PATHWAY_HEADER)) is not None:
                self.pathway(viewer_id, address, said)
            items = [b'"watching":%d' % len(self.audience)] if self.show else []
            if report is not None:
                items.append(b'"now":%d' % int(time.time() * 1000))
            if self.sharing:
                items.append(b'"sharing":%d' % self.audience.p2p)
            if report is not None and playback is not None and not playback.take(viewer_id, report):
                items.append(b'"taken":0')
            if not items:
                return web.Response(status=204, headers=_HEADERS)
            return web.Response(body=b"{%s}" % b",".join(items), headers=_JSON_HEADERS)
        except Exception as exc:  # noqa: BLE001 (logged by internal_error)
            return internal_error(request, exc)


async def preflight(request: web.Request) -> web.Response:
    """OPTIONS /live/watching: refused, with no CORS header, so no browser sends another site's beat."""
    return web.Response(status=403, text="heartbeats come from this site's own pages only\n",
                        headers=_HEADERS)


def client_key(request: web.Request, proxies: Proxies) -> str | None:
    """The address a page's beats count under, as clients.client_address finds it (IPv6: its /48)."""
    text = proxies.client(request)
    if not text:
        return None
    if ":" not in text:  # IPv4, the usual case: inline
        return text
    try:
        address = ipaddress.IPv6Address(text.strip())
    except ValueError:
        return None
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
