"""POST /live/access: a viewer token for a pass-phrase, an invite link's token, or a token to renew
(design: `{"passphrase": ...}` | `{"invite": ...}` | `{"token": ...}` -> 200 `{"token", "expires"}`, or
`{"error": "<what to tell the viewer>"}` with 400, 403 or 429). Each failed attempt costs the client one
of its attempts a minute (attempts.py). Nothing about the stream is said either way.
"""

from __future__ import annotations

import json

from aiohttp import hdrs, web

from ..access.grants import Gatekeeper, Refusal
from ..edge import NO_STORE, edge_headers
from .attempts import Attempts
from .clients import Proxies, client_address

TOO_MANY = "too many attempts: wait a minute and try again"


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
