"""UploadRatio: how long segments take to upload against the media they carry (/health, and its gauge)."""

from __future__ import annotations

import asyncio

from ..bucket.uploader import Uploaded
from ..metrics import Metrics
from .slots import succeeded


class UploadRatio:
    """Moving average over ~10 segments of the successful PutObject's time against the media it carries
    (like Owncast's "possible slow uploads"): above 1 the bucket cannot keep up. An outage does not count
    here: it shows as storage unreachable instead."""

    __slots__ = ("value", "_metrics")

    def __init__(self, metrics: Metrics) -> None:
        self.value = 0.0
        self._metrics = metrics

    def learn(self, task: asyncio.Future[Uploaded], duration: float) -> None:
        """A segment of `duration` seconds finished its upload (`task`, done)."""
        if succeeded(task):
            ratio = task.result().took / max(duration, 0.001)
            self.value += (ratio - self.value) * 0.2
            self._metrics.upload_realtime_ratio.set(round(self.value, 3))
