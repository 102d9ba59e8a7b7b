"""The private stream's gate (PRIVATE=true): every stream door's handler wears one of `Gate`'s wrappers,
letting in only a viewer token the Gatekeeper admits (`access=` in the query, or `Authorization: Bearer`),
else 401 or 403 with one JSON line naming nothing of the stream. The token goes back into what the player
follows next (the multivariant playlist's URIs, a redirect, RELOAD-URI); media playlists stay shared bytes."""

from __future__ import annotations

import functools
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from ..access.admitted import AdmittedTokens
from ..access.edge_tokens import EdgeTokens
from ..access.grants import Gatekeeper, Keys, Refusal
from ..access.invites import InvitesFile
from ..edge import NO_STORE, edge_headers
from ..bucket.edge_urls import edge_prefix, edge_tokens
from ..settings import Settings
from .clients import Proxies, client_address

ACCESS = "access"  # the query parameter a viewer token rides in
EDGE = "verify"  # ... and the edge token (bucket/edge_urls.py)
_BEARER = "bearer "  # its scheme, named in any case (RFC 9110 11.1)
_ITEM = ACCESS + "="
TOO_MANY = "too many attempts: wait a minute and try again"
PER_MINUTE = 6  # failed attempts a client may make a minute, and at once
UNKNOWN_PER_MINUTE = 60  # ... for all the clients the service cannot tell apart
MOST_CLIENTS = 10_000
# Owncast's own page plays /hls/: it cannot ask for a pass-phrase nor carry a token.
OWNCAST_PAGE = ("Owncast's own page cannot play a private stream (it cannot carry a viewer token): "
                "watch it on this service's page")


def token_of(request: web.Request) -> tuple[str | None, bool]:
    """(the viewer token the request carries, whether it came in the query), read from the raw query."""
    raw = request.raw_path
    if _ITEM in raw:  # a cheap test before the query is split
        for item in raw.partition("?")[2].split("&"):
            if item.startswith(_ITEM):
                value = item[len(_ITEM):]
                return (unquote(value) if "%" in value else value), True
    auth = request.headers.get(hdrs.AUTHORIZATION)
    if auth is None or auth[:len(_BEARER)].lower() != _BEARER:
        return None, False
    return auth[len(_BEARER):].strip(), False


def with_access(uri: str, token: str) -> str:
    """`uri` with `access=<token>` added to its query (a token is URL-safe, quoted anyway)."""
    base, hash_, fragment = uri.partition("#")
    return f"{base}{'&' if '?' in base else '?'}{ACCESS}={quote(token, safe='')}{hash_}{fragment}"


def _stripped(raw: str, names: tuple[str, ...]) -> str:
    path, _, query = raw.partition("?")
    kept = "&".join(item for item in query.split("&") if item.partition("=")[0] not in names)
    return f"{path}?{kept}" if kept else path


def _as_sent_without_access(request: web.Request) -> web.Request:
    """The request, its `raw_path` (canonical.request_target) without `access=`: set in its cache of
    computed properties (a clone cost a playlist request a sixth more); without that cache, a clone."""
    stripped = _stripped(request.raw_path, (ACCESS,))
    cache = getattr(request, "_cache", None)
    if not isinstance(cache, dict):
        return request.clone(rel_url=stripped)
    cache["raw_path"] = stripped
    return request


def master_with_access(body: bytes, token: str) -> bytes:
    """A multivariant playlist whose every URI (a URI line, a URI="..." attribute) carries the token."""
    lines = []
    for line in body.decode().split("\n"):
        if line and not line.startswith("#"):
            line = with_access(line, token)
        elif 'URI="' in line:
            head, _, rest = line.partition('URI="')
            uri, quote_, tail = rest.partition('"')
            line = f'{head}URI="{with_access(uri, token)}{quote_}{tail}'
        lines.append(line)
    return "\n".join(lines).encode()


