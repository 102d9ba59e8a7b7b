"""The HTTP side: live playlists, health, metrics and the optional viewer page.

Playlists are rendered (and gzipped) once per change by their source; every request is served from
that rendering, so a crowd of viewers costs no rendering and no compression. Segments are not served
here: the playlists point at the bucket.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import hls
from ..manifest import Rendered
from ..metrics import ConnectionMetrics, Metrics

log = logging.getLogger(__name__)


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
        None after `timeout`."""


class HealthSource(Protocol):
    def health(self) -> tuple[bool, dict[str, object]]:
        """(ok, a JSON-able body that includes "status")."""


HEALTH = web.AppKey[HealthSource]("health")
METRICS = web.AppKey("metrics", Metrics)
DEFAULT_VARIANT = web.AppKey("default_variant", int)
VIEWER_DIR = web.AppKey("viewer_dir", Path)  # resolved; only set when a viewer is served
VIEWER_CONFIG = web.AppKey("viewer_config", bytes)  # config.json: where the viewer finds the stream

SERVER_NAME = "hls-broadcaster"  # aiohttp's default Server header names its and Python's versions
NO_STORE = "no-store"  # health and metrics are live readings; a cached one would lie
# The viewer's files may be replaced in place: revalidate each time (a cheap 304 by ETag).
REVALIDATE = "no-cache"
CLIENT_MAX_SIZE = 1024  # no route takes a request body
# Blocking requests held at once when no cap is given; the service derives its cap from the file-handle
# budget (broadcaster/limits.py). Past it: 503 with Retry-After, so held requests never take the
# connections plain playlist and /health requests need.
MAX_HELD = 10_000
HELD_RETRY_AFTER = "1"  # seconds: held requests are answered within a target duration or so

# A variant number longer than this cannot be one of ours; int() of a huge one is costly (and limited).
_MAX_VARIANT_DIGITS = 4
# Numbers in requests are ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and
# int() takes fullwidth or Arabic-Indic digits, a second spelling (and cache key) of the same request.
_DIGITS = re.compile(r"[0-9]{1,19}")  # 19 digits: always within an int64
# The viewer's files: plain, visible names directly inside viewer_dir (no folders, "..", dotfiles).
_VIEWER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
# mimetypes reads the host's tables; these are the types browsers insist on for a page and its scripts.
_VIEWER_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
}

def create_app(
    playlists: PlaylistSource,
    health: HealthSource,
    metrics: Metrics,
    *,
    viewer_dir: Path | None = None,
    default_variant: int = 0,
    expose_metrics: bool = True,
    stream_url: str = "live/master.m3u8",
    blocking_reload: bool = True,
    max_held: int = MAX_HELD,
    connection_metrics: ConnectionMetrics | None = None,
) -> web.Application:
    """The web app; its dependencies are passed in, it owns no tasks."""
    # No middleware: each layer costs every playlist request a coroutine and aiohttp's own wrapper
    # (bench/serve.py). Every response carries EDGE_HEADERS from its handler instead, errors are caught
    # in the handlers (`guarded`), and the catch-all route answers what aiohttp would answer 404/405.
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, handler_args={"logger": _CONNECTION_LOG})
    app[HEALTH] = health
    app[METRICS] = metrics
    app[DEFAULT_VARIANT] = default_variant
    playlist_routes = _PlaylistRoutes(playlists, metrics, default_variant, blocking_reload,
                                      max_held=max_held, connection_metrics=connection_metrics)
    r = app.router
    r.add_get("/live/master.m3u8", playlist_routes.master)
    r.add_get("/live/playlist.m3u8", playlist_routes.default_media)
    r.add_get(r"/live/{n:\d+}/playlist.m3u8", playlist_routes.media)
    # Owncast's own paths, the same playlists: its web page plays them unchanged when a tunnel sends
    # these two paths here and everything else on that hostname to Owncast (cloudflared.yml.example).
    r.add_get(f"/hls/{hls.OWNCAST_PLAYLIST_NAME}", playlist_routes.owncast_master)
    r.add_get(rf"/hls/{{n:\d+}}/{hls.OWNCAST_PLAYLIST_NAME}", playlist_routes.media)
    r.add_get("/health", _health)
    if expose_metrics:
        r.add_get("/metrics", _metrics)
    if viewer_dir is None:
        r.add_get("/", _index_text)
    else:
        root = viewer_dir.resolve()
        if not root.is_dir():
            raise ValueError(f"viewer_dir {viewer_dir} is not a directory")
        app[VIEWER_DIR] = root
        # The viewer asks where to play from: here, or the bucket when playlists are published there.
        app[VIEWER_CONFIG] = json.dumps({"src": stream_url}).encode()
        r.add_get("/config.json", _viewer_config)
        r.add_get("/", _viewer_file)
        r.add_get("/{file}", _viewer_file)
    # Resolved after every route whose path starts with a fixed part (aiohttp tries longer fixed
    # prefixes first, so add_event_routes' /live/events wins too); [\s\S]: a %0A in the path as well.
    # A route added later whose path starts with a {variable} would come after this one.
    r.add_route("*", r"/{tail:[\s\S]*}", _elsewhere)
    return app


