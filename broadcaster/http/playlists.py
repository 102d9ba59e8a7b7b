"""The playlist routes: the hot path. Playlists are rendered (and gzipped) once per change by their
source, so a crowd of viewers costs no rendering; the handlers look nothing up in the app per request.
One URL per answer (docs/hls-rules.md): any other spelling is redirected to it, so a cache keys it once."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import hdrs, web
from multidict import MultiMapping

from ..edge import EDGE_HEADERS, edge_headers, unavailable
from ..metrics import ConnectionMetrics, Metrics
from ..numbers import whole_number
from ..playlist import hls
from ..playlist.rendered import Rendered
from .answers import accepts_gzip, quick_answer, rendered_response
from .clients import Clients, client_address, request_here
from .common import internal_error, text_answer

# Blocking requests held at once when no cap is given (the service's comes from limits.py); past it, 503.
MAX_HELD = 10_000
HELD_RETRY_AFTER = "1"  # seconds: held requests are answered within a target duration or so
# One client address may hold at most this share of the held cap (a crowd behind one NAT still gets many).
HELD_CLIENT_SHARE = 8

BLOCKING_PARAMS = frozenset({"_HLS_msn", "_HLS_part", "_HLS_skip"})
# A redirect to the canonical URL is a pure function of the URL asked: cacheable (a CDN may keep it).
CANONICAL_CACHE_CONTROL = "public, max-age=60"
# A redirect from a number listed long before to the newest version depends on when it is asked: not
# kept. Sent only to a client past its budget of late answers (late.py).
LISTED_CACHE_CONTROL = hls.UNREADY_CACHE_CONTROL
SKIP = "YES"  # the one spelling of _HLS_skip: "v2" (skip date ranges too) gets the same answer here
# A variant number longer than this cannot be one of ours; int() of a huge one is costly (and limited).
_MAX_VARIANT_DIGITS = 4


def blocking_param(value: str | None) -> str | None:
    """A blocking-reload parameter up to a stray `?` (old Owncast pages send `_HLS_msn=12?cachebust=3`)."""
    return value.partition("?")[0] if value is not None else None


def request_target(request: web.Request) -> str:
    """The request's path and query exactly as sent: what a cache in front keys the answer by (nginx's
    $request_uri). An absolute-form target (`GET http://host/path`) counts from its path."""
    raw = request.raw_path
    if raw.startswith("/"):
        return raw
    _, scheme, rest = raw.partition("://")
    slash = rest.find("/")
    return rest[slash:] if scheme and slash >= 0 else "/"


def canonical_query(query: MultiMapping[str], blocking: bool) -> str | None:
    """The canonical URL's query string, from the decoded `query`; None when a directive is bad (400). Only
    what the service uses (with blocking reload, `_HLS_msn` then `_HLS_skip`): anything else (`?cachebust=`,
    an attacker's fresh value) would be a cache key per request."""
    if not blocking:
        return ""
    values: dict[str, str] = {}
    for name in BLOCKING_PARAMS & query.keys():
        # A repeated name: its last value (Shaka 4.16 adds its next _HLS_msn after a redirect's).
        value = blocking_param(query.getall(name)[-1]) or ""
        if name == "_HLS_skip":
            if value not in hls.SKIP_REQUEST_VALUES:
                return None
            values[name] = SKIP
            continue
        number = whole_number(value)
        if number is None:
            return None
        values[name] = str(number)
    if "_HLS_part" in values and "_HLS_msn" not in values:
        return None  # an error (6.2.5.2): answered 400
    return "&".join(f"{name}={values[name]}" for name in ("_HLS_msn", "_HLS_skip") if name in values)


def answered_as_sent(query: str, blocking: bool) -> bool:
    """Whether a query as sent is the canonical directives in either order (video.js asks
    `_HLS_skip=YES&_HLS_msn=N`): answered with no redirect."""
    if not blocking or not query:
        return False
    seen: list[str] = []
    for item in query.split("&"):
        name, equals, value = item.partition("=")
        if not equals or name in seen:
            return False
        if name == "_HLS_msn":
            if whole_number(value) is None or (value[0] == "0" and value != "0"):
                return False
        elif name != "_HLS_skip" or value != SKIP:
            return False
        seen.append(name)
    return True


def respelt(target: str, path: str, query: MultiMapping[str], blocking: bool) -> str | None:
    """The canonical URL, relative to the request's (it works under a path prefix), of a request spelt
    otherwise (one more cache key); None when it is answered as it is (or 400)."""
    sent_path, _, sent_query = target.partition("?")
    if sent_path == path and answered_as_sent(sent_query, blocking):
        return None
    canonical = canonical_query(query, blocking)
    if canonical is None:
        return None
    name = path.rpartition("/")[2]
    if sent_path.rpartition("/")[0] == path.rpartition("/")[0]:
        location = name
    else:  # a folder spelt another way: from the folder as sent, back up to the root of the route
        location = "../" * (sent_path.count("/") - 1) + path[1:]
    return f"{location}?{canonical}" if canonical else location


def to_canonical(request: web.Request, location: str,
                  cache_control: str = CANONICAL_CACHE_CONTROL) -> web.Response:
    """302 to the same playlist under its canonical URL, `location` relative to the request's."""
    return web.Response(status=302, headers=edge_headers({
        hdrs.LOCATION: location, hdrs.CACHE_CONTROL: cache_control}))


class MasterSource(Protocol):
    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME, here: str | None = None) -> Rendered | None:
        """As PlaylistSource's, its URIs absolute at `here` (clients.request_here) when given."""


