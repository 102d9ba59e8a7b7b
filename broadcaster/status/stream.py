"""The stream's state as one type, changed in one place.

/health's "stream" field and the `state` events on /live/events are both views of StreamState:

    state      /health "stream"   SSE state
    IDLE       idle               offline
    LIVE       live               online
    DEGRADED   live               degraded
    ENDED      ended              offline

StreamStatus holds the current state; its `set` is the one transition point: it logs each change
and tells every subscriber (as aiortc's RTCDtlsTransport does with its State and `_set_state`).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Literal

log = logging.getLogger(__name__)

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

    def detail(self, status: str) -> str:
        """The SSE event's detail: /health's "status" while live, else the stream's phase."""
        return status if self.stream == "live" else self.stream


Subscriber = Callable[[StreamState, str], None]


class StreamStatus:
    """The current StreamState, and the one place it changes."""

    def __init__(self) -> None:
        self._state: StreamState | None = None
        self._subscribers: list[Subscriber] = []

    @property
    def state(self) -> StreamState | None:
        """None before the first reading."""
        return self._state

    def subscribe(self, subscriber: Subscriber) -> None:
        """`subscriber(state, detail)` is called on every transition, in the order subscribed."""
        self._subscribers.append(subscriber)

    def set(self, state: StreamState, detail: str) -> None:
        """The transition point: a new state is logged and told to every subscriber. The same state
        with another detail (another degraded reason) is no transition."""
        if state is self._state:
            return
        log.info("stream state: %s (%s)", state.value, detail)
        self._state = state
        for subscriber in self._subscribers:
            subscriber(state, detail)