def create_metrics_app(metrics: Metrics) -> web.Application:
    """/metrics alone, for a listener of its own (METRICS_LISTEN), away from the public tunnel."""
    app = web.Application(client_max_size=CLIENT_MAX_SIZE, handler_args={"logger": _CONNECTION_LOG})
    app[METRICS] = metrics
    app.router.add_get("/metrics", _private_metrics)  # no CORS: no web page has any business here
    return app


class _ConnectionLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's connection logger, minus the ERROR and traceback it writes for every request it cannot
    parse (garbage, TLS or HTTP/2 on this port, oversized headers...). Those are the client's mistake,
    answered with a 4xx and a closed connection: one line at debug level, like aiohttp's bad methods."""

    def exception(self, msg: object, *args: object, exc_info: object = True, **kwargs: object) -> None:
        if isinstance(exc_info, HttpProcessingError) and 400 <= exc_info.code < 500:
            self.logger.debug("bad request (%d): %r", exc_info.code, exc_info.message)
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)  # type: ignore[arg-type]


_CONNECTION_LOG = _ConnectionLog(logging.getLogger("aiohttp.server"), {})


# -- every response ------------------------------------------------------------------------------

# CORS (the viewer or a player may be on another origin: docs/hls-rules.md#cors, status 0 otherwise) and our
# Server name, on every response our handlers send, errors included. (Requests aiohttp cannot parse
# are answered by aiohttp itself, before any route.)
EDGE_HEADERS: Mapping[str, str] = {
    hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: "*",
    # Content-Type/-Length and Cache-Control are readable anyway; hls.js reads Age (CDN cache age).
    hdrs.ACCESS_CONTROL_EXPOSE_HEADERS: "Age, Date, ETag, Retry-After",
    hdrs.SERVER: SERVER_NAME,
}
_PREFLIGHT_METHODS = "GET, HEAD, OPTIONS"
_PREFLIGHT_SAFE_HEADERS = "Cache-Control, If-Modified-Since, If-None-Match, Range"
_PREFLIGHT_MAX_AGE = "86400"
_HEADER_LIST = re.compile(r"[A-Za-z0-9-]+(?:\s*,\s*[A-Za-z0-9-]+)*")


def _headers(extra: Mapping[str, str]) -> dict[str, str]:
    return {**EDGE_HEADERS, **extra}