class PlaylistSource(Protocol):
    def master_playlist(self, media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered | None:
        """Naming the variants `<n>/<media_name>`, rendered once per version; None: not ready yet."""

    def media_playlist(self, variant: int) -> Rendered | None:
        """None: an unknown variant, or one not ready yet."""

    @property
    def target_duration(self) -> int | None:
        """None until the first Owncast playlist was read."""

    async def wait_for_sequence(self, variant: int, sequence: int, timeout: float) -> Rendered | None:
        """The playlist once it lists `sequence` (or ended), or earlier as it is when the source stops;
        None after `timeout`. Counted in held_requests from the call (before it first awaits) to its end."""

    @property
    def held_requests(self) -> int:
        """Calls of wait_for_sequence not ended yet: the one count of held requests (the cap, /metrics)."""


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """One pathway's playlist routes' options. `newest(variant)`: the newest number any pathway lists (a
    player coming from there is held, not refused as too far ahead, unless `away()`)."""

    max_held: int = MAX_HELD
    connection_metrics: ConnectionMetrics | None = None
    clients: Clients = field(default_factory=Clients)  # one per app: every pathway's routes share it
    masters: MasterSource | None = None
    label_prefix: str = ""
    newest: Callable[[int], int | None] | None = None
    away: Callable[[], bool] = lambda: False


class PlaylistRoutes:
    """The playlist handlers, `guarded`'s try inlined (free in Python 3.11), not worn (a coroutine)."""

    def __init__(self, source: PlaylistSource, metrics: Metrics, default_variant: int, blocking: bool,
                 options: RouteOptions = RouteOptions()) -> None:
        label_prefix = self._label_prefix = options.label_prefix
        max_held = self._max_held = options.max_held
        connection_metrics = self._connection_metrics = options.connection_metrics
        self._source = source
        self._late = options.clients.late  # what a client's late _HLS_msn may cost (late.py)
        self._masters = options.masters  # None: the source's own
        self._newest, self._away = options.newest, options.away
        self._default = default_variant
        self._blocking_on = blocking  # off: _HLS_* parameters are ignored, as by a static host
        self._default_label = str(default_variant)
        inc = self._inc = metrics.playlist_requests.inc
        # Another pathway's labels interned: quick_media's count under the same string, found by identity.
        self._count = inc if not label_prefix else (
            lambda label, status: inc(sys.intern(label_prefix + label), status))
        self._quick_labels: dict[int, str] = {}  # each variant's label, its pathway's prefix included
        self._max_per_client = max(2, max_held // HELD_CLIENT_SHARE)
        self._held_by: dict[str, int] = {}  # held requests per client address (client_address)
        self._proxies = options.clients.proxies  # who may name the client (clients.py)
        if connection_metrics is not None:
            connection_metrics.watch("held", lambda: source.held_requests, max_held)

    async def master(self, request: web.Request, name: str = hls.MEDIA_PLAYLIST_NAME) -> web.Response:
        """The multivariant playlist naming its variants `<n>/<name>` (/hls/stream.m3u8: as Owncast does)."""
        try:
            target = request_target(request)
            if target != request.path:  # a multivariant playlist uses no query at all
                return self._redirect(request, "master", respelt(target, request.path, request.query, False))
            return self._serve(request, None, master_name=name)
        except Exception as exc:  # noqa: BLE001 (logged by internal_error)
            return internal_error(request, exc)

    async def media(self, request: web.Request) -> web.Response:
        """Variant n's media playlist (the default variant's without n in the path)."""
        try:
            digits = request.match_info.get("n")
            if digits is None:
                variant, label = self._default, self._default_label
            # "007" would be a second URL (and CDN cache key) for variant 7; a huge number cannot be ours.
            elif (whole_number(digits, _MAX_VARIANT_DIGITS) is None
                  or (digits != "0" and digits.startswith("0"))):
                self._count("unknown", 404)
                return _unknown_variant()
            else:
                variant, label = int(digits), "unknown"
            target = request_target(request)
            if target != request.path:  # a query, or the path spelt another way
                location = respelt(target, request.path, request.query, self._blocking_on)
                if location is not None:
                    return self._redirect(request, label, location)
                if self._blocking_on and BLOCKING_PARAMS & request.query.keys():
                    return await self._blocking(request, variant)
            return self._serve(request, variant)
        except Exception as exc:  # noqa: BLE001 (logged by internal_error)
            return internal_error(request, exc)

    async def _blocking(self, request: web.Request, variant: int) -> web.Response:
        """Blocking playlist reload (6.2.5.2): hold the request until segment _HLS_msn is listed."""
        source = self._source
        target = source.target_duration
        if target is None or (current := source.media_playlist(variant)) is None:
            return self._serve(request, variant)  # not ready / unknown, as for a plain request
        query = request.query
        skip_text = blocking_param(query.get("_HLS_skip"))
        if skip_text is not None and skip_text not in hls.SKIP_REQUEST_VALUES:
            return self._bad_request(variant, "_HLS_skip must be YES or v2")
        skip = skip_text is not None
        msn_text = blocking_param(query.get("_HLS_msn"))
        if msn_text is None:
            # _HLS_part without _HLS_msn is an error; _HLS_skip alone asks for a delta update at once.
            if "_HLS_part" in query:
                return self._bad_request(variant, "_HLS_part needs _HLS_msn")
            return self._serve(request, variant, skip=skip and not current.ended)
        msn = whole_number(msn_text)
        if msn is None or whole_number(blocking_param(query.get("_HLS_part", "0")) or "") is None:
            return self._bad_request(variant, "_HLS_msn and _HLS_part must be whole numbers")
        newest = current.last_sequence
        if msn < newest - hls.MSN_BEHIND_LIMIT or (current.ended and msn > newest):
            # Listed long before, or never to be: answered at once in full (6.2.5.2), within the client's
            # budget (late.py); past it, a redirect to the plain URL, which names no number.
            if self._late.take(client_address(request, self._proxies), target):
                response = rendered_response(request, current, hls.blocking_cache_control(target))
                self._count(str(variant), response.status)
                return response
            self._count(str(variant), 302)
            name = request.path.rpartition("/")[2]
            location = f"{name}?_HLS_skip={SKIP}" if skip else name
            return to_canonical(request, location, LISTED_CACHE_CONTROL)
        if current.ended:  # 6.2.5.2: after EXT-X-ENDLIST the parameters are ignored
            return self._serve(request, variant)
        if msn > newest + hls.MSN_AHEAD_LIMIT and (
                self._newest is None or msn > (self._newest(variant) or newest) + hls.MSN_AHEAD_LIMIT):
            return self._bad_request(variant, f"_HLS_msn {msn} is too far ahead of {newest}")
        if msn <= newest:  # listed already (hls.MSN_BEHIND_LIMIT): answered at once, nothing is held
            rendered = await source.wait_for_sequence(variant, msn, hls.block_timeout(target))
        else:
            transport = request.transport
            if transport is None or transport.is_closing():  # hung up already: hold nothing for nobody
                return web.Response(status=499, headers=EDGE_HEADERS)  # never sent: nginx's "client closed"
            if source.held_requests >= self._max_held:
                return self._too_many_held(variant, "held")
            client = client_address(request, self._proxies)
            held_by = self._held_by
            if client is not None and held_by.get(client, 0) >= self._max_per_client:
                return self._too_many_held(variant, "held_per_client")
            # A client hanging up cancels this handler (handler_cancellation): the finally frees the slot.
            if client is not None:
                held_by[client] = held_by.get(client, 0) + 1
            timeout = hls.block_timeout(target)
            if self._newest is not None and self._away():
                # Steered away: a player still here (Shaka moves with its next load) must not wait long.
                timeout = 0.0 if (self._newest(variant) or -1) >= msn else float(target)
            try:
                rendered = await source.wait_for_sequence(variant, msn, timeout) if timeout else None
            finally:
                if client is not None:
                    held_by[client] -= 1
                    if not held_by[client]:
                        del held_by[client]
        if rendered is None and self._newest is not None and (
                (self._newest(variant) or -1) >= msn or self._away()):
            # The stream advances on another pathway: the playlist as it is, not a 503 (Shaka would fail over
            # every pathway this host serves).
            rendered = source.media_playlist(variant)
        if rendered is None:
            self._count(str(variant), 503)
            # Retry-After like every 503 here: a player (or a cache in front) asks again, not at once.
            return web.Response(status=503, text="the stream is not advancing\n",
                                headers=edge_headers({hdrs.CACHE_CONTROL: hls.UNREADY_CACHE_CONTROL,
                                                      hdrs.RETRY_AFTER: "1"}))
        rendered = rendered.answer(skip, msn)  # a client that cannot use a delta asks without _HLS_skip
        # Answered before _HLS_msn was listed (the service is stopping): no cache may keep it for this URL.
        early = rendered.last_sequence < msn and not rendered.ended
        response = rendered_response(request, rendered,
                                     hls.UNREADY_CACHE_CONTROL if early else hls.blocking_cache_control(target))
        self._count(str(variant), response.status)
        return response

    def quick_media(self, variant: int, accept_encoding: str) -> tuple[bytes, bytes] | None:
        """A plain GET's 200 as bytes up to its Date (quick.py), counted as _serve counts it; else None."""
        source = self._source
        target = source.target_duration
        if target is None or (rendered := source.media_playlist(variant)) is None:
            return None
        # Made once a variant (only one with a playlist gets here): another pathway's request costs no more.
        label = self._quick_labels.get(variant)
        if label is None:
            label = self._quick_labels[variant] = sys.intern(self._label_prefix + (
                self._default_label if variant == self._default else str(variant)))
        self._inc(label, 200)
        return quick_answer(rendered, hls.playlist_cache_control(target), accepts_gzip(accept_encoding))

    def quick_master(self, name: str, accept_encoding: str) -> tuple[bytes, bytes] | None:
        """The multivariant playlist, as quick_media; None with content steering (it depends on the Host)."""
        source = self._source
        target = source.target_duration
        if target is None or self._masters is not None or (rendered := source.master_playlist(name)) is None:
            return None
        self._count("master", 200)
        return quick_answer(rendered, hls.playlist_cache_control(target), accepts_gzip(accept_encoding))

    def _redirect(self, request: web.Request, label: str, location: str | None) -> web.Response:
        self._count(label, 302)  # labels stay bounded: a variant is named once served
        return to_canonical(request, location or request.path.rpartition("/")[2])

    def _too_many_held(self, variant: int, reason: str) -> web.Response:
        self._count(str(variant), 503)
        if self._connection_metrics is not None:
            self._connection_metrics.rejected(reason)
        return unavailable("too many held requests, try again shortly\n", HELD_RETRY_AFTER)

    def _bad_request(self, variant: int, why: str) -> web.Response:
        self._count(str(variant), 400)
        return text_answer(400, why + "\n")

    def _serve(self, request: web.Request, variant: int | None, *, skip: bool = False,
               master_name: str = hls.MEDIA_PLAYLIST_NAME) -> web.Response:
        """The multivariant playlist (variant None) or a media playlist, counted. Not ready (503, retried)
        for the master or the default variant, or without a target duration; else unknown (404, fatal)."""
        source, default = self._source, self._default
        # Labels stay bounded: a client-chosen variant number is a label only once it was served.
        label = "master" if variant is None else self._default_label if variant == default else "unknown"
        status = 500
        try:
            target = source.target_duration
            if target is None:
                response = _not_ready()
            else:
                cache_control = hls.playlist_cache_control(target)
                if variant is None:
                    masters = self._masters
                    if masters is None:
                        rendered = source.master_playlist(master_name)
                    else:
                        here = request_here(request, self._proxies)  # None: not a plain Host
                        rendered = masters.master_playlist(master_name, None if here is None else here.base)
                        if here is not None and not here.shared:
                            cache_control = hls.UNSHARED_CACHE_CONTROL
                else:
                    rendered = source.media_playlist(variant)
                if rendered is not None:
                    if label == "unknown":
                        label = str(variant)
                    rendered = rendered.answer(skip)
                    response = rendered_response(request, rendered, cache_control)
                elif variant is None or variant == default:
                    response = _not_ready()
                else:
                    response = _unknown_variant()
            status = response.status
            return response
        finally:
            self._count(label, status)


def _not_ready() -> web.Response:
    # Retried by players; must not be cached, or viewers would keep seeing it after the stream starts.
    return unavailable("stream not ready yet\n", "1", hls.UNREADY_CACHE_CONTROL)


def _unknown_variant() -> web.Response:
    # Not cached either: a variant may appear when the stream restarts with other settings.
    return text_answer(404, "unknown variant\n")
