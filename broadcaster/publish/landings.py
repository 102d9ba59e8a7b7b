"""Landings: per bucket's pathway, the uploads of segments listed before they landed in that bucket.
One that failed for good is listed there as a gap; one that failed on every bucket's pathway exists
nowhere (`settle` says so, and the playlist's owner makes its entry a gap).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from ..playlist.views import GAP, OWN


class Landing(Protocol):
    """An upload not landed yet (an asyncio future, or a restored one waiting for its upload to start)."""

    def done(self) -> bool: ...


class Restored:
    """A restored state's upload not landed: pending until the publisher starts it again."""

    def done(self) -> bool:
        return False


def failed(upload: Landing) -> bool:
    """An upload that ended without landing (an error, not a cancel)."""
    return (isinstance(upload, asyncio.Future) and upload.done() and not upload.cancelled()
            and upload.exception() is not None)


class Landings:
    def __init__(self, buckets: Iterable[str]) -> None:
        self._pending: dict[str, dict[str, Landing]] = {pid: {} for pid in buckets}

    def pend(self, key: str, landings: Mapping[str, Landing]) -> None:
        for pid, upload in landings.items():
            pending = self._pending.get(pid)
            if pending is not None and not upload.done():
                pending[key] = upload

    def restored(self, keys: Mapping[str, Iterable[str]]) -> None:
        """A restored state's uploads not landed, per pathway configured now: pending until `landing`."""
        for pid, pid_keys in keys.items():
            pending = self._pending.get(pid)
            if pending is not None:
                pending.update((key, Restored()) for key in pid_keys)

    def landing(self, pathway: str, key: str, upload: asyncio.Future[Any]) -> None:
        """A pending segment's upload, started again after a restart."""
        pending = self._pending.get(pathway)
        if pending is not None and key in pending:
            pending[key] = upload

    def settle(self, listed: Callable[[], dict[str, bool]]) -> tuple[list[str], list[str]]:
        """Forget the uploads that landed; one failed for good stays (a gap) while listed (`listed`: key ->
        listed as a gap). Returns (the keys landed now, those nowhere now: failed on every bucket's)."""
        landed: list[str] = []
        nowhere: list[str] = []
        gaps: dict[str, bool] | None = None
        for pending in self._pending.values():
            for key, upload in list(pending.items()):
                if not upload.done():
                    continue
                if not failed(upload):
                    del pending[key]
                    landed.append(key)
                    continue
                if gaps is None:
                    gaps = listed()
                gap = gaps.get(key)
                if gap is None:
                    del pending[key]  # a gap that left every playlist
                elif not gap and all((up := other.get(key)) is not None and failed(up)
                                     for other in self._pending.values()):
                    gaps[key] = True
                    nowhere.append(key)
        return landed, nowhere

    @property
    def waiting(self) -> bool:
        return any(self._pending.values())

    def state(self, pathway: str, key: str | None) -> str | None:
        """OWN: landed there (or not a bucket's: the VM holds it); GAP: it never will; None: not yet."""
        pending = self._pending.get(pathway)
        upload = pending.get(key) if key is not None and pending is not None else None
        return OWN if upload is None else GAP if failed(upload) else None

    def landed(self, pathway: str, key: str | None) -> bool:
        return key is not None and self.state(pathway, key) == OWN

    def keys(self) -> dict[str, list[str]]:
        return {pid: sorted(pending) for pid, pending in self._pending.items() if pending}

    def count(self) -> int:
        return len({key for pending in self._pending.values() for key, u in pending.items() if not u.done()})

    def uploads(self) -> list[asyncio.Future[Any]]:
        return [u for pending in self._pending.values() for u in pending.values()
                if isinstance(u, asyncio.Future) and not u.done()]
