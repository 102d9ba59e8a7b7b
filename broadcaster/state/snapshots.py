"""The service's durable memory: the Publisher's at the top level of state.json, each other part's under
its own key. Restoring goes keyed parts first, the top level last; when a part refuses what it reads,
every part restored before it is reset, so either all continue or all start afresh.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

from ..metrics import Metrics
from .disk import Replaced, StateFile, no_collection
from .served import ServedRecord, Unknown
from .validate import describe

LEASE = "lease"  # the id of a state saved, under which STATE_DIR/served records versions shown past it
SHOWN_PAST = "shown_past"  # given to the top-level part on restore: the highest number shown past it
_LEASE_ID = re.compile(r"[0-9a-f]{16}")

log = logging.getLogger(__name__)


class Restorable(Protocol):
    def restore(self, data: Any) -> None:
        """Continue from what was saved; raises ValueError (nothing changed) when it does not add up."""


class Durable(Restorable, Protocol):
    """A keyed part: asked for its memory at each save."""

    def snapshot(self) -> Any:
        """The part's memory, JSON-able."""


class Snapshots:
    def __init__(self, file: StateFile | None, metrics: Metrics | None = None,
                 served: ServedRecord | None = None) -> None:
        self.file = file
        self.served = served if served is not None or file is None else ServedRecord(file.path.parent)
        self._lease: str | None = None  # the id of the state on disk, once this process read or wrote one
        self._recorded = -1  # the highest number recorded in `served` under `_lease`
        self.shown_past: int | None = None  # that number, once recorded (or restored and not yet saved over)
        self._record_error: str | None = None
        self._metrics = metrics
        self._root: Restorable | None = None  # restores the file's top level (saved as each save is given it)
        self._parts: dict[str, tuple[Durable, object]] = {}  # key -> (part, what restores nothing)
        self._saving: asyncio.Future[None] | None = None  # the save running in a worker thread
        self.error: str | None = None  # why the last save failed; None once one succeeds
        # The file on disk: None (none read or written), True when saved at a clean stop, False while running.
        self.disk_clean: bool | None = None

    def register(self, key: str, part: Durable, empty: object = None) -> None:
        """`part` is restored from `empty` when another part refuses the file."""
        self._parts[key] = (part, empty)

    def register_root(self, part: Restorable) -> None:
        """`part` restores the file's top level; what it saves comes with each save (`root`)."""
        self._root = part

    def snapshot(self, root: dict[str, Any]) -> dict[str, Any]:
        return {**root, **{key: part.snapshot() for key, (part, _empty) in self._parts.items()}}

    @no_collection()
    def restore(self) -> bool:
        """Continue from the file (True), or move it aside with one ERROR line and start afresh (False)."""
        saved = self.file.load() if self.file is not None else None
        if saved is not None:
            saved = self._with_shown(saved)
        if self.served is not None:
            self.served.prepare()  # before the disk can fill up; without it nothing is shown unsaved
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
        self._lease, self.shown_past, self._recorded = None, None, -1
        return False

    def _with_shown(self, saved: dict[str, Any]) -> dict[str, Any]:
        """The state as the parts restore it: marked by what `served` records under its lease, exact
        (clean_stop) when nothing is, at its worst when the record is damaged."""
        lease = saved.get(LEASE)
        if type(lease) is not str or not _LEASE_ID.fullmatch(lease):
            return saved
        self._lease = lease
        if self.served is None:
            return saved
        try:
            recorded = self.served.read()
        except Unknown:  # even after a clean stop: a process started from it may have shown more
            return {**saved, "clean_stop": False}
        high = recorded.get(lease)
        if high is None:
            return {**saved, "clean_stop": True}
        self.shown_past = self._recorded = high
        return {**saved, SHOWN_PAST: high, "clean_stop": False}

    async def save(self, root: dict[str, Any]) -> dict[str, Any] | None:
        """Write `root` and the keyed parts in a worker thread: what was saved, or None (kept in `error`)."""
        if self.file is None:
            return None
        # Saved while running: numbers past the state's own may be served before the next save.
        data = {**self.snapshot(root), "clean_stop": False, LEASE: secrets.token_hex(8)}
        try:
            # Encoded on the loop, written in a thread; shielded: close() waits for it.
            prepared = self.file.prepare(data)
            self._saving = asyncio.ensure_future(asyncio.to_thread(self.file.write_prepared, prepared))
            await asyncio.shield(self._saving)
        except OSError as err:
            if self.error != err.strerror:
                log.error("cannot save state to %s: %s", self.file.path, err.strerror)
            self._failed(err)
            if isinstance(err, Replaced):  # yet the files on disk hold this save: record under its lease
                self._on_disk(clean=False, lease=data[LEASE])
            return None
        self._succeeded(clean=False, lease=data[LEASE])
        return data

    async def record_shown(self, high: int) -> bool:
        """Record `high` before it is shown past the state on disk; False: it must not be shown."""
        if high <= self._recorded:
            return True
        if self.served is None or self._lease is None:
            return False
        served = self.served
        try:
            if not served.ready and (why := await asyncio.to_thread(served.prepare)) is not None:
                raise OSError(why)
            await asyncio.to_thread(served.write, self._lease, high)
        except OSError as err:
            why = str(err.strerror or err)
            if self._record_error != why:
                self._record_error = why
                log.error("cannot record in %s how far versions were shown: %s; new versions wait for a save",
                          self.served.path, why)
            return False
        self._record_error = None
        self._recorded = self.shown_past = high
        return True

    def save_now(self, root: dict[str, Any]) -> str | None:
        """Write `root` and the keyed parts at a clean stop, marked so; why it could not be, else None."""
        if self.file is None:
            return None
        data = {**self.snapshot(root), "clean_stop": True, LEASE: secrets.token_hex(8)}
        try:
            self.file.save(data)
        except OSError as err:
            self._failed(err)
            if not isinstance(err, Replaced):
                log.error("cannot save state to %s at shutdown: %s; %s (no number is served twice)",
                          self.file.path, self.error, self._next_start())
                return self.error
            log.error("saved state to %s at shutdown, but %s failed after: %s", self.file.path,
                      "syncing its folder or the journal", self.error)
        self._succeeded(clean=True, lease=data[LEASE])
        return None

    def _next_start(self) -> str:
        if self.disk_clean is None:
            return "the next start numbers from the clock"
        if self.shown_past is None:
            return "the next start continues exactly from the last state saved (nothing was shown past it)"
        return (f"the next start continues above media sequence {self.shown_past} (the highest shown since the "
                "last state saved) with a discontinuity, at Owncast's next segment")

    def _failed(self, err: OSError) -> None:
        self.error = str(err.strerror or err)
        if self._metrics is not None:
            self._metrics.state_save_failures.inc()
            self._metrics.state_save_failing.set(1)

    def _succeeded(self, *, clean: bool, lease: str) -> None:
        # A journal line saved while state.json fails to be rewritten is still a failing save for /health.
        trouble = self.file.trouble if self.file is not None else None
        if self.error is not None and trouble is None:
            log.info("state saved to %s again", self.file.path if self.file else "")
        self.error = trouble
        self._on_disk(clean=clean, lease=lease)
        if self._metrics is not None:
            self._metrics.state_save_failing.set(0 if trouble is None else 1)

    def _on_disk(self, *, clean: bool, lease: str) -> None:
        """The state on disk is the one saved under `lease`: what `served` recorded before is moot."""
        self.disk_clean = clean
        self._lease, self._recorded, self.shown_past = lease, -1, None

    async def close(self) -> None:
        """A save still writing in its thread must finish before save_now() writes a newer one."""
        if self._saving is not None:
            await asyncio.wait([self._saving])
            if not self._saving.cancelled():
                self._saving.exception()  # retrieved: its OSError was logged or is moot now


def register_parts(snapshots: Snapshots, publisher: Restorable, cleaners: Mapping[str, Durable] | None = None) -> None:
    """The publisher's memory at the top level, each bucket's cleaner under "[<pathway>_]cleaner"."""
    for pathway, cleaner in (cleaners or {}).items():
        snapshots.register("cleaner" if pathway == "bucket" else f"{pathway}_cleaner", cleaner, empty=[])
    snapshots.register_root(publisher)
