"""GET (and HEAD) /live/events: the event hub's (status/hub.py) streams as Server-Sent Events; this
handler only admits a stream (the caps, shutting down), reads where the client resumes from, and writes."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import hdrs, web

from ..edge import EDGE_HEADERS, unavailable
from ..numbers import whole_number
from ..status.hub import EventHub, StalledClient
from .clients import Proxies, client_address
from .common import guarded

log = logging.getLogger(__name__)

BUSY_RETRY_AFTER = "10"  # seconds, for the 503 beyond the hub's max_streams
# One client address may hold at most this share of the streams (at least 2), as of the held requests.
CLIENT_SHARE = 8

# An event stream is always UTF-8; X-Accel-Buffering: nginx and friends would otherwise hold frames back.
_STREAM_HEADERS = {**EDGE_HEADERS, hdrs.CONTENT_TYPE: "text/event-stream", hdrs.CACHE_CONTROL: "no-cache",
                   "X-Accel-Buffering": "no"}


def parse_last_event_id(value: str | None) -> int | None:
    """A Last-Event-ID that is not one of our ids (not a whole number) is ignored, never an error."""
    return None if value is None else whole_number(value.strip(" \t"))


class EventStreams:
    """The route, one client holding at most a CLIENT_SHARE of the hub's streams (a NAT still gets many)."""

    def __init__(self, hub: EventHub, proxies: Proxies, on_refused: Callable[[], None] | None = None) -> None:
        self._hub = hub
        self._proxies = proxies
        self._on_refused = on_refused  # a stream refused at the per-client cap (a metric)
        self._by: dict[str, int] = {}  # open streams per client
        self.handle = guarded(self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        hub = self._hub
        if hub.closed:
            return unavailable("shutting down\n", "1")
        if hub.streams >= hub.max_streams:
            log.debug("refused an event stream: %d open", hub.streams)
            if hub.on_refused is not None:
                hub.on_refused()
            return unavailable("too many event streams\n", BUSY_RETRY_AFTER)
        client = client_address(request, self._proxies)
        by = self._by
        if client is not None and by.get(client, 0) >= max(2, hub.max_streams // CLIENT_SHARE):
            log.debug("refused an event stream: %d open for %s", by[client], client)
            if self._on_refused is not None:
                self._on_refused()
            return unavailable("too many event streams from this address\n", BUSY_RETRY_AFTER)
        if request.method == hdrs.METH_HEAD:
            return web.Response(headers=_STREAM_HEADERS)
        # The header is what EventSource sends on a reconnect; polyfills cannot set it and use the query.
        raw = request.headers.get("Last-Event-ID")
        last_id = parse_last_event_id(raw if raw is not None else request.query.get("lastEventId"))
        response = web.StreamResponse(headers=_STREAM_HEADERS)
        if client is not None:  # counted before the first await, as the hub counts (counted_stream)
            by[client] = by.get(client, 0) + 1
        try:
            with hub.counted_stream():
                await response.prepare(request)
                await hub.stream(response.write, last_id)
        except ConnectionError as err:  # aiohttp's ClientConnectionResetError is one: the client left
            log.debug("event stream client went away: %r", err)
        except StalledClient:
            log.debug("event stream client stopped reading for %.0fs; dropped", hub.write_timeout)
            if request.transport is not None:
                request.transport.abort()  # or aiohttp's final write would wait on it too
        finally:
            if client is not None:
                by[client] -= 1
                if not by[client]:
                    del by[client]
        return response
