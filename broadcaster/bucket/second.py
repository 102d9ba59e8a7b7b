"""A second bucket (PATHWAYS names backup; BACKUP_* settings), wired: its store on a loop of its own (as
the first's, store_thread.py), its uploads fed with the VM's copies, its cleaner, its playlists and its
probe (steering/backup.py), started and stopped as one part of the service."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..metrics import Metrics
from ..playlist import hls
from ..playlist.segments import Removed
from ..settings import Settings
from ..steering.backup import BackupPlaylists, BackupProbe, BackupUploads, KeptCopies, Teed
from ..steering.policy import SteeringPolicy
from . import second_check
from .cleaner import Cleaner
from .store import S3Store
from .store_thread import StoreThread

log = logging.getLogger(__name__)


class SecondBucket:
    """`teed`: the uploader's keeper (each copy the VM keeps goes to the second bucket too); `playlists`:
    its pathway's media playlists; `signals`: what the policy reads of it."""

    def __init__(self, s: Settings, copies: KeptCopies, target_duration: Callable[[], int | None], *,
                 cleans: bool, registry: CollectorRegistry | None = None) -> None:
        """`cleans`: its segments are deleted when the first bucket's are (DELETE_OLD_SEGMENTS): its own
        Cleaner, with a Metrics of its own (not exported), saved with the state under "backup_cleaner"
        (state/snapshots.register_parts), so a restart deletes what was due there at the stop."""
        self._settings = s
        self.store = StoreThread(S3Store(
            endpoint_url=s.backup_s3_endpoint_url, region=s.backup_s3_region, access_key=s.backup_access_key_id,
            secret_key=s.backup_secret_access_key, bucket=s.backup_bucket_name,
            max_connections=s.upload_concurrency, read_timeout=s.upload_timeout))
        self.uploads = BackupUploads(self.store, copies, concurrency=s.upload_concurrency,
                                     attempt_timeout=s.upload_timeout)
        self.teed = Teed(copies, self.uploads)
        self.cleaner = Cleaner(self.store, Metrics(), margin=s.cleanup_margin) if cleans else None
        self.playlists = BackupPlaylists(self.uploads, functools.partial(hls.object_key, s.r2_key_prefix),
                                         s.backup_public_url, target_duration)
        self.signals = self.uploads.signals()
        if registry is not None:
            registry.register(BackupMetrics(self.uploads))

    @classmethod
    def of(cls, s: Settings, copies: KeptCopies | None, target_duration: Callable[[], int | None],
           registry: CollectorRegistry) -> SecondBucket | None:
        if hls.BACKUP_PATHWAY not in s.pathways or copies is None:
            return None
        return cls(s, copies, target_duration, cleans=s.delete_old_segments and not s.keep_recordings,
                   registry=registry)

    def removed(self, removed: list[Removed]) -> None:
        if self.cleaner is not None:
            self.cleaner.schedule(removed)

    async def start(self, stack: contextlib.AsyncExitStack, policy: SteeringPolicy | None) -> str | None:
        """A line naming the BACKUP_ setting the second bucket refused (the service does not start then);
        unreachable, it does not stop the start: its pathway stays behind until uploads land. `policy` is
        told what its probe finds."""
        await self.store.start()
        stack.push_async_callback(self.store.close)
        wrong = await second_check.refused(self._settings, self.store)
        if wrong is not None:
            return wrong
        stack.push_async_callback(self.uploads.close)  # before the store closes
        self.uploads.start()  # the restored window's look-ups, held until the store runs
        self.teed.bind(asyncio.get_running_loop())
        if self.cleaner is not None:
            await self.cleaner.start()
            stack.push_async_callback(self.cleaner.stop)
        if policy is not None:
            probe = BackupProbe(policy, self.playlists)
            await probe.start()
            stack.push_async_callback(probe.stop)
        s = self._settings
        log.info("a second bucket, %s at %s, is the backup pathway: viewers fetch its segments at %s",
                 s.backup_bucket_name, s.backup_s3_endpoint_url, s.backup_public_url)
        return None


class BackupMetrics(Collector):
    """The second bucket's uploads, read when scraped (labels: a fixed set of outcomes)."""

    def __init__(self, uploads: BackupUploads) -> None:
        self._uploads = uploads

    def describe(self) -> list[Metric]:
        return self.collect()

    def collect(self) -> list[Metric]:
        u = self._uploads
        outcomes = CounterMetricFamily("hls_broadcaster_backup_uploads", "Uploads to the second bucket (backup "
                                       "pathway): landed, failed attempts (retried), given up (the VM's copy "
                                       "was gone)", labels=("outcome",))
        outcomes.add_metric(("landed",), u.landed)
        outcomes.add_metric(("failed",), u.failed_attempts)
        outcomes.add_metric(("given_up",), u.given_up)
        return [
            outcomes,
            GaugeMetricFamily("hls_broadcaster_backup_storage_up", "1 while the last upload to the second bucket "
                              "landed (1 before the first)", value=int(u.ok is not False)),
            GaugeMetricFamily("hls_broadcaster_backup_behind_seconds", "How long the oldest upload to the second "
                              "bucket not landed yet has waited", value=u.behind()),
            CounterMetricFamily("hls_broadcaster_backup_bytes", "Segment bytes uploaded to the second bucket",
                                value=u.bytes),
        ]
