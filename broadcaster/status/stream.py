"""The stream's state as one type: /health's "stream" and the SSE `state` event both view it."""

from __future__ import annotations

import enum
from typing import Literal

Event = Literal["online", "offline", "degraded"]  # the SSE `state` event's "state"


class StreamState(enum.Enum):
    IDLE = "idle"  # no stream seen yet
    LIVE = "live"  # Owncast streams and every check passes
    DEGRADED = "degraded"  # Owncast streams, something is wrong (see /health's "status")
    ENDED = "ended"  # Owncast ended the stream (or went to its offline clip)

    @classmethod
    def of(cls, stream: str, ok: bool) -> StreamState:
        if stream == "live":
            return cls.LIVE if ok else cls.DEGRADED
        return cls.ENDED if stream == "ended" else cls.IDLE

    @property
    def stream(self) -> str:
        return "live" if self is StreamState.DEGRADED else self.value

    @property
    def event(self) -> Event:
        """The SSE state: a dashboard cares whether it can watch, not why it cannot."""
        if self is StreamState.LIVE:
            return "online"
        return "degraded" if self is StreamState.DEGRADED else "offline"
