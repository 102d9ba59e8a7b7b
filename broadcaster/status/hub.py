"""Server-Sent Events for GET /live/events: one event per segment listed and per stream state change.

Each event is encoded once into a bounded ring of frames with increasing ids; every stream writes the
frames after the last id it sent and sleeps on one shared asyncio.Event: no queue or task per subscriber.
Frames: `retry: 1000`; `segment` {variant, media_sequence, duration, url}; `state` {state, detail};
`reset` {last_event_id, first_id} when a Last-Event-ID is no longer in the ring (its `id` is where the
stream resumes); the current state without an `id` for a new or reset stream; `: ping` after 15 s quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping

from ..source.owncast import SourceSegment
from ..source.tasks import cancelled
from .assessment import Assessment
from .stream import Event, StreamState

log = logging.getLogger(__name__)

# Events kept for Last-Event-ID resume (about 6 KB): one further behind gets a reset, not minutes of history.
RING_SIZE = 64
# Open streams at once when none is given (the service derives its cap from the file-handle budget).
MAX_STREAMS = 1000
PING_INTERVAL = 15.0  # cloudflared and most proxies drop a connection idle for 30 s or more
RETRY_MS = 1000  # EventSource's reconnect delay
# A client that takes this long to accept one write is gone (or hostile): its slot is freed.
WRITE_TIMEOUT = 30.0
STATUS_INTERVAL = 1.0  # how often the StatusWatcher assesses the stream

Assess = Callable[[], Assessment]
Write = Callable[[bytes], Awaitable[None]]

_EVENT_NAME = re.compile(r"[a-z][a-z_]*")  # no newline or colon can break a frame
_PING = b": ping\n\n"


def _data(data: Mapping[str, object]) -> str:
    return json.dumps(data, separators=(",", ":"))  # one ASCII line: no newline ends the field early


class EventHub:
    """Encodes each event once and streams it; ids start at the wall clock in ms (none reused)."""

    def __init__(self, *, ring_size: int = RING_SIZE, max_streams: int = MAX_STREAMS,
                 ping_interval: float = PING_INTERVAL, write_timeout: float = WRITE_TIMEOUT,
                 clock: Callable[[], float] = time.time,
                 on_refused: Callable[[], None] | None = None) -> None:
        if ring_size < 1 or max_streams < 0 or ping_interval <= 0 or write_timeout <= 0:
            raise ValueError("ring_size >= 1, max_streams >= 0, ping_interval and write_timeout > 0")
        self.max_streams = max_streams
        self.on_refused = on_refused  # called per stream refused at the cap (a metric)
        self.ping_interval = ping_interval
        self.write_timeout = write_timeout
        self._next_id = int(clock() * 1000)
        self._ring: deque[tuple[int, bytes]] = deque(maxlen=ring_size)
        self._changed = asyncio.Event()
        self.closed = False
        self.streams = 0  # open /live/events responses
        self._state: tuple[int, bytes] | None = None  # the last state event: (id, frame without id)

    def emit(self, event: str, data: Mapping[str, object]) -> int:
        """Adds one event to the ring, wakes every stream, and returns its id."""
        if not _EVENT_NAME.fullmatch(event):
            raise ValueError(f"bad event name {event!r}")
        event_id = self._next_id
        self._next_id += 1
        body = f"event: {event}\ndata: {_data(data)}\n\n".encode()
        self._ring.append((event_id, f"id: {event_id}\n".encode() + body))
        if event == "state":
            self._state = (event_id, body)
        # Wake the streams waiting now, and arm a fresh event for the next emit.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return event_id

    def segment_listed(self, variant: int, media_sequence: int, duration: float, url: str) -> int:
        seconds: float | None = round(duration, 6) if math.isfinite(duration) else None
        return self.emit(
            "segment", {"variant": variant, "media_sequence": media_sequence, "duration": seconds, "url": url}
        )

    def listed(self, variant: int, media_sequence: int, segment: SourceSegment, url: str) -> None:
        """The Release's listing outlet (publish/release.py ListedHook)."""
        self.segment_listed(variant, media_sequence, segment.duration, url)

    def state_changed(self, state: Event, detail: str) -> int:
        return self.emit("state", {"state": state, "detail": detail})

    @property
    def last_id(self) -> int:
        return self._next_id - 1

    def close(self) -> None:
        """Ends every open stream at its next turn of the loop; new ones get 503."""
        self.closed = True
        self._changed.set()

    def _oldest(self) -> int:
        return self._ring[0][0] if self._ring else self._next_id

    def _start(self, last_id: int | None) -> tuple[list[bytes], int]:
        head = [f"retry: {RETRY_MS}\n\n".encode()]
        oldest = self._oldest()
        if last_id is None:
            if self._state is not None:
                head.append(self._state[1])
            return head, self.last_id
        if oldest - 1 <= last_id <= self.last_id:
            return head, last_id  # a plain resume: the ring holds everything after last_id
        return head + self._reset(last_id), oldest - 1

    def _reset(self, last_id: int) -> list[bytes]:
        oldest = self._oldest()
        frames = [
            f"id: {oldest - 1}\nevent: reset\ndata: {_data({'last_event_id': last_id, 'first_id': oldest})}\n\n"
            .encode()
        ]
        # The current state, unless a state event in the ring that follows will say it anyway.
        if self._state is not None and self._state[0] < oldest:
            frames.append(self._state[1])
        return frames

    def _after(self, sent: int) -> tuple[list[bytes], int]:
        """Every ring frame after id `sent` (a reset first if some are gone), and the new `sent`."""
        if sent >= self.last_id:
            return [], sent
        oldest = self._oldest()
        frames: list[bytes] = []
        if sent < oldest - 1:  # this stream wrote too slowly and the ring moved on without it
            frames = self._reset(sent)
            sent = oldest - 1
        # Ids in the ring are consecutive, so the first frame to send is at a known position.
        frames += (frame for _id, frame in itertools.islice(self._ring, sent - oldest + 1, None))
        return frames, self.last_id

    async def stream(self, write: Write, last_id: int | None) -> None:
        """Writes frames until close(); ConnectionError when the client is gone, StalledClient when stuck."""
        frames, sent = self._start(last_id)
        await self._write(write, b"".join(frames))
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while not self.closed:
            frames, sent = self._after(sent)
            if frames:
                await self._write(write, b"".join(frames))
                quiet_since = loop.time()
                continue  # more may have been published while this write waited
            changed = self._changed
            try:
                # A timer handle, not a task: waiting costs no more than the shared Event.
                async with asyncio.timeout_at(quiet_since + self.ping_interval):
                    await changed.wait()
            except TimeoutError:
                await self._write(write, _PING)
                quiet_since = loop.time()

    @contextlib.contextmanager
    def counted_stream(self) -> Iterator[None]:
        """Holds one of the max_streams slots (taken before the response's first await: no crowd passes)."""
        self.streams += 1
        try:
            yield
        finally:
            self.streams -= 1

    async def _write(self, write: Write, data: bytes) -> None:
        try:
            async with asyncio.timeout(self.write_timeout):
                await write(data)
        except TimeoutError:
            raise StalledClient() from None


