"""A private stream's edge tokens: one `verify=` value per PRIVATE_EDGE_WINDOW for a path prefix."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from urllib.parse import unquote

from ..edge_token import sign

SKEW = 5  # seconds a token's timestamp may be ahead of this clock (the signer's may run ahead)


class EdgeTokens:
    def __init__(self, key: str, message: str, window: int, ttl: float,
                 clock: Callable[[], float] = time.time) -> None:
        """`message`: the path prefix signed (`/live/`); `ttl`: seconds a token holds from its window."""
        self._key, self.message, self._window, self.ttl, self._clock = key, message, window, ttl, clock
        self._current: tuple[int, str] = (-1, "")

    def current(self) -> str:
        start = int(self._clock()) // self._window * self._window
        if self._current[0] != start:
            self._current = (start, sign(self._key, self.message, start))
        return self._current[1]

    def valid(self, value: str) -> bool:
        """Whether a `verify=` value (URL-encoded or not) is one of ours for this prefix, within its life."""
        ts_text, dash, _ = value.partition("-")
        if not dash or not ts_text.isdigit() or len(ts_text) > 12 or len(value) > 200:
            return False
        ts = int(ts_text)
        now = self._clock()
        if not ts - SKEW <= now < ts + self.ttl:
            return False
        # Compared decoded, as Cloudflare's check URL-decodes it: a client may encode it either way.
        return hmac.compare_digest(unquote(sign(self._key, self.message, ts)).encode(), unquote(value).encode())