def guarded(handler: Handler) -> Handler:
    """A bug in one request: one log line and a 500 with EDGE_HEADERS, not aiohttp's traceback.
    (The playlist handlers inline the same try: it costs them nothing, a wrapper costs a coroutine.)"""

    @functools.wraps(handler)
    async def guard(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:  # aiohttp's way to answer early: an answer, not a bug
            exc.headers.update(EDGE_HEADERS)
            raise
        except Exception as exc:  # noqa: BLE001 (logged; CancelledError is a BaseException and passes)
            return _internal_error(request, exc)

    return guard


@guarded
async def _elsewhere(request: web.Request) -> web.Response:
    """What no route takes: a preflight (answered for every path), 404, or 405 where GET would work."""
    if request.method == hdrs.METH_OPTIONS:
        return _preflight(request)
    if request.method not in (hdrs.METH_GET, hdrs.METH_HEAD):
        match = await request.app.router.resolve(request.clone(method=hdrs.METH_GET))
        if match.handler is not _elsewhere:  # a GET route has this path: every route is GET-only
            return web.Response(status=405, text="method not allowed\n",
                                headers=_headers({hdrs.ALLOW: "GET,HEAD"}))
    return web.Response(status=404, text="not found\n", headers=_headers({hdrs.CACHE_CONTROL: hls.UNREADY_CACHE_CONTROL}))


def _preflight(request: web.Request) -> web.Response:
    asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "")
    # Echo what the browser asks for when it is a plain list of header names; never echo junk.
    allowed = asked if len(asked) <= 1000 and _HEADER_LIST.fullmatch(asked) else _PREFLIGHT_SAFE_HEADERS
    return web.Response(
        status=204,
        headers=_headers({
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: _PREFLIGHT_METHODS,
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: allowed,
            hdrs.ACCESS_CONTROL_MAX_AGE: _PREFLIGHT_MAX_AGE,
            hdrs.VARY: hdrs.ACCESS_CONTROL_REQUEST_HEADERS,  # the answer depends on it
        }),
    )


def _internal_error(request: web.Request, exc: Exception) -> web.Response:
    # One line, without a traceback: the raw (still escaped) path and the repr keep newlines out of the log.
    log.error("%s %s failed: %r", request.method, request.raw_path, exc, exc_info=log.isEnabledFor(logging.DEBUG))
    return web.Response(status=500, text="internal server error\n", headers=_headers({hdrs.CACHE_CONTROL: NO_STORE}))


# -- playlists -----------------------------------------------------------------------------------


_BLOCKING_PARAMS = frozenset({"_HLS_msn", "_HLS_part", "_HLS_skip"})


