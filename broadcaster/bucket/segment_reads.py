"""A segment's bytes for its upload: Owncast's file read safely, the version held of it (vm/held.py),
the copy kept after a failed attempt, and why a segment can never be read (SegmentLost). The uploader
(uploader.py) takes them from here; what it sends is always one of these."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Protocol

from ..files import Refused, Stamp, is_temporary, read_stamped

_new = tuple.__new__  # a NamedTuple made without its Python-level __new__ (Kept: one per segment)


COPY_DROPPED = "copy_dropped"  # lost: its copy gone, and Owncast's file deleted before the bucket took it
NO_COPY = ("no copy of it is left (VM_COPIES_MB, or the disk's reserve under STATE_DIR) and Owncast deleted its "
            "file before the bucket took it")


class SegmentLost(Exception):
    """The segment can never be uploaded (deleted by Owncast, empty, unsafe...). `reason` is a label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.told = False  # an outage's lines count it (OutageLog.lost): not said again per segment


def read_segment_file(path: Path, max_bytes: int, *, root: Path | None = None) -> bytes:
    return read_segment_stamped(path, max_bytes, root=root)[0]


def read_segment_stamped(path: Path, max_bytes: int, *, root: Path | None = None) -> tuple[bytes, Stamp | None]:
    """A regular file's bytes and stamp (None: it changed while read), never through a symlink beneath
    `root`; SegmentLost when it can never be read, OSError when it may be later (out of handles)."""
    base = root if root is not None else path.parent
    if not path.is_relative_to(base):
        raise SegmentLost("not_a_file", f"{path} is not inside {base}")
    try:
        data, stamp = read_stamped(base, path.relative_to(base).parts, max_bytes)
        if not data:
            raise SegmentLost("empty", f"{path} is empty")
        return data, stamp
    except FileNotFoundError as err:
        raise SegmentLost("deleted", f"{path} was deleted before it was uploaded") from err
    except Refused as err:
        raise SegmentLost(err.reason, str(err)) from err
    except OSError as err:
        if is_temporary(err):
            raise  # out of handles or memory: the upload tries again
        raise SegmentLost("unreadable", f"{path}: {err.strerror}") from err


class Uploaded(NamedTuple):
    """A segment in the bucket: its PutObject's seconds, the SHA-256 of the body sent, and its stamp."""

    took: float
    sha256: bytes | None  # None: not asked for (P2P off), or uploaded before a restart (bytes not at hand)
    stamp: Stamp | None = None  # None: bytes made here, or the file changed while it was read


Read = Callable[[], tuple[bytes, Stamp | None]]


def read_and_hash(read: Read, hashed: bool) -> tuple[bytes, Stamp | None, bytes | None]:
    """An attempt's body, its stamp and, when asked, its SHA-256 (of that very object), off the event loop."""
    body, stamp = read()
    return body, stamp, hashlib.sha256(body).digest() if hashed else None


class Holder(Protocol):
    """What the service holds of each finished segment (vm/held.py's Held)."""

    def first(self, key: str, parts: tuple[str, ...], stamp: Stamp,
              content_type: str | None = None) -> object | None: ...

    def body(self, key: str) -> bytes | None: ...

    def held_body(self, key: str) -> tuple[bytes, Stamp] | None: ...

    def get(self, key: str) -> object | None: ...

    def keep(self, key: str, body: bytes) -> bool: ...

    def hold_kept(self, key: str, parts: tuple[str, ...], stamp: Stamp, body: bytes,
                  content_type: str | None = None) -> bool: ...

    def landed(self, key: str, bucket: str) -> None: ...

    def alive(self, key: str) -> bool: ...  # its copy, or Owncast's file, is there

    @property
    def total_bytes(self) -> int: ...  # the copies' bytes on disk

    def room(self) -> tuple[int, str]: ...  # what the copies may take now, and what bounds them (vm/copy_files.py)


ReadBody = tuple[bytes, Stamp | None, bytes | None]  # a first attempt's body, stamp and SHA-256 (or None)
# A box the attempts empty: no frame waiting out a backoff (an outage's every upload) keeps the bytes.
FirstBody = list[ReadBody]


class Kept(NamedTuple):
    """A file's first read: its stamp and SHA-256, and whether the service holds it (one a segment)."""

    stamp: Stamp | None
    sha256: bytes | None
    kept: bool


def hold_first(read: Read, holder: Holder, key: str, parts: tuple[str, ...], hashed: bool,
                content_type: str) -> tuple[Kept, bytes]:
    """Read the file once, hold that version and hash it (on a worker thread)."""
    body, stamp = read()
    held = stamp is not None and holder.first(key, parts, stamp, content_type) is not None
    return _new(Kept, (stamp, hashlib.sha256(body).digest() if hashed else None, held)), body


def kept_or_read(holder: Holder, key: str, stamp: Stamp, read: Read) -> tuple[bytes, Stamp | None]:
    """After a failed attempt kept a copy: the held version's bytes, else Owncast's file as it is now."""
    if (data := holder.body(key)) is not None:
        return data, stamp
    try:
        return read()
    except SegmentLost as err:
        if err.reason != "deleted":
            raise
        raise SegmentLost(COPY_DROPPED, f"{key}: {NO_COPY}") from err


def held_or_first(read: Read, holder: Holder, key: str, parts: tuple[str, ...], hashed: bool,
                   content_type: str) -> tuple[Kept, bytes]:
    """Uploader.hold, on a worker thread: the version held already, else the file read and held."""
    if (got := holder.held_body(key)) is None:
        return hold_first(read, holder, key, parts, hashed, content_type)
    body, stamp = got
    return _new(Kept, (stamp, hashlib.sha256(body).digest() if hashed else None, True)), body


HoldRead = Callable[[Read, Holder, str, tuple[str, ...], bool, str], tuple[Kept, bytes]]
