"""A segment file written again after its upload is followed and uploaded again once finished, if its
bytes changed: the bucket ends with the file's final bytes (docs/how-it-works.md, "A reopened file is one
write")."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from ..bucket.uploader import SegmentLost, Uploaded
from ..files import Refused, Stamp, look_beneath, stamp_beneath
from ..metrics import Metrics
from ..source import leases
from .slots import Copy, succeeded

log = logging.getLogger(__name__)

REMEMBERED = 4096  # uploads remembered: every segment of every variant for well over Owncast's cleanup

# Uploads `path` under `key` once finished again, if its bytes changed (uploads.Uploads.rewritten).
Upload = Callable[[int, Path, str, Uploaded], Awaitable[Uploaded]]


@dataclass(slots=True)
class _Landed:
    index: int
    key: str
    done: Uploaded  # the version in the bucket: its file's stamp, its bytes' SHA-256


class Rewrites:
    def __init__(self, hls_dir: Path, upload: Upload, metrics: Metrics) -> None:
        self._root = hls_dir
        self._upload = upload
        self._metrics = metrics
        self._landed: OrderedDict[Path, _Landed] = OrderedDict()
        self._following: dict[Path, asyncio.Task[Uploaded]] = {}

    def landed(self, index: int, path: Path, key: str, done: Uploaded) -> None:
        if done.stamp is None or done.sha256 is None:
            return  # nothing to compare a later version with
        self._landed[path] = _Landed(index, key, done)
        self._landed.move_to_end(path)
        if len(self._landed) > REMEMBERED:
            self._landed.popitem(last=False)

    def heard(self, path: Path | None) -> None:
        """A write to `path` was heard (None: events were lost)."""
        for p in list(self._landed) if path is None else [path]:
            landed = self._landed.get(p)
            if landed is not None and p not in self._following \
                    and not unchanged(self._root, p, landed.done.stamp):
                self._follow(p, landed)

    def stale(self, index: int, copy: Copy) -> asyncio.Task[Uploaded] | None:
        """About to list `copy`: the follow that uploads its final bytes (None: the bucket has them)."""
        task = copy.task
        if not succeeded(task):
            return None  # not uploaded yet (the VM's copy is the bytes read)
        done = task.result()
        if done.stamp is None:
            return None  # uploaded before a restart: its bytes were not at hand here
        path = self._root / str(index) / copy.source.name
        following = self._following.get(path)
        if following is not None:
            return following
        landed = self._landed.get(path) or _Landed(index, copy.key, done)
        if landed.done is done and not self._reopened(path, done.stamp):
            return None
        return self._follow(path, landed)

    def tasks(self) -> list[asyncio.Task[Uploaded]]:
        return list(self._following.values())

    def _reopened(self, path: Path, stamp: Stamp) -> bool:
        """Another version of `path` than `stamp`, or open for writing now (source/leases.py)."""
        try:
            look = look_beneath(self._root, path.relative_to(self._root).parts, leases.writers)
        except (OSError, Refused):
            return False  # not readable now: nothing says it changed
        return look is not None and (look[0] != stamp or look[1] is True)

    def _follow(self, path: Path, landed: _Landed) -> asyncio.Task[Uploaded]:
        task = asyncio.ensure_future(self._upload(landed.index, path, landed.key, landed.done))
        self._following[path] = task
        task.add_done_callback(lambda t: self._followed(path, landed, t))
        return task

    def _followed(self, path: Path, before: _Landed, task: asyncio.Task[Uploaded]) -> None:
        if self._following.get(path) is task:
            del self._following[path]
        if task.cancelled():
            return
        err = task.exception()
        if err is not None:
            if isinstance(err, SegmentLost) and err.reason == "deleted":
                self._landed.pop(path, None)  # Owncast's cleanup: nothing left to follow
            else:
                log.warning("variant %d: %s was written again after its upload: %s", before.index, path.name, err)
            return
        done = task.result()
        self.landed(before.index, path, before.key, done)
        if done.sha256 != before.done.sha256:
            self._metrics.segment_rewrites.labels(variant=str(before.index)).inc()
            log.warning("variant %d: %s was written again after its upload (its writer opened it again after "
                        "closing it); the bucket's object is replaced by its final bytes", before.index, path.name)
        landed = self._landed.get(path)
        if landed is not None and not unchanged(self._root, path, done.stamp):
            self._follow(path, landed)  # written again since the follow's last look: once more


def unchanged(hls_dir: Path, path: Path, read: Stamp | None) -> bool:
    """The file is still the version read (or gone)."""
    if read is None:
        return False  # it changed while it was read
    try:
        now = stamp_beneath(hls_dir, path.relative_to(hls_dir).parts)
    except (OSError, Refused):
        return True  # not readable now: nothing says it changed; the next read would refuse it
    return now is None or now == read
