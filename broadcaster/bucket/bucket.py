"""One bucket pathway's parts: its client, uploads, checks, cleaner and metrics (labelled with its
`pathway`). Its API is checked at start, every PROBE_INTERVAL while no upload proves it, and when the
steering probe asks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from ..metrics import BucketMetrics, Metrics
from ..settings import BucketSettings, Settings
from .cleaner import Cleaner
from .store import BucketAccess, S3Store, within
from .store_thread import StoreThread
from .uploader import Holder, Uploader

log = logging.getLogger(__name__)

PROBE_INTERVAL = 15.0  # seconds between bucket checks while no upload proves the bucket works
PROBE_INTERVAL_DOWN = 2.0  # while it is down: uploads waiting out a backoff go as soon as it is back


class Bucket:
    """`uploads_pending`: copies still to upload (they prove the bucket); `refused`: steering/policy.py's."""

    def __init__(self, settings: BucketSettings, s: Settings, metrics: Metrics, *,
                 holder: Holder | None = None, uploads_pending: Callable[[], int] = lambda: 0,
                 refused: Callable[[str], bool] = lambda reason: True) -> None:
        self.settings = settings
        self.pathway = settings.pathway
        self.metrics = BucketMetrics(metrics, settings.pathway)
        timeout, concurrency = s.upload_timeout, s.upload_concurrency
        self.store = StoreThread(S3Store(BucketAccess.of(settings), max_connections=concurrency,
                                         read_timeout=timeout))
        self.uploader = Uploader(self.store, self.metrics, concurrency=concurrency, attempt_timeout=timeout,
                                 holder=holder, pathway=settings.pathway)
        self._timeout = timeout
        self._pending = uploads_pending
        self._refused = refused
        cleans = s.delete_old_segments and not s.keep_recordings  # kept streams are never cleaned up
        self.cleaner = Cleaner(self.store, self.metrics, margin=s.cleanup_margin) if cleans else None

    @property
    def name(self) -> str:
        """How the log and /health name it."""
        return f"bucket {self.settings.bucket!r}" if self.settings.first else \
            f"the {self.pathway} pathway's bucket {self.settings.bucket!r}"

    def behind(self) -> float:
        """Seconds the oldest upload to it not landed yet has waited (0: none waits)."""
        return self.uploader.waiting()[1] or 0.0

    def outcome(self) -> tuple[bool | None, str | None]:
        """Its last upload attempt's (ok, None before the first; why it failed)."""
        return self.uploader.storage_ok, self.uploader.last_error

    def left_behind(self, key: str) -> None:
        """An object of ours that may be left in it: its cleaner deletes it, else the log asks."""
        if self.cleaner is not None:
            self.cleaner.delete_soon(key)
        else:
            log.warning("%s may hold the start check's object %s (its delete failed, or its upload timed out "
                        "and may land late): delete it by hand", self.name, key)

    async def start(self, stack: contextlib.AsyncExitStack) -> str | None:
        """Its client, check and cleaner, stops on `stack`; a line naming the setting when it refuses us."""
        await self.store.start()
        stack.push_async_callback(self.store.close)
        if (err := await within(self.store.probe(), self._timeout)) is not None and err.setting is not None:
            return f"{self.name} refused us ({err.reason}): check {self.settings.setting(err.setting)}"
        self.uploader.record(err is None, None if err is None else err.reason)  # its outage log tells, once
        if self.cleaner is not None:
            await self.cleaner.start()
            stack.push_async_callback(self.cleaner.stop)
        if not self.settings.first:
            log.info("%s at %s takes every segment too: viewers fetch them at %s", self.name,
                     self.settings.endpoint_url, self.settings.public_url)
        return None

    async def check_writes(self) -> None:
        """Asked by the steering probe: only a refusal is recorded (the uploads tell of the rest)."""
        if (err := await within(self.store.probe(), self._timeout)) is not None and self._refused(err.reason):
            self.uploader.record(False, err.reason)

    async def run_checks(self) -> None:
        """Until cancelled: a check while no upload proves the bucket; what an upload told meanwhile wins."""
        uploader = self.uploader
        while True:
            await asyncio.sleep(PROBE_INTERVAL_DOWN if uploader.storage_ok is False else PROBE_INTERVAL)
            before = uploader.uploads_done
            if uploader.storage_ok and self._pending():
                continue  # uploads are proving it right now
            if (err := await within(self.store.probe(), self._timeout)) is None:
                uploader.record(True)
            elif uploader.uploads_done == before:
                uploader.record(False, err.reason)
