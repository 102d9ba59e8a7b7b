"""POST /live/access: a viewer token for `{"passphrase": ...}`, `{"invite": ...}` or `{"token": ...}`:
200 `{"token", "expires"}`, or `{"error": ...}` with 400, 403 or 429. Each failure costs the client one of
its attempts a minute (`Attempts`; unknown clients share a larger bucket); none left refuses everything."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

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
