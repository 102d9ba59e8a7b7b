"""A bucket's API, checked apart from its uploads: once at start (wrong settings stop the start, an
unreachable bucket does not), every PROBE_INTERVAL while no upload proves it works (PROBE_INTERVAL_DOWN
while it is down), and once when the steering probe finds its public URL failing. Each outcome goes to the
uploader's record (its outage log, storage_ok), as an upload's does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from .store import StoreError

PROBE_INTERVAL = 15.0  # seconds between bucket checks while no upload proves the bucket works
PROBE_INTERVAL_DOWN = 2.0  # while it is down: uploads waiting out a backoff go as soon as it is back


class Probed(Protocol):
    async def probe(self) -> None: ...


class Record(Protocol):  # the uploader's
    @property
    def storage_ok(self) -> bool | None: ...

    @property
    def uploads_done(self) -> int: ...

    def record(self, ok: bool, reason: str | None = None) -> None: ...


class BucketChecks:
    """`uploads_pending`: copies still to upload (they prove the bucket while they go); `refused`: whether an
    error's reason is the bucket refusing, not only slow (steering/policy.py's refusal)."""

    def __init__(self, store: Probed, record: Record, *, timeout: float, uploads_pending: Callable[[], int],
                 refused: Callable[[str], bool] = lambda reason: True) -> None:
        self._store = store
        self._record = record
        self._timeout = timeout
        self._pending = uploads_pending
        self._refused = refused

    async def _ask(self) -> StoreError | None:
        """One probe: None when the bucket answered as it should, else why not."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._store.probe()
        except StoreError as err:
            return err
        except TimeoutError:
            return StoreError("Timeout")
        return None

    async def at_start(self) -> StoreError | None:
        """The bucket's error naming a setting (the start must stop), None otherwise: a bucket merely
        unreachable is recorded (its outage log says so, once) and the service starts."""
        err = await self._ask()
        if err is not None and err.setting is not None:
            return err
        self._record.record(err is None, None if err is None else err.reason)
        return None

    async def writes(self) -> None:
        """Asked once by the steering probe: only a refusal is recorded (the uploads tell of the rest, and a
        timeout on a busy machine would make its slow uploads count as failing)."""
        err = await self._ask()
        if err is not None and self._refused(err.reason):
            self._record.record(False, err.reason)

    async def run(self) -> None:
        """Until cancelled: a check while no upload proves the bucket; what an upload told meanwhile wins."""
        while True:
            down = self._record.storage_ok is False
            await asyncio.sleep(PROBE_INTERVAL_DOWN if down else PROBE_INTERVAL)
            before = self._record.uploads_done
            if self._record.storage_ok and self._pending():
                continue  # uploads are proving it right now
            err = await self._ask()
            if err is None:
                self._record.record(True)
            elif self._record.uploads_done == before:
                self._record.record(False, err.reason)
