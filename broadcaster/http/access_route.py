"""POST /live/access: a viewer token for a pass-phrase, an invite link's token, or a token to renew
(design: `{"passphrase": ...}` | `{"invite": ...}` | `{"token": ...}` -> 200 `{"token", "expires"}`, or
`{"error": "<what to tell the viewer>"}` with 400, 403 or 429). Nothing about the stream is said either way.

Each failed attempt costs the client one of its attempts a minute (`Attempts`: a token bucket per client,
clients.client_address), so a wrong pass-phrase costs and guessing one is slow. A client whose bucket is
empty is refused everything (429) until it refills, the right pass-phrase too: otherwise guessing would
simply go on. Unknown clients (behind the tunnel without TRUST_CF_CONNECTING_IP, every viewer is one)
share one larger bucket. At most MOST_CLIENTS are remembered, the least recently seen forgotten first (a
forgotten client starts full, as a new one).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import hdrs, web

from ..access.grants import Gatekeeper, Refusal
from ..edge import NO_STORE, edge_headers
from .clients import Proxies, client_address

TOO_MANY = "too many attempts: wait a minute and try again"
PER_MINUTE = 6  # failed attempts a client may make a minute, and at once
UNKNOWN_PER_MINUTE = 60  # ... for all the clients the service cannot tell apart
MOST_CLIENTS = 10_000


class Attempts:
    def __init__(self, per_minute: int = PER_MINUTE, unknown_per_minute: int = UNKNOWN_PER_MINUTE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._sizes = (float(per_minute), float(unknown_per_minute))
        self._clock = clock
        self._buckets: OrderedDict[str | None, tuple[float, float]] = OrderedDict()  # client -> (left, when)

    def _left(self, client: str | None) -> float:
        size = self._sizes[client is None]
        left, when = self._buckets.get(client, (size, 0.0))
        now = self._clock()
        return min(size, left + (now - when) * size / 60.0) if client in self._buckets else size

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
    return web.Response(status=status, text=json.dumps(body), content_type="application/json",
                        headers=edge_headers({hdrs.CACHE_CONTROL: NO_STORE}))


class AccessRoute:
    def __init__(self, keeper: Gatekeeper, proxies: Proxies, attempts: Attempts | None = None) -> None:
        self._keeper = keeper
        self._proxies = proxies
        self._attempts = attempts or Attempts()

    async def grant(self, request: web.Request) -> web.Response:
        client = client_address(request, self._proxies)
        if not self._attempts.allowed(client):
            return _answer(429, {"error": TOO_MANY})
        try:
            asked = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            asked = None
        if not isinstance(asked, dict):
            self._attempts.failed(client)
            return _answer(400, {"error": 'send JSON: {"passphrase": "..."} or {"invite": "..."}'})
        granted = self._keeper.grant(asked)
        if isinstance(granted, Refusal):
            self._attempts.failed(client)
            return _answer(granted.status, {"error": granted.message})
        return _answer(200, {"token": granted.token, "expires": granted.expires})
