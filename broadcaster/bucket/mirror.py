"""Every playlist version also written to the bucket (PUBLISH_PLAYLISTS): one PUT in flight a key, the newest
version wins, writes to a key MIN_WRITE_INTERVAL apart (R2 answers 429 past one a second), and the
multivariant playlist only once each media playlist it names was written."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..lograte import RateLimitedLog
from ..metrics import Metrics
from ..playlist import hls
from ..playlist.rendered import Rendered
from .store import within
from .uploader import Backoff, ObjectStore

log = logging.getLogger(__name__)

_BACKOFF = Backoff(base=0.5, cap=5.0)  # a key's retries while the bucket fails it
MIN_WRITE_INTERVAL = 1.1  # above a second: two PUTs to a key never land in the same second


@dataclass(slots=True)
class _Key:
    latest: Rendered | None = None
    cache_control: str = ""
    offered_at: float = 0.0  # monotonic, when `latest` was offered
    written: Rendered | None = None
    requires: tuple[str, ...] = ()
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    last_put: float | None = None  # monotonic, when the last PUT to this key started


class PlaylistMirror:
    def __init__(self, store: ObjectStore, metrics: Metrics, *, attempt_timeout: float,
                 monotonic: Callable[[], float] = time.monotonic, min_interval: float = MIN_WRITE_INTERVAL,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._store = store
        self._metrics = metrics
        self._timeout = attempt_timeout
        self._mono = monotonic
        self._min_interval = min_interval
        self._sleep = sleep
        self._keys: dict[str, _Key] = {}
        self._written_once = asyncio.Event()  # set whenever a key is written for the first time
        self._current = asyncio.Event()  # set while every offered version is written
        self._current.set()
        self._closed = False
        self._failing: str | None = None  # the last failure's reason, until a write succeeds
        self._lines = RateLimitedLog(log)

    def offer(self, key: str, rendered: Rendered, cache_control: str, *, requires: tuple[str, ...] = ()) -> None:
        """Write `rendered` to `key` soon; a newer offer for the same key replaces it if not started."""
        if self._closed:
            return
        if (k := self._keys.get(key)) is None:
            k = self._keys[key] = _Key()
        if k.latest is rendered or (k.latest is None and k.written is rendered):
            return
        k.latest, k.cache_control, k.requires = rendered, cache_control, requires
        k.offered_at = self._mono()
        self._current.clear()
        k.wake.set()
        if k.task is None:
            k.task = asyncio.create_task(self._writer(key, k), name=f"mirror {key}")

    def written(self, key: str) -> Rendered | None:
        return k.written if (k := self._keys.get(key)) else None

    @property
    def lag(self) -> float:
        """Seconds the oldest unwritten version has waited (0: the bucket has every version)."""
        now = self._mono()
        return max((now - k.offered_at for k in self._keys.values() if k.latest is not None), default=0.0)

    async def _writer(self, key: str, k: _Key) -> None:
        failures = 0
        while True:
            await k.wake.wait()
            k.wake.clear()
            while not all(self.written(r) is not None for r in k.requires):
                self._written_once.clear()
                await self._written_once.wait()
            if k.last_put is not None and (wait := k.last_put + self._min_interval - self._mono()) > 0:
                await self._sleep(wait)  # offers meanwhile replace k.latest: only the newest is written
            if (rendered := k.latest) is None:
                continue
            k.last_put = self._mono()
            put = self._store.put(key, rendered.body, content_type=hls.PLAYLIST_CONTENT_TYPE,
                                  cache_control=k.cache_control)
            if (failed := await within(put, self._timeout)) is None:
                self._metrics.playlist_uploads.labels(result="ok").inc()
                if self._failing is not None:
                    self._lines.info("back", "playlists are written to the bucket again")
                    self._failing = None
                failures = 0
                first = k.written is None
                k.written = rendered
                if k.latest is rendered:
                    k.latest = None
                if first:
                    self._written_once.set()
                if all(other.latest is None for other in self._keys.values()):
                    self._current.set()
            else:
                self._failing = reason = failed.reason
                self._metrics.playlist_uploads.labels(result="failed").inc()
                log.debug("writing playlist %s to the bucket failed: %s", key, reason)
                self._lines.warning("failing", "cannot write playlist %s to the bucket (%s); retrying with "
                                    "the newest version", key, reason)
                failures += 1
                k.wake.set()  # try again: with the newest version by then
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_BACKOFF.delay(failures - 1)):
                        await self._written_once.wait()  # another key got through: the bucket is back
            self._metrics.playlist_upload_lag.set(round(self.lag, 3))

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` until every offered version is written; True when it is."""
        try:
            async with asyncio.timeout(timeout):
                await self._current.wait()
        except TimeoutError:
            return False
        return True

    def health_reason(self, limit: float) -> str | None:
        lag = self.lag
        return f"playlists in the bucket {lag:.0f}s behind ({self._failing})" if lag > limit else None

    async def close(self) -> None:
        self._closed = True
        tasks = [k.task for k in self._keys.values() if k.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
