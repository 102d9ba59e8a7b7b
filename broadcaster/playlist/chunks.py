"""A long window's playlist in chunks of CHUNK_ENTRIES segments (by number), and its gzip assembled from
them (deflate.py): complete chunks are frozen once (text, gzip piece, CRC-32, digest), so a new version
costs its two open ends, whatever the window.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import deque
from dataclasses import dataclass
from itertools import islice

from . import deflate
from .entry import LISTED_TEXTS, Entry, Texts, hashed_from
from .window import Window

CHUNK_ENTRIES = 32
# Frozen chunks are compressed once, at the best level; a version's own ends at every version: a short
# window's whole text at the usual level, a long one's two ends at the fastest.
_CHUNK_LEVEL = 9
_SHORT_LEVEL = 6
_ENDS_LEVEL = 1


class Chunk:
    """Segments group*CHUNK_ENTRIES .. +CHUNK_ENTRIES-1, past the hashed edge, deflated once."""

    __slots__ = ("group", "text", "deflated", "crc", "digest")

    def __init__(self, group: int, entries: list[Entry], before: Entry, texts: Texts = LISTED_TEXTS) -> None:
        self.group = group
        self.text = "".join(texts.text(e) for e in entries).encode()
        self.deflated = deflate.deflate_piece(self.text, _CHUNK_LEVEL, after=texts.text(before).encode())
        self.crc = zlib.crc32(self.text)
        self.digest = hashlib.blake2b(self.text, digest_size=16).digest()


class Middle:
    """The frozen chunks between a version's open ends, shared until the window crosses a chunk boundary; its
    length and CRC carried over from the previous one, not recomputed over the window."""

    __slots__ = ("chunks", "length", "crc", "shift", "deflated", "digest", "_text")

    def __init__(self, chunks: tuple[Chunk, ...], previous: Middle | None = None) -> None:
        self.chunks = chunks
        length: int = 0
        crc: int = 0
        added = chunks
        old = previous.chunks if previous is not None else ()
        gone = chunks[0].group - old[0].group if old and chunks else -1
        # The same chunks (not rebuilt ones: drop_hashes) with some gone from the front, some added.
        if 0 <= gone < len(old) and chunks[0] is old[gone] and previous is not None:
            length, crc = previous.length, previous.crc
            for c in old[:gone]:
                length -= len(c.text)
                crc = deflate.crc32_combine(c.crc, crc, length)  # crc32(rest) from crc32(c + rest)
            added = chunks[len(old) - gone:]
        for c in added:
            length += len(c.text)
            crc = zlib.crc32(c.text, crc)
        self.length: int = length
        self.crc: int = crc
        self.shift = deflate.crc_shift(length)
        self.deflated = b"".join(c.deflated for c in chunks)
        self.digest = hashlib.blake2b(b"".join(c.digest for c in chunks), digest_size=16).digest()
        self._text: bytes | None = None

    @property
    def text(self) -> bytes:
        if self._text is None:  # only for whoever needs the whole text (the bucket's copy, no gzip)
            self._text = b"".join(c.text for c in self.chunks)
        return self._text


NO_MIDDLE = Middle(())


@dataclass(slots=True, eq=False)
class Parts:
    """One version of a long playlist: its head (the header and the first, open chunk), the frozen
    middle, its tail (the last, open chunk and ENDLIST), and the segment text just before the tail
    (what its gzip piece may refer back into)."""

    head: bytes
    middle: Middle
    tail: bytes
    before_tail: bytes

    def body(self) -> bytes:
        return b"".join((self.head, self.middle.text, self.tail))

    def digest(self) -> str:
        """A digest of these bytes from the parts' (the head's length says where the middle starts)."""
        h = hashlib.blake2b(len(self.head).to_bytes(8, "big"), digest_size=12)
        for piece in (self.head, self.middle.digest, self.tail):
            h.update(piece)
        return h.hexdigest()

    def gzip(self) -> bytes:
        head, middle, tail = self.head, self.middle, self.tail
        if not middle.length:
            whole = head + tail
            pieces: tuple[bytes, ...] = (deflate.deflate_piece(whole, _SHORT_LEVEL, last=True),)
            crc = zlib.crc32(whole)
        else:
            pieces = (deflate.deflate_piece(head, _ENDS_LEVEL), middle.deflated,
                      deflate.deflate_piece(tail, _ENDS_LEVEL, after=self.before_tail, last=True))
            crc = zlib.crc32(tail, deflate.shift_crc(middle.shift, zlib.crc32(head)) ^ middle.crc)
        return deflate.gzip_member(pieces, crc, len(head) + middle.length + len(tail))


class Frozen:
    """A window's frozen chunks and the middle they make; emptied whenever the entries are replaced."""

    __slots__ = ("chunks", "middle", "texts")

    def __init__(self, texts: Texts = LISTED_TEXTS) -> None:
        self.chunks: deque[Chunk] = deque()
        self.middle = NO_MIDDLE
        self.texts = texts

    def clear(self) -> None:
        self.chunks.clear()

    def parts(self, entries: Window, start: int, end: int, head: str, ended: bool,
              target_duration: int) -> Parts:
        """The full playlist in parts: the chunks between the open ends frozen, the ends joined now."""
        size = CHUNK_ENTRIES
        edge = hashed_from(end, target_duration)
        frozen = self.chunks
        if not entries:
            frozen.clear()
        # The groups frozen: low .. high - 1, all before the hashed edge (which only moves forward).
        low, high = start // size + 1, min(end, max(edge, start)) // size
        while frozen and frozen[0].group < low:
            frozen.popleft()
        if frozen and (frozen[0].group != low or frozen[-1].group >= high):
            frozen.clear()  # not the groups this window holds (cannot happen while the numbers only grow)
        if high > low:
            have = frozen[-1].group + 1 if frozen else low
            if have < high:  # newly complete groups (or all of them, after the entries were replaced)
                newest = entries.newest(end - (have * size - 1))  # with the segment before the first
                for group in range(have, high):
                    at = group * size - (have * size - 1)
                    frozen.append(Chunk(group, newest[at:at + size], newest[at - 1], self.texts))
        middle = self.middle
        held = middle.chunks
        if len(held) != len(frozen) or (held and (held[0] is not frozen[0] or held[-1] is not frozen[-1])):
            middle = self.middle = Middle(tuple(frozen), middle)
        front_end = min(low * size, end)
        tail_start = max(front_end, high * size)
        front = list(islice(entries, front_end - start))
        tail = entries.newest(end - tail_start + (tail_start > start))  # with the segment before it
        shown = self.texts.shown
        before = shown(tail.pop(0), edge).encode() if tail_start > start else b""
        end_list = "#EXT-X-ENDLIST\n" if ended else ""
        return Parts("".join((head, *(shown(e, edge) for e in front))).encode(), middle,
                     "".join((*(shown(e, edge) for e in tail), end_list)).encode(), before)