class _PlaylistRoutes:
    """The playlist handlers, with what they need at hand: the hot path, so no app lookups per
    request, and `guarded`'s try inlined (free in Python 3.11) rather than worn (a coroutine)."""

    def __init__(self, source: PlaylistSource, metrics: Metrics, default_variant: int, blocking: bool, *,
                 max_held: int = MAX_HELD, connection_metrics: ConnectionMetrics | None = None) -> None:
        self._source = source
        self._default = default_variant
        self._blocking_on = blocking  # off: _HLS_* parameters are ignored, as by a static host
        self._default_label = str(default_variant)
        self._count = metrics.playlist_requests.inc
        self.held = 0  # blocking requests waiting now
        self._max_held = max_held
        self._connection_metrics = connection_metrics
        if connection_metrics is not None:
            connection_metrics.watch("held", lambda: self.held, max_held)

    async def master(self, request: web.Request) -> web.Response:
        try:
            return self._serve(request, None)
        except Exception as exc:  # noqa: BLE001 (logged by _internal_error)
            return _internal_error(request, exc)

    async def owncast_master(self, request: web.Request) -> web.Response:
        """/hls/stream.m3u8: the same master, naming its variants as Owncast does (<n>/stream.m3u8)."""
        try:
            return self._serve(request, None, master_name=hls.OWNCAST_PLAYLIST_NAME)
        except Exception as exc:  # noqa: BLE001 (logged by _internal_error)
            return _internal_error(request, exc)

    async def default_media(self, request: web.Request) -> web.Response:
        try:
            if request.query_string and self._blocking_on and _BLOCKING_PARAMS & request.query.keys():
                return await self._blocking(request, self._default)
            return self._serve(request, self._default)
        except Exception as exc:  # noqa: BLE001 (logged by _internal_error)
            return _internal_error(request, exc)

    async def media(self, request: web.Request) -> web.Response:
        try:
            digits = request.match_info["n"]
            # "007" would be a second URL (and CDN cache key) for variant 7; a huge number cannot be ours.
            if (len(digits) > _MAX_VARIANT_DIGITS or not _DIGITS.fullmatch(digits)
                    or (digits != "0" and digits.startswith("0"))):
                self._count("unknown", 404)
                return _unknown_variant()
            if request.query_string and self._blocking_on and _BLOCKING_PARAMS & request.query.keys():
                return await self._blocking(request, int(digits))
            return self._serve(request, int(digits))
        except Exception as exc:  # noqa: BLE001 (logged by _internal_error)
            return _internal_error(request, exc)

    async def _blocking(self, request: web.Request, variant: int) -> web.Response:
        """Blocking playlist reload (6.2.5.2): hold the request until segment _HLS_msn is listed."""
        source = self._source
        target = source.target_duration
        current = source.media_playlist(variant) if target is not None else None
        if target is None or current is None:
            return self._serve(request, variant)  # not ready / unknown, as for a plain request
        query = request.query
        skip_text = query.get("_HLS_skip")
        if skip_text is not None and skip_text not in hls.SKIP_REQUEST_VALUES:
            return self._bad_request(variant, "_HLS_skip must be YES or v2")
        skip = skip_text is not None
        if current.ended:  # 6.2.5.2: after EXT-X-ENDLIST the parameters are ignored
            return self._serve(request, variant)
        msn_text = query.get("_HLS_msn")
        if msn_text is None:
            # _HLS_part without _HLS_msn is an error; _HLS_skip alone asks for a delta update at once.
            if "_HLS_part" in query:
                return self._bad_request(variant, "_HLS_part needs _HLS_msn")
            return self._serve(request, variant, skip=skip)
        msn = parse_number(msn_text)
        if msn is None or parse_number(query.get("_HLS_part", "0")) is None:
            return self._bad_request(variant, "_HLS_msn and _HLS_part must be whole numbers")
        if msn > current.last_sequence + hls.MSN_AHEAD_LIMIT:
            return self._bad_request(variant, f"_HLS_msn {msn} is too far ahead of {current.last_sequence}")
        if msn > current.last_sequence and self.held >= self._max_held:  # a listed msn is answered at once
            return self._too_many_held(variant)
        self.held += 1
        try:
            rendered = await source.wait_for_sequence(variant, msn, hls.block_timeout(target))
        finally:
            self.held -= 1
        if rendered is None:
            self._count(str(variant), 503)
            return web.Response(status=503, text="the stream is not advancing\n",
                                headers=_headers({hdrs.CACHE_CONTROL: hls.UNREADY_CACHE_CONTROL}))
        if skip and rendered.delta is not None:
            rendered = rendered.delta  # a client that cannot use it asked without _HLS_skip (6.2.5.1)
        # Answered before segment _HLS_msn was listed (the service is stopping): a playlist players
        # take as it is and ask again, but one no cache may keep as the answer to this URL.
        early = rendered.last_sequence < msn and not rendered.ended
        response = _rendered(request, rendered,
                             hls.UNREADY_CACHE_CONTROL if early else hls.blocking_cache_control(target))
        self._count(str(variant), response.status)
        return response

    def _too_many_held(self, variant: int) -> web.Response:
        self._count(str(variant), 503)
        if self._connection_metrics is not None:
            self._connection_metrics.rejected("held")
        return web.Response(status=503, text="too many held requests, try again shortly\n",
                            headers=_headers({hdrs.RETRY_AFTER: HELD_RETRY_AFTER, hdrs.CACHE_CONTROL: NO_STORE}))

    def _bad_request(self, variant: int, why: str) -> web.Response:
        self._count(str(variant), 400)
        return web.Response(status=400, text=why + "\n",
                            headers=_headers({hdrs.CACHE_CONTROL: hls.UNREADY_CACHE_CONTROL}))

    def _serve(self, request: web.Request, variant: int | None, *, skip: bool = False,
               master_name: str = hls.MEDIA_PLAYLIST_NAME) -> web.Response:
        """The multivariant playlist (variant None) or a media playlist, counted by label and status.

        Not ready (503, retried by players) vs unknown (404, fatal in hls.js): nothing is ready while the
        source has no target duration; after that None for the master or the default variant (which the
        wiring promises exists) means not ready yet, and None for any other variant means unknown.
        """
        source, default = self._source, self._default
        # Labels stay bounded: a client-chosen variant number is a label only once it was served.
        label = "master" if variant is None else self._default_label if variant == default else "unknown"
        status = 500
        try:
            target = source.target_duration
            if target is None:
                response = _not_ready()
            else:
                if variant is None:
                    rendered = source.master_playlist(master_name)
                else:
                    rendered = source.media_playlist(variant)
                if rendered is not None:
                    if label == "unknown":
                        label = str(variant)
                    if skip and rendered.delta is not None:
                        rendered = rendered.delta
                    response = _rendered(request, rendered, hls.playlist_cache_control(target))
                elif variant is None or variant == default:
                    response = _not_ready()
                else:
                    response = _unknown_variant()
            status = response.status
            return response
        finally:
            self._count(label, status)


