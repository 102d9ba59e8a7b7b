"""Viewer tokens let in again by their exact bytes, unjudged (the quick answers, http/quick.py): one dict
lookup for as long as the verdict cannot change, until the token or its invite ends or the invites file
changes. Only tokens let in are remembered, at most KEPT: a flood of bogus tokens never grows this.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from .invites import LOOK_EVERY

KEPT = 4096  # tokens remembered at once (one a viewer)


class Judge(Protocol):
    def lets_in(self, text: str) -> float | None: ...

    def invites_version(self) -> int: ...


class AdmittedTokens:
    """`admits`, a bound method the quick answers call (no __call__ slot to look up)."""

    def __init__(self, judge: Judge, clock: Callable[[], float] = time.monotonic, kept: int = KEPT) -> None:
        self._judge = judge
        self._clock = clock
        self._kept = kept
        self._until: dict[bytes, float] = {}  # token -> until when it is let in unjudged
        self._version = judge.invites_version()  # of the invites what is remembered was judged by
        self._next_look = clock() + LOOK_EVERY

    def __len__(self) -> int:
        return len(self._until)

    def admits(self, token: bytes) -> bool:
        now = self._clock()
        if now >= self._next_look:
            self._look(now)
        if self._until.get(token, now) > now:
            return True
        try:
            left = self._judge.lets_in(token.decode("ascii"))
        except UnicodeDecodeError:
            return False
        if left is None:
            return False
        if len(self._until) >= self._kept:  # a crowd's worth: forget them all, they are judged again
            self._until.clear()
        self._until[token] = now + left
        return True

    def _look(self, now: float) -> None:
        self._next_look = now + LOOK_EVERY
        version = self._judge.invites_version()
        if version != self._version:  # an invite changed: every verdict is asked again
            self._version = version
            self._until.clear()
