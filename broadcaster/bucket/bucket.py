"""Bucket: one bucket pathway's parts, the same code for every bucket (the first, R2, and any other
PATHWAYS names, e.g. a second bucket at another provider): its S3 client on a thread of its own
(store_thread.py), its uploads (uploader.py: retries, the held bytes, its landings told to the holder),
its own checks of its API (checks.py), its cleaner (cleaner.py), and its metrics, the buckets' families
with its `pathway` label (metrics.BucketMetrics). What only the first bucket does (playlist copies,
recordings, clips) the service builds beside its first Bucket.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from ..metrics import BucketMetrics, Metrics
from ..settings import BucketSettings
from .checks import BucketChecks
from .cleaner import Cleaner
from .store import S3Store, StoreError
from .store_thread import StoreThread
from .uploader import Holder, Uploader

log = logging.getLogger(__name__)


class Bucket:
    """`settings`: this bucket's record; `holder`: what the service holds of each segment (every bucket's
    upload sends that version); `cleans`: delete its segments once no playlist may list them;
    `uploads_pending`: copies still to upload (they prove the bucket while they go); `refused`: whether
    an error's reason is a refusal (steering/policy.py's refusal)."""

    def __init__(self, settings: BucketSettings, metrics: Metrics, *, concurrency: int, timeout: float,
                 holder: Holder | None = None, cleans: bool = False, cleanup_margin: float = 0.0,
                 uploads_pending: Callable[[], int] = lambda: 0,
                 refused: Callable[[str], bool] = lambda reason: True) -> None:
        self.settings = settings
        self.pathway = settings.pathway
        self.metrics = BucketMetrics(metrics, settings.pathway)
        self.store = StoreThread(S3Store(
            endpoint_url=settings.endpoint_url, region=settings.region, access_key=settings.access_key_id,
            secret_key=settings.secret_access_key, bucket=settings.bucket, max_connections=concurrency,
            read_timeout=timeout))
        self.uploader = Uploader(self.store, self.metrics, concurrency=concurrency, attempt_timeout=timeout,
                                 holder=holder, pathway=settings.pathway)
        self.checks = BucketChecks(self.store, self.uploader, timeout=timeout, uploads_pending=uploads_pending,
                                   refused=refused)
        self.cleaner = Cleaner(self.store, self.metrics, margin=cleanup_margin) if cleans else None

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

    def refusal_line(self, err: StoreError) -> str:
        """The one line a refusal of its settings at start-up gives (the service does not start)."""
        setting = self.settings.setting(err.setting or "")
        return f"{self.name} refused us ({err.reason}): check {setting}"

    async def start(self, stack: contextlib.AsyncExitStack) -> str | None:
        """Its client, its check at start and its cleaner, each stop entered on `stack`. A line naming the
        setting when it refuses our settings (the service does not start then); merely unreachable, it
        starts, and its uploads wait for it."""
        await self.store.start()
        stack.push_async_callback(self.store.close)
        refused = await self.checks.at_start()
        if refused is not None:
            return self.refusal_line(refused)
        if self.cleaner is not None:
            await self.cleaner.start()
            stack.push_async_callback(self.cleaner.stop)
        if not self.settings.first:
            log.info("%s at %s takes every segment too: viewers fetch them at %s", self.name,
                     self.settings.endpoint_url, self.settings.public_url)
        return None
