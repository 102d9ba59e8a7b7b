"""Viewer tokens let in again by their exact bytes, unjudged: the judgement of the quick answers.

A private stream's media playlist requests are answered before aiohttp (http/quick.py) with the token
their URL or Authorization header carries, still bytes. A token the Gatekeeper let in is remembered by
those bytes and let in again by one dict lookup (no decoding, no HMAC, no invites file) for as long as
its verdict cannot change: a pass-phrase's token until it ends (its end is all that can change it: a
player's every reload is then a lookup, however seldom it reloads), an invite's for REMEMBERED seconds
at most, as the invite may be revoked. The Gatekeeper looks at the invites file every LOOK_EVERY
seconds, so a revoked invite is refused here within REMEMBERED + LOOK_EVERY = one second, and an ended
token at its end (the remembered time runs on this monotonic clock: were the wall clock stepped while a
token lives, its end moves by the step here).

Only tokens let in are remembered, and at most KEPT at once (then all are forgotten and judged again):
a flood of bogus tokens costs what the Gatekeeper's refusal costs and never grows this.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from .invites import LOOK_EVERY

REMEMBERED = 1.0 - LOOK_EVERY  # seconds an invite's token is let in again unjudged
KEPT = 4096  # tokens remembered at once (one a viewer)


class Judge(Protocol):
    def lets_in(self, text: str) -> tuple[float, bool] | None: ...


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
            verdict = self._judge.lets_in(token.decode("ascii"))
        except UnicodeDecodeError:
            return False
        if verdict is None:
            return False
        left, invited = verdict
        if len(self._until) >= self._kept:  # a crowd's worth: forget them all, they are judged again
            self._until.clear()
        self._until[token] = now + (min(left, REMEMBERED) if invited else left)
        return True