class StalledClient(Exception):
    """The client accepted nothing for WRITE_TIMEOUT seconds."""


class StatusWatcher:
    """Reads an Assessment every `interval` seconds; a change of the dashboard's state is a `state` event."""

    def __init__(self, hub: EventHub, assess: Assess, *, interval: float = STATUS_INTERVAL) -> None:
        self._hub = hub
        self._assess = assess
        self._interval = interval
        self._stream: StreamState | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None

    @property
    def state(self) -> Event | None:
        return None if self._stream is None else self._stream.event

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="status-events")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancelled(task)

    def check(self) -> None:
        try:
            reading = self._assess()
        except Exception as err:  # one bad reading: say so once, keep watching
            if repr(err) != self._last_error:
                self._last_error = repr(err)
                log.warning("assessing the stream failed, state events paused: %r", err)
            return
        self._last_error = None
        self._set_state(reading.state, reading.detail)

    def _set_state(self, state: StreamState, detail: str) -> None:
        """idle -> ended is a transition, logged, but offline both times: no event."""
        before, self._stream = self._stream, state
        if state is before:
            return
        log.info("stream state: %s (%s)", state.value, detail)
        if before is None or state.event != before.event:
            self._hub.state_changed(state.event, detail)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            self.check()
            next_at = max(next_at + self._interval, loop.time())  # no drift, no burst after a stall
            await asyncio.sleep(next_at - loop.time())
