"""What Held holds, as bookkeeping alone (no file touched; Held's lock around every call): each key's
version, which buckets have it, when every bucket had it, which keep a copy and the copies' bytes. Each
change returns the names of the copies to remove."""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

from ..files import Stamp

SETTLED_FOR = 180.0  # once every bucket has it, needed only while Owncast keeps its file


class HeldFile(NamedTuple):
    """One segment held: what an answer needs without reading it (a tuple: cheap, one a segment)."""

    key: str
    parts: tuple[str, ...]  # its file beneath HLS_DIR (<variant>/<name>)
    stamp: Stamp  # the version read: Owncast's file is these bytes while its stamp is this
    size: int
    modified: float  # Unix seconds (Last-Modified): its mtime
    content_type: str
    held_at: float  # monotonic
    copy: str | None = None  # its copy's file under STATE_DIR/segments, while one is kept
    copy_size: int = 0

    @property
    def etag(self) -> str:
        """Strong: the version's stamp as a digest; made only when an answer needs it."""
        stamp = self.stamp
        return '"' + hashlib.blake2b(f"{stamp.inode}:{stamp.size}:{stamp.mtime_ns}".encode(),
                                     digest_size=12).hexdigest() + '"'


class HeldIndex:
    """`keep_for`: seconds a key is held at most; `buckets`: the pathway IDs every upload goes to."""

    def __init__(self, keep_for: float, buckets: Iterable[str]) -> None:
        self.keep_for = keep_for
        self._buckets = frozenset(buckets)
        self._many = len(self._buckets) > 1
        self.files: OrderedDict[str, HeldFile] = OrderedDict()  # oldest first
        self._landed: dict[str, set[str]] = {}  # with several buckets: those that have each key, until all
        self._settled: OrderedDict[str, float] = OrderedDict()  # key -> when every bucket had it
        self._due = -math.inf  # no sooner than this does anything held expire
        self.copies: OrderedDict[str, None] = OrderedDict()  # keys with a copy, oldest copy first
        self.bytes = 0  # the copies'
        self.evicted = 0  # copies dropped for the byte cap before every bucket had them

    def put(self, held: HeldFile, now: float, gone: list[str]) -> HeldFile:
        """`held` from now on, unless its version is held already (that one returned); removals to `gone`."""
        index, key = self.files, held.key
        if (old := index.get(key)) is not None and old.stamp == held.stamp:
            return old
        if (old := index.pop(key, None)) is not None:  # held before (settled is held: expire)
            self._settled.pop(key, None)
            if old.copy is not None:  # Owncast rewrote it: the new version only
                gone.append(old.copy)
                self.bytes -= old.copy_size
                self.copies.pop(key, None)
        elif not index:
            self._due = min(self._due, now + self.keep_for)
        index[key] = held
        if self._many:
            self._landed[key] = set()
        if now >= self._due:
            gone += self.expire(now)
        return held

    def copied(self, held: HeldFile, name: str, size: int) -> bool:
        """`name` is the copy of `held`'s version, unless the index changed meanwhile (False: remove it)."""
        current = self.files.get(held.key)
        if current is None or current.stamp != held.stamp or current.copy is not None:
            return False
        self.files[held.key] = current._replace(copy=name, copy_size=size)
        self.copies[held.key] = None
        self.bytes += size
        return True

    def landed(self, key: str, bucket: str, now: float) -> str | None:
        """`bucket` has `key`: once every bucket has it, it is settled, and its copy's name returned."""
        if (held := self.files.get(key)) is None:
            return None  # forgotten (expired, closed)
        if self._many:
            if (landed := self._landed.get(key)) is None:
                return None  # every bucket had it already
            landed.add(bucket)
            if not landed >= self._buckets:
                return None
            del self._landed[key]
        settled = self._settled
        if key in settled:
            return None  # landed already (uploaded again): settled at its first landing
        if not settled:
            self._due = min(self._due, now + SETTLED_FOR)
        settled[key] = now
        if held.copy is None:
            return None
        self.files[key] = held._replace(copy=None, copy_size=0)
        self.copies.pop(key, None)
        self.bytes -= held.copy_size
        return held.copy

    def drop_oldest_copy(self) -> HeldFile | None:
        """The oldest copy let go: what was held with it (its key, its copy's name), or None."""
        if not self.copies:
            return None
        key, _ = self.copies.popitem(last=False)
        held = self.files[key]
        self.files[key] = held._replace(copy=None, copy_size=0)
        self.bytes -= held.copy_size
        self.evicted += 1
        return held

    def expire(self, now: float) -> list[str]:
        """Forget what is past its time (the oldest first); the names of the copies to remove."""
        gone = []
        index = self.files
        settled = self._settled
        while settled:
            key, at = next(iter(settled.items()))
            if now - at <= SETTLED_FOR:
                break
            del settled[key]
            old = index.pop(key, None)
            if old is not None and old.copy is not None:  # none: dropped when the last bucket got it
                gone.append(old.copy)
        while index:
            key, oldest = next(iter(index.items()))
            if now - oldest.held_at <= self.keep_for:
                break
            del index[key]
            self._landed.pop(key, None)
            settled.pop(key, None)
            if oldest.copy is not None:
                self.copies.pop(key, None)
                self.bytes -= oldest.copy_size
                gone.append(oldest.copy)
        self._due = min(next(iter(settled.values()), math.inf) + SETTLED_FOR,
                        next(iter(index.values())).held_at + self.keep_for if index else math.inf)
        return gone

    def clear(self) -> list[str]:
        names = [h.copy for h in self.files.values() if h.copy is not None]
        self.files.clear()
        self._landed.clear()
        self._settled.clear()
        self.copies.clear()
        self.bytes = 0
        return names
