"""The service's durable memory: one snapshot of every part that registers, saved by one owner.

state.json holds the Publisher's memory at its top level and each other part's under its own key
("cleaner"), the layout older releases wrote. Restoring goes keyed parts first and the top-level
part last; when a part refuses what it reads, every part restored before it is reset, so either all
continue or all start afresh.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from ..metrics import Metrics
from .disk import StateFile
from .validate import describe

log = logging.getLogger(__name__)


class Durable(Protocol):
    def snapshot(self) -> Any:
        """The part's memory, JSON-able."""

    def restore(self, data: Any) -> None:
        """Continue from `snapshot`; raises ValueError (nothing changed) when it does not add up."""


class Snapshots:
    def __init__(self, file: StateFile | None, metrics: Metrics | None = None) -> None:
        self.file = file
        self._metrics = metrics
        self._root: Durable | None = None  # its snapshot is the file's top level
        self._parts: dict[str, tuple[Durable, object]] = {}  # key -> (part, what restores nothing)
        self._saving: asyncio.Future[None] | None = None  # the save running in a worker thread
        self.error: str | None = None  # why the last save failed; None once one succeeds
        # What the file on disk is: None (none this process read or wrote), True when saved at a clean
        # stop (a start continues exactly), False when saved while running (a start continues above).
        self.disk_clean: bool | None = None

    def register(self, key: str | None, part: Durable, empty: object = None) -> None:
        """`key` None: the part's snapshot (a dict) is the top level; else it is saved under `key`, and
        restored from `empty` when another part refuses the file."""
        if key is None:
            self._root = part
        else:
            self._parts[key] = (part, empty)

    def snapshot(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self._root.snapshot()) if self._root is not None else {}
        for key, (part, _empty) in self._parts.items():
            data[key] = part.snapshot()
        return data

    def restore(self) -> bool:
        """Continue from the file (True), or move it aside with one ERROR line and start afresh (False).

        Whatever bytes the file holds: never a traceback, never a crash loop."""
        saved = self.file.load() if self.file is not None else None
        if saved is None:
            return False
        assert self.file is not None
        done: list[tuple[Durable, object]] = []
        try:
            try:
                for key, (part, empty) in self._parts.items():
                    if key in saved:
                        part.restore(saved[key])
                        done.append((part, empty))
                if self._root is not None:
                    self._root.restore(saved)
            except BaseException:
                for part, empty in done:
                    part.restore(empty)
                raise
        except ValueError as err:
            why = str(err)
        except Exception as err:  # noqa: BLE001 (a check missed in restore: still a bad file, not a crash)
            why = f"unexpected {describe(err)}"
        else:
            self.disk_clean = saved.get("clean_stop") is True
            return True
        self.file.set_aside("corrupt", why)
        return False

    async def save(self) -> dict[str, Any] | None:
        """Write the snapshot in a worker thread; returns what was saved, or None when the write failed.

        A failure is logged (once per reason), counted and kept in `error`: the stream goes on within
        the numbers the last saved state reserved (Release), and a restart now continues above them."""
        if self.file is None:
            return None
        # Saved while running: numbers past the state's own may be served before the next save.
        data = {**self.snapshot(), "clean_stop": False}
        try:
            # Shielded: cancelling the caller cannot stop the thread, and close() waits for it.
            self._saving = asyncio.ensure_future(asyncio.to_thread(self.file.save, data))
            await asyncio.shield(self._saving)
        except OSError as err:
            if self.error != err.strerror:
                log.error("cannot save state to %s: %s", self.file.path, err.strerror)
            self._failed(err)
            return None
        self._succeeded(clean=False)
        return data

    def save_now(self) -> str | None:
        """Write the state synchronously at a clean stop, marked so: the next start continues exactly.
        Returns why it could not be written (the caller says what the next start will do), else None."""
        if self.file is None:
            return None
        try:
            self.file.save({**self.snapshot(), "clean_stop": True})
        except OSError as err:
            self._failed(err)
            return self.error
        self._succeeded(clean=True)
        return None

    def _failed(self, err: OSError) -> None:
        self.error = str(err.strerror or err)
        if self._metrics is not None:
            self._metrics.state_save_failures.inc()
            self._metrics.state_save_failing.set(1)

    def _succeeded(self, *, clean: bool) -> None:
        if self.error is not None:
            log.info("state saved to %s again", self.file.path if self.file else "")
        self.error = None
        self.disk_clean = clean
        if self._metrics is not None:
            self._metrics.state_save_failing.set(0)

    async def close(self) -> None:
        """A save still writing in its thread must finish before save_now() writes a newer one."""
        if self._saving is not None:
            await asyncio.wait([self._saving])
            if not self._saving.cancelled():
                self._saving.exception()  # retrieved: its OSError was logged or is moot now


def register_parts(snapshots: Snapshots, publisher: Durable, cleaner: Durable | None = None) -> None:
    """The service's parts in one snapshot, saved before a version becomes visible: the publisher's at
    the top level, the cleaner's under "cleaner", restored first, so a publisher that refuses its part
    leaves nothing restored."""
    if cleaner is not None:
        snapshots.register("cleaner", cleaner, empty=[])
    snapshots.register(None, publisher)
