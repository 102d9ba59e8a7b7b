"""A long window's playlist in chunks, and its gzip assembled from them (deflate.py).

The segments are grouped by sequence number in chunks of CHUNK_ENTRIES. A chunk whose segments are
all listed, and past the hashed edge, is frozen (Frozen): its text, gzip piece, CRC-32 and digest are
made once and kept while it is listed. One version (Parts) is then its head (the header and the first,
open chunk), the frozen middle shared by every version until the window crosses a chunk boundary
(Middle), and its tail (the last, open chunk): a new version costs its two ends, whatever the window.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import deque
from itertools import islice

from . import deflate
from .entry import LISTED_TEXTS, Entry, Texts, hashed_from
from .window import Window

# A long window's playlist is kept as chunks of this many segments (by sequence number), each frozen
# once every segment of it is listed: its text, gzip piece, CRC and digest are made once, and a new
# version costs its first and last (open) chunks and the header, whatever the window (render).
CHUNK_ENTRIES = 32
# Frozen chunks are compressed once: the best level costs little. A version's own ends are deflated
# for each version: a playlist without frozen chunks (a short window) at the level small playlists
# always had, the two ends of a longer one (a few kB of many) at the fastest.
_CHUNK_LEVEL = 9
_SHORT_LEVEL = 6
_ENDS_LEVEL = 1


class Chunk:
    """Segments group*CHUNK_ENTRIES .. +CHUNK_ENTRIES-1, frozen: the text, deflated once (referring back into
    the segment before it), its CRC-32 and digest. They are past the hashed edge: no hash shown."""

    __slots__ = ("group", "text", "deflated", "crc", "digest")

    def __init__(self, group: int, entries: list[Entry], before: Entry, texts: Texts = LISTED_TEXTS) -> None:
        self.group = group
        self.text = "".join(texts.text(e) for e in entries).encode()
        self.deflated = deflate.deflate_piece(self.text, _CHUNK_LEVEL, after=texts.text(before).encode())
        self.crc = zlib.crc32(self.text)
        self.digest = hashlib.blake2b(self.text, digest_size=16).digest()


class Middle:
    """The frozen chunks between a version's first and last: shared by every version until the window crosses
    a chunk boundary, the aggregates carried over, not recomputed over the window."""

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


class Parts:
    """One version of a long playlist: its head (the header and the first, open chunk), the frozen
    middle, and its tail (the last, open chunk and ENDLIST), with the segment text just before the
    tail (what its gzip piece may refer back into)."""

    __slots__ = ("head", "middle", "tail", "before_tail")

    def __init__(self, head: bytes, middle: Middle, tail: bytes, before_tail: bytes) -> None:
        self.head, self.middle, self.tail, self.before_tail = head, middle, tail, before_tail

    def body(self) -> bytes:
        return b"".join((self.head, self.middle.text, self.tail))

    def digest(self) -> str:
        """A digest of these bytes from the parts' (not hours of text): the head's length says where the
        middle starts."""
        h = hashlib.blake2b(len(self.head).to_bytes(8, "big"), digest_size=12)
        for piece in (self.head, self.middle.digest, self.tail):
            h.update(piece)
        return h.hexdigest()

    def gzip(self) -> bytes:
        """One gzip member of these bytes: the frozen middle's pieces as they are, the head and tail
        deflated for this version."""
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
    """A window's chunks of CHUNK_ENTRIES segments between its first and its last (open) ones, each
    frozen once complete, and the middle they make; emptied whenever the entries are replaced. `texts`:
    how the pathway whose versions these are writes each entry (the listed URIs, or another pathway's)."""

    __slots__ = ("chunks", "middle", "texts")

    def __init__(self, texts: Texts = LISTED_TEXTS) -> None:
        self.chunks: deque[Chunk] = deque()
        self.middle = NO_MIDDLE
        self.texts = texts

    def clear(self) -> None:
        self.chunks.clear()

    def parts(self, entries: Window, start: int, end: int, head: str, ended: bool,
              target_duration: int) -> Parts:
        """The full playlist in parts: chunks of CHUNK_ENTRIES segments by number, those between the first and
        the last frozen (made once, kept while listed), the two open ones (and the hashed edge) joined for
        this version: the cost, whatever the window."""
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