def _rendered(request: web.Request, rendered: Rendered, cache_control: str) -> web.Response:
    """One rendering, plain or gzipped (compressed once per change, not per request), or a 304."""
    gzipped = _accepts_gzip(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
    body, etag = (rendered.gzip_body, rendered.gzip_etag) if gzipped else (rendered.body, rendered.etag)
    if hdrs.IF_NONE_MATCH in request.headers and _none_match(request, etag):
        return web.Response(status=304, headers=_playlist_headers(etag, cache_control, gzipped, False))
    return web.Response(body=body, headers=_playlist_headers(etag, cache_control, gzipped, True))


# A playlist version is served thousands of times with the same headers: built once, not per request
# (aiohttp copies them into each response). Keyed by ETag, which differs between plain and gzipped.
_playlist_headers_cache: dict[tuple[str, str, bool], CIMultiDictProxy[str]] = {}


def _playlist_headers(etag: str, cache_control: str, gzipped: bool, with_body: bool) -> CIMultiDictProxy[str]:
    key = (etag, cache_control, with_body)
    headers = _playlist_headers_cache.get(key)
    if headers is None:
        if len(_playlist_headers_cache) >= 64:  # old versions: only the newest few are requested
            _playlist_headers_cache.clear()
        built = CIMultiDict({**EDGE_HEADERS, hdrs.CACHE_CONTROL: cache_control, hdrs.ETAG: etag,
                             hdrs.VARY: hdrs.ACCEPT_ENCODING})
        if with_body:
            built[hdrs.CONTENT_TYPE] = hls.PLAYLIST_CONTENT_TYPE
            if gzipped:
                built[hdrs.CONTENT_ENCODING] = "gzip"
        headers = _playlist_headers_cache[key] = CIMultiDictProxy(built)
    return headers


def _none_match(request: web.Request, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/"x" matches "x"; "*" matches all."""
    tags = request.if_none_match or ()
    value = etag.strip('"')
    return any(tag.value in (value, "*") for tag in tags)


@functools.lru_cache(maxsize=256)  # clients send the same few headers over and over
def _accepts_gzip(accept_encoding: str) -> bool:
    """RFC 9110 12.5.3: gzip (or x-gzip, else "*") listed with q > 0. Plain is always acceptable."""
    wildcard = 0.0
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            return _qvalue(params) > 0
        if coding == "*":
            wildcard = _qvalue(params)
    return wildcard > 0


def _qvalue(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                return 0.0  # unreadable: fall back to the plain body, which is always valid
            return q if 0.0 <= q <= 1.0 else 0.0  # also rejects nan and inf
    return 1.0


def parse_number(text: str) -> int | None:
    """A whole number as a client may send one (1 to 19 ASCII digits), else None."""
    return int(text) if _DIGITS.fullmatch(text) else None


def _not_ready() -> web.Response:
    # Retried by players; must not be cached, or viewers would keep seeing it after the stream starts.
    return web.Response(
        status=503,
        text="stream not ready yet\n",
        headers=_headers({hdrs.RETRY_AFTER: "1", hdrs.CACHE_CONTROL: hls.UNREADY_CACHE_CONTROL}),
    )


def _unknown_variant() -> web.Response:
    # Not cached either: a variant may appear when the stream restarts with other settings.
    return web.Response(
        status=404, text="unknown variant\n", headers=_headers({hdrs.CACHE_CONTROL: hls.UNREADY_CACHE_CONTROL})
    )


# -- health and metrics --------------------------------------------------------------------------


@guarded
async def _health(request: web.Request) -> web.Response:
    ok, body = request.app[HEALTH].health()
    return web.json_response(body, status=200 if ok else 503, headers=_headers({hdrs.CACHE_CONTROL: NO_STORE}))


@guarded
async def _metrics(request: web.Request) -> web.Response:
    return _metrics_response(request, EDGE_HEADERS)


@guarded
async def _private_metrics(request: web.Request) -> web.Response:
    return _metrics_response(request, {hdrs.SERVER: SERVER_NAME})


def _metrics_response(request: web.Request, headers: Mapping[str, str]) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    # CONTENT_TYPE_LATEST carries a version and charset, so it goes in as a header, not content_type.
    return web.Response(
        body=body, headers={**headers, hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST, hdrs.CACHE_CONTROL: NO_STORE}
    )


# -- the viewer ----------------------------------------------------------------------------------


@guarded
async def _index_text(request: web.Request) -> web.Response:
    default = request.app[DEFAULT_VARIANT]
    text = (
        f"{SERVER_NAME}\n\n"
        f"/live/playlist.m3u8       media playlist of variant {default}\n"
        "/live/{n}/playlist.m3u8   media playlist of variant n\n"
        "/live/master.m3u8         multivariant playlist\n"
    )
    return web.Response(text=text, headers=_headers({hdrs.CACHE_CONTROL: REVALIDATE}))


@guarded
async def _viewer_config(request: web.Request) -> web.Response:
    return web.Response(body=request.app[VIEWER_CONFIG], content_type="application/json",
                        headers=_headers({hdrs.CACHE_CONTROL: REVALIDATE}))


@guarded
async def _viewer_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("file", "index.html")
    path = await asyncio.to_thread(_find_viewer_file, request.app[VIEWER_DIR], name)
    if path is None:
        return await _elsewhere(request)
    headers = _headers({hdrs.CACHE_CONTROL: REVALIDATE, hdrs.X_CONTENT_TYPE_OPTIONS: "nosniff"})
    content_type = _VIEWER_TYPES.get(path.suffix.lower())
    if content_type is not None:
        headers[hdrs.CONTENT_TYPE] = content_type
    return web.FileResponse(path, headers=headers)


def _find_viewer_file(root: Path, name: str) -> Path | None:
    """The file `name` directly inside `root` (resolved), after symlinks; None for anything else."""
    if not _VIEWER_NAME.fullmatch(name):
        return None
    try:
        path = (root / name).resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return None
    # A symlink may point elsewhere inside root, but not out of it, into a folder or at a dotfile.
    if path.parent != root or not _VIEWER_NAME.fullmatch(path.name) or not path.is_file():
        return None
    return path
