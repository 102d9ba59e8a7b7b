"""Rendered: one version of a playlist as served (bytes, strong ETag, gzip made on first demand); Pending:
one rendered when first asked; newest_segments: a version's newest segments, for a client without gzip."""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Callable

from . import hls
from .chunks import Parts


class Rendered:
    """One rendering of a playlist; a media playlist's in Parts, joined and gzipped only when asked."""

    __slots__ = ("_body", "_parts", "_etag", "_gzip", "last_sequence", "ended", "delta",
                 "_media_sequence", "_delta_count", "_blind_delta", "_identity")

    def __init__(
        self, body: bytes | Parts, *, last_sequence: int = -1, ended: bool = False,
        delta: Rendered | None = None, media_sequence: int = 0, delta_count: int = 0, blind_delta: bool = True,
    ) -> None:
        self._body: bytes | None = body if isinstance(body, bytes) else None
        self._parts: Parts | None = body if isinstance(body, Parts) else None
        self.last_sequence = last_sequence  # for blocking reload: which _HLS_msn this answers
        self.ended = ended
        self.delta = delta  # the same version as a delta update (_HLS_skip), when one is offered
        self._media_sequence = media_sequence
        self._delta_count = delta_count
        self._blind_delta = blind_delta
        self._etag: str | None = None
        self._gzip: bytes | None = None
        self._identity: Rendered | None = None

    @property
    def body(self) -> bytes:
        if self._body is None:
            assert self._parts is not None
            self._body = self._parts.body()
        return self._body

    @property
    def rendered(self) -> Rendered:
        """Itself (a Pending renders itself when first asked: either is a Version)."""
        return self

    @property
    def etag(self) -> str:
        if self._etag is None:  # on first demand: the bucket's copy of a long window needs none
            parts = self._parts
            digest = hashlib.blake2b(self.body, digest_size=12).hexdigest() if parts is None else parts.digest()
            self._etag = '"' + digest + '"'
        return self._etag

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gz"'

    def answer(self, skip: bool, msn: int | None = None) -> Rendered:
        """This version, or its delta update when asked (_HLS_skip, 6.2.5.1). video.js stalls on a delta
        listing as many segments as the version it holds under the same media sequence: that count (known
        from _HLS_msn) gets the whole playlist, and without _HLS_msn only a `blind_delta` is given."""
        delta = self.delta
        if not skip or delta is None:
            return self
        if msn is None:
            return delta if self._blind_delta else self
        return self if msn - self._media_sequence == self._delta_count else delta

    @property
    def identity(self) -> Rendered:
        """This version for a client without gzip: past hls.MAX_IDENTITY_BYTES, its newest segments only."""
        if self._identity is None:
            body = newest_segments(self.body, hls.MAX_IDENTITY_BYTES)
            self._identity = self if body is self.body else Rendered(body, last_sequence=self.last_sequence,
                                                                     ended=self.ended)
        return self._identity

    @property
    def gzip_body(self) -> bytes:
        if self._gzip is None:
            self._gzip = gzipped(self.body) if self._parts is None else self._parts.gzip()
        return self._gzip


def gzipped(body: bytes) -> bytes:
    """mtime=0: the bytes a pure function of the body; a long body at level 1 (a third the time)."""
    return gzip.compress(body, compresslevel=6 if len(body) < 65536 else 1, mtime=0)


class Pending:
    """A version rendered when first asked (a pathway read only while steered to it costs a record)."""

    __slots__ = ("last_sequence", "ended", "_make", "_rendered")

    def __init__(self, make: Callable[[], Rendered], *, last_sequence: int, ended: bool) -> None:
        self.last_sequence = last_sequence
        self.ended = ended
        self._make: Callable[[], Rendered] | None = make
        self._rendered: Rendered | None = None

    @property
    def made(self) -> bool:
        """Rendered already: a client asked for it."""
        return self._rendered is not None

    @property
    def rendered(self) -> Rendered:
        if self._rendered is None:
            assert self._make is not None
            self._rendered, self._make = self._make(), None
        return self._rendered


Version = Rendered | Pending  # what a pathway shows: rendered at its push, or when first asked


_DATE_LINE = b"\n#EXT-X-PROGRAM-DATE-TIME:"  # every listed segment has one, after its other tags
_SEQUENCE = re.compile(rb"^#EXT-X-MEDIA-SEQUENCE:([0-9]+)$", re.M)
_DISCONTINUITIES = re.compile(rb"^#EXT-X-DISCONTINUITY-SEQUENCE:([0-9]+)$", re.M)
_SKIP_UNTIL = re.compile(rb"CAN-SKIP-UNTIL=[0-9.]+,")


def _segment_start(body: bytes, date_line: int) -> int:
    """Where the segment whose PROGRAM-DATE-TIME line starts at `date_line` starts (entry.py's order)."""
    start = date_line
    while start > 0:
        previous = body.rfind(b"\n", 0, start - 1) + 1
        line = body[previous:start - 1]
        if line != b"#EXT-X-DISCONTINUITY" and not line.startswith(b"#EXT-X-MAP:"):
            break
        start = previous
    return start


def newest_segments(body: bytes, limit: int) -> bytes:
    """At most about `limit` bytes of `body`: its newest whole segments, numbered as there (6.2.2), with the
    EXT-X-MAP in force (4.4.4.5) and no CAN-SKIP-UNTIL (such a client holds no window to skip against)."""
    if len(body) <= limit:
        return body
    first = body.find(_DATE_LINE)
    if first < 0:
        return body
    head_end = _segment_start(body, first + 1)
    keep_from = body.find(_DATE_LINE, max(head_end, len(body) - (limit - head_end - 512)) - 1)
    if keep_from < 0:
        return body
    cut = _segment_start(body, keep_from + 1)
    if cut <= head_end:
        return body
    dropped = body.count(_DATE_LINE[1:], head_end, cut)
    breaks = body.count(b"#EXT-X-DISCONTINUITY\n", head_end, cut)
    head = _SKIP_UNTIL.sub(b"", body[:head_end], count=1)
    head = _SEQUENCE.sub(lambda m: b"#EXT-X-MEDIA-SEQUENCE:%d" % (int(m[1]) + dropped), head, count=1)
    head = _DISCONTINUITIES.sub(lambda m: b"#EXT-X-DISCONTINUITY-SEQUENCE:%d" % (int(m[1]) + breaks), head, count=1)
    own_map = body.find(b"#EXT-X-MAP:", cut, keep_from + 1)
    in_force = body.rfind(b"#EXT-X-MAP:", 0, cut) if own_map < 0 else -1
    map_line = body[in_force:body.index(b"\n", in_force) + 1] if in_force >= 0 else b""
    return b"".join((head, map_line, body[cut:]))