def steering_with_access(body: bytes, token: str) -> bytes:
    manifest = json.loads(body)
    if isinstance(manifest.get("RELOAD-URI"), str):
        manifest["RELOAD-URI"] = with_access(manifest["RELOAD-URI"], token)
    return json.dumps(manifest, separators=(",", ":")).encode()


class Open:
    """The doors of a public stream: each handler as it is (no wrapper, no cost)."""

    def door(self, handler: Handler) -> Handler:
        return handler

    playlist = master = steering = segment = door


OPEN = Open()


class Gate(Open):
    """The wrappers a door's handler wears in private mode, all judged by one Gatekeeper."""

    def __init__(self, keeper: Gatekeeper, edge: EdgeTokens | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.keeper = keeper  # POST /live/access grants with it too
        self._edge = edge  # the edge tokens segment URIs carry (None: only viewer tokens)
        # For the quick answers (quick.py): a token let in is let in again for a moment by its bytes alone.
        self.admits = AdmittedTokens(keeper, clock).admits

    def admit(self, request: web.Request) -> tuple[web.Response | None, str | None]:
        """(the refusal, None) or (None, the token when it came in the query)."""
        token, in_query = token_of(request)
        refusal = self.keeper.admit(token)
        if refusal is None:
            return None, token if in_query else None
        owncast = refusal.status == 401 and request.path.startswith("/hls/")
        text = json.dumps({"error": OWNCAST_PAGE if owncast else refusal.message}) + "\n"
        headers = edge_headers({hdrs.CACHE_CONTROL: NO_STORE})
        if refusal.status == 401:
            headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="stream"'
        return web.Response(status=refusal.status, text=text, content_type="application/json",
                            headers=headers), None

    def door(self, handler: Handler) -> Handler:
        """A door that reads no query but its own parameters (events, the heartbeat): the token stays."""

        @functools.wraps(handler)
        async def gated(request: web.Request) -> web.StreamResponse:
            refusal, _ = self.admit(request)
            if refusal is not None:
                return refusal
            return await handler(request)

        return gated

    def segment(self, handler: Handler) -> Handler:
        """The VM's segments: their edge token or a viewer token, both taken out of the URL; kept private."""
        edge = self._edge

        @functools.wraps(handler)
        async def gated(request: web.Request) -> web.StreamResponse:
            verify = request.query.get(EDGE)
            if edge is None or verify is None or not edge.valid(verify):
                refusal, _ = self.admit(request)
                if refusal is not None:
                    return refusal
            if EDGE in request.query or ACCESS in request.query:  # a new request, its query without them
                request = request.clone(rel_url=_stripped(request.raw_path, (ACCESS, EDGE)))
            return kept_private(await handler(request))

        return gated

    def playlist(self, handler: Handler) -> Handler:
        """A media playlist's door: its redirects keep the token."""
        return self._rewriting(handler)

    def master(self, handler: Handler) -> Handler:
        """The multivariant playlist's door: rendered for this viewer, its URIs carrying the token."""
        return self._rewriting(handler, master_with_access)

    def steering(self, handler: Handler) -> Handler:
        return self._rewriting(handler, steering_with_access)

    def _rewriting(self, handler: Handler, rewrite: Callable[[bytes, str], bytes] | None = None) -> Handler:
        @functools.wraps(handler)
        async def gated(request: web.Request) -> web.StreamResponse:
            refusal, token = self.admit(request)
            if refusal is not None:
                return refusal
            if token is None:  # a Bearer header: the player sends it again, nothing to carry
                return kept_private(await handler(request))
            if rewrite is not None:  # asked plain and whole: the body is rewritten for this viewer
                headers = CIMultiDict(request.headers)
                headers.popall(hdrs.ACCEPT_ENCODING, None)
                headers.popall(hdrs.IF_NONE_MATCH, None)
                inner = request.clone(rel_url=_stripped(request.raw_path, (ACCESS,)), headers=headers)
            else:
                inner = _as_sent_without_access(request)
            response = kept_private(await handler(inner))
            if not isinstance(response, web.Response):
                return response
            location = response.headers.get(hdrs.LOCATION)
            if location is not None:
                response.headers[hdrs.LOCATION] = with_access(location, token)
            elif rewrite is not None and response.status == 200 and response.body is not None:
                assert isinstance(response.body, bytes)
                response.body = rewrite(response.body, token)
                response.headers.popall(hdrs.ETAG, None)
                response.headers[hdrs.CACHE_CONTROL] = "private, no-cache"  # one viewer's rendering
            return response

        return gated


def kept_private(response: web.StreamResponse) -> web.StreamResponse:
    """What a token opened, `private`: a cache in front that keys by path would hand it to anyone."""
    cache_control = response.headers.get(hdrs.CACHE_CONTROL, "")
    if not response.prepared and cache_control and "no-store" not in cache_control:
        kept = [d for d in cache_control.split(", ") if d not in ("public", "private")]
        response.headers[hdrs.CACHE_CONTROL] = ", ".join(["private", *kept])
    return response


class Attempts:
    def __init__(self, per_minute: int = PER_MINUTE, unknown_per_minute: int = UNKNOWN_PER_MINUTE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sizes = (float(per_minute), float(unknown_per_minute))
        self._clock = clock
        self._buckets: OrderedDict[str | None, tuple[float, float]] = OrderedDict()  # client -> (left, when)

    def _left(self, client: str | None) -> float:
        size = self._sizes[client is None]
        left, when = self._buckets.get(client, (size, self._clock()))
        return min(size, left + (self._clock() - when) * size / 60.0)

    def allowed(self, client: str | None) -> bool:
        """Whether this client may try now (at least one attempt left)."""
        return self._left(client) >= 1.0

    def failed(self, client: str | None) -> None:
        """One attempt failed: it costs one."""
        left = self._left(client) - 1.0
        self._buckets[client] = (left, self._clock())
        self._buckets.move_to_end(client)
        if len(self._buckets) > MOST_CLIENTS:
            self._buckets.popitem(last=False)


def _answer(status: int, body: dict[str, object]) -> web.Response:
    return web.json_response(body, status=status, headers=edge_headers({hdrs.CACHE_CONTROL: NO_STORE}))


@dataclass(frozen=True)
class AccessRoute:
    """POST /live/access: a viewer token for `{"passphrase": ...}`, `{"invite": ...}` or `{"token": ...}`:
    200 `{"token", "expires"}`, or `{"error": ...}` with 400, 403 or 429. Each failure costs the client one of
    its attempts a minute (`Attempts`; unknown clients share a larger bucket); none left refuses everything."""

    keeper: Gatekeeper
    proxies: Proxies
    attempts: Attempts = field(default_factory=Attempts)

    async def grant(self, request: web.Request) -> web.Response:
        client = client_address(request, self.proxies)
        if not self.attempts.allowed(client):
            return _answer(429, {"error": TOO_MANY})
        try:
            asked = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            asked = None
        if not isinstance(asked, dict):
            self.attempts.failed(client)
            return _answer(400, {"error": 'send JSON: {"passphrase": "..."} or {"invite": "..."}'})
        granted = self.keeper.grant(asked)
        if isinstance(granted, Refusal):
            self.attempts.failed(client)
            return _answer(granted.status, {"error": granted.message})
        return _answer(200, {"token": granted.token, "expires": granted.expires})


def gate_for(s: Settings) -> Gate | None:
    """The gate PRIVATE=true asks for, or None for a public stream."""
    if not s.private:
        return None
    keys = Keys(s.private_secret, s.private_passphrase, s.private_token_life)
    edge = edge_tokens(s, edge_prefix(s.first_bucket.public_url, s.r2_key_prefix))
    return Gate(Gatekeeper(keys, InvitesFile(s.invites_file)), edge)
