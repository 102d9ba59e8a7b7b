"""Viewer tokens let in again for a moment by their exact bytes: the judgement of the quick answers.

A private stream's media playlist requests are answered before aiohttp (http/quick.py) with the token
their URL or Authorization header carries, still bytes. A token the Gatekeeper let in is remembered by
those bytes for REMEMBERED seconds and let in again by one dict lookup: no decoding, no HMAC, no invites
file. The Gatekeeper looks at the invites file every LOOK_EVERY seconds, so an expiry or a revoked
invite takes effect here within REMEMBERED + LOOK_EVERY = one second, as the design asks.

Only tokens let in are remembered, and at most KEPT at once (then all are forgotten and judged again):
a flood of bogus tokens costs what the Gatekeeper's refusal costs and never grows this.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from .grants import Refusal
from .invites import LOOK_EVERY

REMEMBERED = 1.0 - LOOK_EVERY  # seconds a token let in is let in again unjudged
KEPT = 4096  # tokens remembered at once (one a viewer)


class Judge(Protocol):
    def admit(self, text: str | None) -> Refusal | None: ...


class AdmittedTokens:
    """`admits`, a bound method the quick answers call (one Python frame: no __call__ slot to look up)."""

    def __init__(self, judge: Judge, clock: Callable[[], float] = time.monotonic, kept: int = KEPT) -> None:
        self._judge = judge
        self._clock = clock
        self._kept = kept
        self._until: dict[bytes, float] = {}  # token -> until when it is let in unjudged

    def __len__(self) -> int:
        return len(self._until)

    def admits(self, token: bytes) -> bool:
        """Whether a request carrying `token` (its raw bytes) may in."""
        now = self._clock()
        if self._until.get(token, now) > now:
            return True
        try:
            text = token.decode("ascii")
        except UnicodeDecodeError:
            return False
        if self._judge.admit(text) is not None:
            return False
        if len(self._until) >= self._kept:  # a crowd's worth: forget them all, they are judged again
            self._until.clear()
        self._until[token] = now + REMEMBERED
        return True
