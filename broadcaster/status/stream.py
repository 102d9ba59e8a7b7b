"""The stream's state as one type, changed in one place.

/health's "stream" field and the `state` events on /live/events are both views of StreamState:

    state      /health "stream"   SSE state
    IDLE       idle               offline
    LIVE       live               online
    DEGRADED   live               degraded
    ENDED      ended              offline

hub.py's StatusWatcher holds the current one (its _set_state: each transition logged).
"""

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
        """From the stream's phase ("idle", "live" or "ended") and whether every check passes."""
        if stream == "live":
            return cls.LIVE if ok else cls.DEGRADED
        return cls.ENDED if stream == "ended" else cls.IDLE

    @property
    def stream(self) -> str:
        """/health's "stream": idle, live or ended (a degraded stream is still live)."""
        return "live" if self is StreamState.DEGRADED else self.value

    @property
    def event(self) -> Event:
        """The SSE state: a dashboard cares whether it can watch, not why it cannot."""
        if self is StreamState.LIVE:
            return "online"
        return "degraded" if self is StreamState.DEGRADED else "offline"
