"""ManifestGenerator: the rolling window of one variant's live media playlist.

Pure and synchronous: no I/O, the time is passed in, so every rule can be tested without sleeping.
It renders the playlist once per change and hands out that cached rendering to every request.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import zlib
from collections import deque
from dataclasses import dataclass, replace
from itertools import islice
from collections.abc import Iterable, Sequence
from typing import Protocol

from . import deflate, hls

class SegmentRejected(ValueError):
    """The segment would break a playlist rule; it is skipped and the next one marks the gap."""


@dataclass(frozen=True, slots=True)
class ListedSegment:
    """A segment that is already in the bucket and may be listed."""

    uri: str
    duration: float
    program_date_time: float | None = None  # epoch seconds, from Owncast's playlist
    discontinuity: bool = False
    init_uri: str | None = None  # fMP4 init section (EXT-X-MAP)
    key: str | None = None  # its object key, so it can be deleted once it left every playlist
    # SHA-256 of the bytes in the bucket, listed for viewers' peers to be checked against (hls.py's
    # SEGMENT_HASH_TAG); only with P2P on, so a playlist without P2P says nothing of it.
    sha256: bytes | None = None


@dataclass(frozen=True, slots=True)
class Removed:
    """A segment that slid out of the window; it must stay downloadable for `keep` more seconds."""

    segment: ListedSegment
    removed_at: float
    keep: float  # its duration plus the longest playlist that listed it (6.2.2)


@dataclass(frozen=True, slots=True)
class Saved:
    """A playlist's numbers and flags, as a restart continues them (ManifestGenerator.saved, resume)."""

    target_duration: int
    independent: bool
    media_sequence: int
    discontinuity_sequence: int
    next_sequence: int
    ended: bool
    pending_discontinuity: bool
    continues: bool  # emptied by a restart that kept the timeline
    regrowing: bool  # continued above a state: not shown until three target durations long
    longest: float  # the longest the playlist has been while its oldest entry was listed


# json.dumps with separators builds an encoder per call: one, made once (a restart encodes every entry).
_encode = json.JSONEncoder(separators=(",", ":")).encode


class _Entry:
    """A listed segment with its lines rendered once: a long window (REWIND_SECONDS) is rendered and
    saved after every new segment, so each costs a join, not a formatting, per segment listed. Its
    hash line, when it has a hash, is shown only while it is near the live edge (shown)."""

    __slots__ = ("sequence", "segment", "discontinuity", "program_date_time", "listed_at", "text", "split",
                 "maps", "saved")

    def __init__(self, sequence: int, segment: ListedSegment, discontinuity: bool, program_date_time: float,
                 listed_at: float, previous: _Entry | None) -> None:
        self.sequence = sequence
        self.segment = segment
        self.discontinuity = discontinuity
        self.program_date_time = program_date_time
        self.listed_at = listed_at
        init = segment.init_uri
        # 4.4.4.5: EXT-X-MAP before the first segment it applies to; a playlist's (or a delta's) first
        # segment gets it at render time when its predecessor made it unneeded here.
        self.maps = bool(init) and (previous is None or init != previous.segment.init_uri or discontinuity)
        head = "".join((
            "#EXT-X-DISCONTINUITY\n" if discontinuity else "",
            f'#EXT-X-MAP:URI="{init}"\n' if self.maps else "",
            f"#EXT-X-PROGRAM-DATE-TIME:{hls.format_program_date_time(program_date_time)}\n",
        ))
        self.text = f"{head}#EXTINF:{segment.duration:.3f},\n{segment.uri}\n"  # without its hash
        self.split = len(head)  # where its hash line goes: before EXTINF
        # Its record in the state file (read back by publish/playlist_memory.py), with the time it was
        # listed on the generator's clock (the save says what that clock read): the same text in every
        # save. Its hash, when it has one, is a ninth value (files from before it have eight: those
        # segments never come from peers).
        record = [sequence, segment.uri, segment.duration, program_date_time, discontinuity, init, segment.key,
                  round(listed_at, 3)]
        if segment.sha256:
            record.append(hls.encode_segment_hash(segment.sha256))
        self.saved = _encode(record)

    def shown(self, hashed_from: int) -> str:
        """Its text in a version whose segments from number `hashed_from` on show their hash."""
        if self.segment.sha256 is None or self.sequence < hashed_from:
            return self.text
        return self.text[:self.split] + hls.segment_hash_line(self.segment.sha256) + self.text[self.split:]


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


class _Chunk:
    """Segments group*CHUNK_ENTRIES .. +CHUNK_ENTRIES-1, frozen: the text, deflated once (referring
    back into the segment before it, which precedes it in every version that lists it), its CRC-32
    and digest. Its segments, and the one before, are past the hashed edge: their hash is not shown."""

    __slots__ = ("group", "text", "deflated", "crc", "digest")

    def __init__(self, group: int, entries: list[_Entry], before: _Entry) -> None:
        self.group = group
        self.text = "".join(e.text for e in entries).encode()
        self.deflated = deflate.deflate_piece(self.text, _CHUNK_LEVEL, after=before.text.encode())
        self.crc = zlib.crc32(self.text)
        self.digest = hashlib.blake2b(self.text, digest_size=16).digest()


class _Middle:
    """The frozen chunks a version lists between its first and last chunks: immutable, shared by
    every version (and the bucket's copy) until the window crosses a chunk boundary; the aggregates
    are carried over from the previous middle, not recomputed over the window."""

    __slots__ = ("chunks", "length", "crc", "shift", "deflated", "digest", "_text")

    def __init__(self, chunks: tuple[_Chunk, ...], previous: _Middle | None = None) -> None:
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


_NO_MIDDLE = _Middle(())


class _Parts:
    """One version of a long playlist: its head (the header and the first, open chunk), the frozen
    middle, and its tail (the last, open chunk and ENDLIST), with the segment text just before the
    tail (what its gzip piece may refer back into)."""

    __slots__ = ("head", "middle", "tail", "before_tail")

    def __init__(self, head: bytes, middle: _Middle, tail: bytes, before_tail: bytes) -> None:
        self.head, self.middle, self.tail, self.before_tail = head, middle, tail, before_tail


def _newest(entries: deque[_Entry], count: int) -> list[_Entry]:
    """The last `count` entries, in order, taken from the end (a long window costs nothing)."""
    return list(islice(reversed(entries), count))[::-1]


class _Frozen:
    """A window's chunks of CHUNK_ENTRIES segments between its first and its last (open) ones, each
    frozen once complete, and the middle they make; emptied whenever the entries are replaced."""

    __slots__ = ("chunks", "middle")

    def __init__(self) -> None:
        self.chunks: deque[_Chunk] = deque()
        self.middle = _NO_MIDDLE

    def clear(self) -> None:
        self.chunks.clear()

    def parts(self, entries: deque[_Entry], start: int, end: int, head: str, ended: bool,
              target_duration: int) -> _Parts:
        """The full playlist in parts: the segments are grouped by sequence number in chunks of
        CHUNK_ENTRIES; the chunks between the first and the last are frozen (made once, kept while
        listed), the first (which loses segments as the window slides) and the last (which gains them,
        and holds every segment near the edge, which shows its hash) are joined for this version.
        Costs the two open chunks and the hashed edge, whatever the window."""
        size = CHUNK_ENTRIES
        hashed_from = _hashed_from(end, target_duration)
        frozen = self.chunks
        if not entries:
            frozen.clear()
        # The groups frozen: low .. high - 1, all before the hashed edge (which only moves forward).
        low, high = start // size + 1, min(end, max(hashed_from, start)) // size
        while frozen and frozen[0].group < low:
            frozen.popleft()
        if frozen and (frozen[0].group != low or frozen[-1].group >= high):
            frozen.clear()  # not the groups this window holds (cannot happen while the numbers only grow)
        if high > low:
            have = frozen[-1].group + 1 if frozen else low
            if have < high:  # newly complete groups (or all of them, after the entries were replaced)
                newest = _newest(entries, end - (have * size - 1))  # with the segment before the first
                for group in range(have, high):
                    at = group * size - (have * size - 1)
                    frozen.append(_Chunk(group, newest[at:at + size], newest[at - 1]))
        middle = self.middle
        held = middle.chunks
        if len(held) != len(frozen) or (held and (held[0] is not frozen[0] or held[-1] is not frozen[-1])):
            middle = self.middle = _Middle(tuple(frozen), middle)
        front_end = min(low * size, end)
        tail_start = max(front_end, high * size)
        front = list(islice(entries, front_end - start))
        tail = _newest(entries, end - tail_start + (tail_start > start))  # with the segment before it
        before = tail.pop(0).shown(hashed_from).encode() if tail_start > start else b""
        end_list = "#EXT-X-ENDLIST\n" if ended else ""
        return _Parts("".join((head, *(e.shown(hashed_from) for e in front))).encode(), middle,
                      "".join((*(e.shown(hashed_from) for e in tail), end_list)).encode(), before)


class _Peaks:
    """(sequence, playlist duration once it was appended), durations decreasing: the longest playlist
    a segment was in is the first entry from its sequence on (how long it must stay once removed)."""

    __slots__ = ("_peaks",)

    def __init__(self) -> None:
        self._peaks: deque[tuple[int, float]] = deque()

    def clear(self) -> None:
        self._peaks.clear()

    def appended(self, sequence: int, duration: float) -> None:
        while self._peaks and self._peaks[-1][1] <= duration:
            self._peaks.pop()
        self._peaks.append((sequence, duration))

    def longest(self, sequence: int) -> float:
        """The longest the playlist has been since `sequence` was appended (6.2.2)."""
        while len(self._peaks) > 1 and self._peaks[0][0] < sequence:
            self._peaks.popleft()  # appended before any segment still listed: no longer needed
        return self._peaks[0][1] if self._peaks else 0.0


class Rendered:
    """One rendering of a playlist: the bytes, a strong ETag, and a gzip copy made on first demand.

    A media playlist is rendered in parts (_Parts): its body is joined, and its gzip assembled from
    pieces, only when asked; its ETag is a digest of the parts (the same bytes give the same parts)."""

    __slots__ = ("_body", "_parts", "_etag", "_gzip", "last_sequence", "ended", "delta", "_media_sequence",
                 "_delta_count", "_blind_delta", "_identity")

    def __init__(
        self, body: bytes | _Parts, *, last_sequence: int = -1, ended: bool = False,
        delta: Rendered | None = None, media_sequence: int = 0, delta_count: int = 0, blind_delta: bool = True,
    ) -> None:
        self._body: bytes | None = None if isinstance(body, _Parts) else body
        self._parts: _Parts | None = body if isinstance(body, _Parts) else None
        self.last_sequence = last_sequence  # for blocking reload: which _HLS_msn this answers
        self.ended = ended
        self.delta = delta  # the same version as a delta update (_HLS_skip), when one is offered
        # What a player would compare the delta with (answer): its media sequence and how many segments
        # it lists, and whether it may go to a request that does not say which version it holds.
        self._media_sequence = media_sequence
        self._delta_count = delta_count
        self._blind_delta = blind_delta
        self._etag: str | None = None
        self._gzip: bytes | None = None
        self._identity: Rendered | None = None

    @property
    def body(self) -> bytes:
        if self._body is None:
            parts = self._parts
            assert parts is not None
            self._body = b"".join((parts.head, parts.middle.text, parts.tail))
        return self._body

    @property
    def etag(self) -> str:
        if self._etag is None:  # on first demand: the bucket's copy of a long window needs none
            parts = self._parts
            if parts is None:
                digest = hashlib.blake2b(self.body, digest_size=12).hexdigest()
            else:  # the parts' digests, not hours of text: the head's length says where the middle starts
                h = hashlib.blake2b(len(parts.head).to_bytes(8, "big"), digest_size=12)
                for piece in (parts.head, parts.middle.digest, parts.tail):
                    h.update(piece)
                digest = h.hexdigest()
            self._etag = '"' + digest + '"'
        return self._etag
    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gz"'

    def answer(self, skip: bool, msn: int | None = None) -> Rendered:
        """This version, or its delta update to a request that asked for one (_HLS_skip, 6.2.5.1).

        video.js (VHS isPlaylistUnchanged) takes a delta that lists as many segments as the version
        it holds, under the same media sequence, for no change, and stalls. A blocking request says
        which version that is: the player holds up to _HLS_msn - 1, so under this media sequence it
        holds _HLS_msn - media sequence segments; that count gets the whole playlist. Without _HLS_msn
        a delta goes only where no earlier version under its media sequence had its count."""
        delta = self.delta
        if not skip or delta is None:
            return self
        if msn is None:
            return delta if self._blind_delta else self
        return self if msn - self._media_sequence == self._delta_count else delta

    @property
    def identity(self) -> Rendered:
        """This version for a client without gzip: itself, or past hls.MAX_IDENTITY_BYTES its newest
        segments only (made once, on first demand, from these very bytes: what is shown stays what was
        saved)."""
        if self._identity is None:
            body = newest_segments(self.body, hls.MAX_IDENTITY_BYTES)
            self._identity = self if body is self.body else Rendered(body, last_sequence=self.last_sequence,
                                                                     ended=self.ended)
        return self._identity

    @property
    def gzip_body(self) -> bytes:
        if self._gzip is None:
            parts = self._parts
            if parts is None:
                # mtime=0 keeps the bytes a pure function of the body.
                # A long body at level 1: a third of the time for 7 % more bytes.
                level = 6 if len(self.body) < 65536 else 1
                self._gzip = gzip.compress(self.body, compresslevel=level, mtime=0)
            else:  # the frozen middle's pieces as they are, the head and tail deflated for this version
                head, middle, tail = parts.head, parts.middle, parts.tail
                if not middle.length:
                    whole = head + tail
                    pieces: tuple[bytes, ...] = (deflate.deflate_piece(whole, _SHORT_LEVEL, last=True),)
                    crc = zlib.crc32(whole)
                else:
                    pieces = (deflate.deflate_piece(head, _ENDS_LEVEL), middle.deflated,
                              deflate.deflate_piece(tail, _ENDS_LEVEL, after=parts.before_tail, last=True))
                    crc = zlib.crc32(tail, deflate.shift_crc(middle.shift, zlib.crc32(head)) ^ middle.crc)
                self._gzip = deflate.gzip_member(pieces, crc, len(head) + middle.length + len(tail))
        return self._gzip


class ManifestGenerator:
    """Sliding-window live playlist for one variant (docs/hls-rules.md, sections cited inline)."""

    def __init__(self, target_duration: int, window_seconds: float, *, independent_segments: bool = True,
                 can_block_reload: bool = False, start_at_edge: bool = False) -> None:
        if target_duration < 1:
            raise ValueError("target duration must be an integer >= 1 (4.4.3.1)")
        self.target_duration = target_duration
        self._requested_window = window_seconds
        # 6.2.2: never shorter than three target durations.
        self.window_seconds = max(window_seconds, hls.min_window_seconds(target_duration))
        self.independent_segments = independent_segments
        # Only an origin that holds requests may say so; a playlist copied to a bucket must not (6.2.5.2).
        self.can_block_reload = can_block_reload
        # A window longer than players keep behind the edge (REWIND_SECONDS) says where to start.
        self.start_at_edge = start_at_edge
        # Delta updates are answered by the same origin, and only pay off in a long enough window.
        self.can_skip = can_block_reload and hls.offers_delta_updates(self.window_seconds, target_duration)
        self._entries: deque[_Entry] = deque()
        self._appended = 0  # entries appended by this process: the last one's id in the saved Tail, plus one
        self._frozen = _Frozen()  # the chunks between the first and the last (render)
        self._mapped = 0  # entries with an EXT-X-MAP (fMP4): the playlist needs version 6
        self._tagged = 0  # entries with EXT-X-DISCONTINUITY (asked per variant per slot: not summed)
        self._next_sequence = 0
        self._media_sequence = 0
        # The media sequence of the last version rendered, and the fewest segments a version under it
        # listed: what a delta update must list fewer than (render).
        self._rendered_sequence: int | None = None
        self._fewest = 0
        self._discontinuity_sequence = 0
        self._duration = 0.0
        self._ended = False
        self._pending_discontinuity = False
        # Emptied by a restart that keeps the timeline: the next segment's own discontinuity flag counts.
        self._continues = False
        self._regrowing = False  # continued above a state: not shown until three target durations long
        self._rendered: Rendered | None = None
        self._edge: Rendered | None = None
        self._removed: list[Removed] = []
        self._peaks = _Peaks()

    # -- state -------------------------------------------------------------------------------------

    @property
    def media_sequence(self) -> int:
        return self._media_sequence

    @property
    def discontinuity_sequence(self) -> int:
        return self._discontinuity_sequence

    @property
    def next_sequence(self) -> int:
        """The media sequence number the next appended segment will get."""
        return self._next_sequence

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def segment_count(self) -> int:
        return len(self._entries)

    @property
    def window_duration(self) -> float:
        return self._duration

    @property
    def showable(self) -> bool:
        """False after continue_above until the window is three target durations long again: a player
        that saw the window given up must not see the playlist shrink below that (6.2.2)."""
        return not self._regrowing

    @property
    def last_discontinuity(self) -> int:
        """The discontinuity number (hls.js's cc) of the last segment listed, or of the sequence."""
        return self._discontinuity_sequence + self._tagged

    def next_discontinuity(self, discontinuity: bool) -> int:
        """The discontinuity number the next segment appended gets, `discontinuity` being its flag."""
        tagged = self._pending_discontinuity or ((bool(self._entries) or self._continues)
                                                 and (discontinuity or self._ended))
        return self.last_discontinuity + tagged

    def join(self, discontinuity_number: int) -> None:
        """An empty playlist joins variants already listing (6.2.4): its first segment gets their
        discontinuity number, never a lower one than its own."""
        if self._entries:
            raise ValueError("only an empty playlist joins at another's discontinuity number")
        self._discontinuity_sequence = max(self._discontinuity_sequence,
                                           discontinuity_number - self._pending_discontinuity)
        self._rendered = self._edge = None

    def uris(self) -> list[str]:
        return [e.segment.uri for e in self._entries]

    @property
    def listed_span(self) -> tuple[float, float] | None:
        """(start, end) of what the window lists by PROGRAM-DATE-TIME, or None when it lists nothing."""
        if not self._entries:
            return None
        last = self._entries[-1]
        return self._entries[0].program_date_time, last.program_date_time + last.segment.duration

    def listed_between(self, start: float, end: float) -> list[ListedSegment]:
        """The listed segments that overlap [start, end) by PROGRAM-DATE-TIME, each with its date and
        discontinuity as listed (a clip is made of them)."""
        return [replace(e.segment, program_date_time=e.program_date_time, discontinuity=e.discontinuity)
                for e in self._entries
                if e.program_date_time < end and e.program_date_time + e.segment.duration > start]

    # -- changes -----------------------------------------------------------------------------------

    def mark_gap(self) -> None:
        """A segment between the last listed one and the next will never come (lost or rejected)."""
        if self._entries:
            self._pending_discontinuity = True

    def continue_above(self, sequence: int, discontinuity_sequence: int, now: float) -> None:
        """Give up the window and continue at `sequence` (hls.continue_above): the numbers in between
        may have named other segments, so nothing listed before is listed again. The next segment
        carries EXT-X-DISCONTINUITY; the segments given up are drained as removed."""
        while self._entries:
            first = self._pop()
            keep = first.segment.duration + self._peaks.longest(first.sequence)
            self._removed.append(Removed(first.segment, now, keep))
        self._peaks.clear()
        self._duration = 0.0
        self._next_sequence = self._media_sequence = sequence
        self._discontinuity_sequence = discontinuity_sequence
        self._pending_discontinuity = True
        self._continues = False
        self._regrowing = True
        self._ended = False
        self._rendered = self._edge = None

    def append(
        self, segment: ListedSegment, now: float, sequence: int | None = None, wall: float | None = None
    ) -> int:
        """List a segment that is already downloadable (6.2.1); returns its media sequence number.

        `sequence` keeps variants numbered alike (6.2.4): an empty playlist starts at it; after that
        it must be the next number, since a sequence number cannot be skipped (6.2.2).
        `now` decides how long a segment has been listed (pass a monotonic clock); `wall` (default
        `now`) dates a segment that came without PROGRAM-DATE-TIME.
        """
        if sequence is not None and sequence != self._next_sequence:
            if self._entries:
                raise SegmentRejected(f"sequence {sequence} does not follow {self._next_sequence - 1}")
            self._next_sequence = self._media_sequence = sequence
        # Judge the duration as it will be written (milliseconds), so 1.4996 cannot render as 1.500.
        if not hls.fits_target(round(segment.duration, 3), self.target_duration):
            raise SegmentRejected(
                f"EXTINF {segment.duration:.3f}s does not fit target duration {self.target_duration}s"
            )
        previous = self._entries[-1] if self._entries else None
        # A pending discontinuity applies to the first segment too: after continue_above.
        discontinuity = self._pending_discontinuity or (
            (previous is not None or self._continues) and (segment.discontinuity or self._ended)
        )
        pdt = segment.program_date_time
        if pdt is None:
            # 6.2.1: PDT is on every segment; synthesize a continuous clock when Owncast gave none.
            if previous is not None and not discontinuity:
                pdt = previous.program_date_time + previous.segment.duration
            else:
                pdt = (now if wall is None else wall) - segment.duration
        entry = _Entry(self._next_sequence, segment, discontinuity, pdt, now, previous)
        if not self._entries:
            self._peaks.clear()
            self._frozen.clear()  # a new run of numbers: nothing frozen applies
        self._entries.append(entry)
        self._appended += 1
        self._mapped += bool(segment.init_uri)
        self._tagged += discontinuity
        self._next_sequence += 1
        self._duration += segment.duration
        self._pending_discontinuity = self._continues = False
        self._ended = False  # a stream that comes back continues the same playlist
        if self._regrowing and self._duration >= hls.min_window_seconds(self.target_duration):
            self._regrowing = False
        self._peaks.appended(entry.sequence, self._duration)
        self._slide(now)
        self._rendered = self._edge = None
        return entry.sequence

    def restart(self, target_duration: int, now: float, *, sequence: int = 0,
                discontinuity_sequence: int = 0, new_timeline: bool = True,
                served_through: int | None = None) -> list[ListedSegment]:
        """A new playlist at the same address, for a new target duration (docs/hls-rules.md, "A new
        target duration"): every segment leaves at once (kept downloadable as any removed one), and
        the next one starts the new window. Numbers continue above every one served. With
        `new_timeline` (the default) the next segment's discontinuity number is above every one
        before it, so a player that reloads sees a jump forward past a discontinuity, never a number
        or a timeline going back; without (variants cut apart, raised from one of them) the next
        segment keeps the number it would have had, as its timestamps and dates go on (4.4.3.3 asks
        a discontinuity for none of this), so variants that restart at different segments still
        give one moment one number (6.2.4). `sequence` and `discontinuity_sequence` start it higher
        still: where the other variants are (a variant that comes back after streams without it).

        `served_through`: the last number a client may have seen. The segments after it were listed
        but never shown (their version waited for a save, or was replaced in the same turn): they
        start the new playlist under the numbers they had, never served, instead of leaving unseen.
        Returns those of them that do not fit the new target (a lower one): they leave, and the next
        segment marks the gap."""
        if target_duration < 1:
            raise ValueError("target duration must be an integer >= 1 (4.4.3.1)")
        carried = [e for e in self._entries if served_through is not None and e.sequence > served_through]
        # After carried segments, the next one is tagged when it starts a new timeline too: the carried
        # ones stay on theirs.
        gap_after = bool(carried) and (new_timeline or self._pending_discontinuity or self._ended)
        for e in islice(self._entries, len(self._entries) - len(carried)):
            keep = e.segment.duration + self._peaks.longest(e.sequence)
            self._removed.append(Removed(e.segment, now, keep))
            if e.discontinuity:
                self._discontinuity_sequence += 1
        served = len(self._entries) > len(carried)
        if new_timeline:
            # The next segment starts a new timeline, counted here, in every variant alike (all restart
            # together, also one that listed nothing yet), so discontinuity numbers stay the same across them.
            # With segments carried, its tag counts it (_carry): they keep the number they had.
            self._discontinuity_sequence = (max(self._discontinuity_sequence, discontinuity_sequence - 1) if carried
                                            else max(self._discontinuity_sequence + 1, discontinuity_sequence))
            self._pending_discontinuity = False
            self._continues = False
        else:
            # A gap marked, or an end, before the restart still comes before the next segment.
            self._discontinuity_sequence = max(self._discontinuity_sequence, discontinuity_sequence)
            # With segments carried over, it comes after them (_carry).
            self._pending_discontinuity = (self._pending_discontinuity or (self._ended and served)) and not carried
            self._continues = self._continues or bool(self._entries)
        self._entries.clear()
        self._mapped, self._tagged = 0, 0
        self._frozen.clear()
        self._peaks.clear()
        self._duration = 0.0
        self._next_sequence = self._media_sequence = max(self._next_sequence, sequence)
        self._ended = False
        self.target_duration = target_duration
        self.window_seconds = max(self._requested_window, hls.min_window_seconds(target_duration))
        self.can_skip = self.can_block_reload and hls.offers_delta_updates(self.window_seconds, target_duration)
        self._rendered = self._edge = None
        return self._carry(carried, now, gap_after)

    def _carry(self, carried: list[_Entry], now: float, gap_after: bool) -> list[ListedSegment]:
        """List again, under their own numbers and with their own dates and discontinuities, the
        segments a restart found never shown; a gap or an end that followed them still follows them."""
        left: list[ListedSegment] = []
        renumber = False
        for e in carried:
            segment = replace(e.segment, program_date_time=e.program_date_time, discontinuity=e.discontinuity)
            try:
                self.append(segment, e.listed_at, None if renumber else e.sequence)
            except SegmentRejected:
                left.append(e.segment)
                self._removed.append(Removed(e.segment, now, e.segment.duration))
                self.mark_gap()
                renumber = True  # a number cannot be skipped (6.2.2): the rest follow on
        if gap_after:
            self._pending_discontinuity = True
        return left

    def end(self) -> None:
        """6.2.1: the stream ended; EXT-X-ENDLIST is appended and the playlist stops changing."""
        if not self._ended and self._entries:
            self._ended = True
            self._rendered = self._edge = None

    def _slide(self, now: float) -> None:
        """Remove from the front while the rest still covers the window (6.2.2).

        A segment also stays until it has been listed for about a window, so a burst of backlog does
        not slide segments out before a polling player had the chance to see them.
        """
        min_listed = self.window_seconds - self.target_duration
        while len(self._entries) > 1:
            first = self._entries[0]
            if self._duration - first.segment.duration < self.window_seconds:
                break
            if now - first.listed_at < min_listed:
                break
            self._pop()
            keep = first.segment.duration + self._peaks.longest(first.sequence)
            self._removed.append(Removed(first.segment, now, keep))
            self._duration -= first.segment.duration
            self._media_sequence += 1  # 6.2.2: +1 per removed segment
            if first.discontinuity:  # 4.4.3.3: its EXT-X-DISCONTINUITY left with it
                self._discontinuity_sequence += 1

    def _pop(self) -> _Entry:
        first = self._entries.popleft()
        self._mapped -= bool(first.segment.init_uri)
        self._tagged -= first.discontinuity
        return first

    def drop_hashes(self) -> None:
        """List no segment's hash (P2P was turned off since the state these entries came from was saved)."""
        if not any(e.segment.sha256 for e in self._entries):
            return
        entries, self._entries = self._entries, deque()
        for e in entries:
            self._entries.append(_Entry(e.sequence, replace(e.segment, sha256=None), e.discontinuity,
                                        e.program_date_time, e.listed_at, self._entries[-1] if self._entries else None))
        self._frozen.clear()  # every entry's text changed
        self._rendered = self._edge = None

    def drain_removed(self) -> list[Removed]:
        """Segments that left the window since the last call."""
        removed, self._removed = self._removed, []
        return removed

    # -- persistence (its format and checks: publish/playlist_memory.py) ----------------------------

    @property
    def appended(self) -> int:
        """Entries appended by this process: the id after the last one's in the saved records."""
        return self._appended

    def saved(self) -> Saved:
        """Everything but the entries needed to continue this playlist after a restart."""
        # Restored entries all count as listed in it: at worst they stay longer than needed.
        return Saved(self.target_duration, self.independent_segments, self._media_sequence,
                     self._discontinuity_sequence, self._next_sequence, self._ended, self._pending_discontinuity,
                     self._continues, self._regrowing, self._peaks.longest(self._media_sequence))

    def records_since(self, first: int, end: int | None = None) -> list[str]:
        """The records of the entries with ids from `first` up to `end` (ids count appends; None: the
        last): each encoded once, when it was listed, so a save after every listing costs the new ones,
        however long the window."""
        newer = 0 if end is None else max(0, self._appended - end)  # appended since `end`: left out
        count = self._appended - newer - first
        kept = len(self._entries) - newer
        if count >= kept:
            return [e.saved for e in islice(self._entries, 0, max(kept, 0))]
        return [e.saved for e in islice(reversed(self._entries), newer, newer + count)][::-1]

    # -- output ------------------------------------------------------------------------------------

    def render(self) -> Rendered:
        """The origin's playlist (with SERVER-CONTROL when it can block), and its delta update if offered."""
        if self._rendered is None:
            last, ended = self._next_sequence - 1, self._ended
            count = len(self._entries)
            if self._media_sequence != self._rendered_sequence:
                self._rendered_sequence, self._fewest = self._media_sequence, count
            skipped = _skippable(self._entries, hls.skip_until(self.target_duration)) if self.can_skip and not ended else 0
            delta = Rendered(self._render_text(self.can_block_reload, skipped).encode(), last_sequence=last,
                             ended=ended) if skipped else None
            # A delta listing fewer segments than any earlier version under its media sequence cannot
            # look unchanged to video.js whichever version it holds (Rendered.answer).
            self._rendered = Rendered(self._parts(self.can_block_reload), last_sequence=last,
                                      ended=ended, delta=delta, media_sequence=self._media_sequence,
                                      delta_count=count - skipped, blind_delta=count - skipped < self._fewest)
        return self._rendered

    def render_edge(self) -> Rendered:
        """The same version for a static host (the bucket): it cannot block or answer _HLS_skip (6.2.5.2)."""
        if not self.can_block_reload:
            return self.render()
        if self._edge is None:
            self._edge = Rendered(self._parts(False), last_sequence=self._next_sequence - 1, ended=self._ended)
        return self._edge

    def _header(self, server_control: bool, skipped: int, first: _Entry | None) -> str:
        version = hls.DELTA_PLAYLIST_VERSION if skipped else hls.playlist_version(has_map=self._mapped > 0)
        lines = [
            "#EXTM3U",
            f"#EXT-X-VERSION:{version}",
            f"#EXT-X-TARGETDURATION:{self.target_duration}",
            *([hls.server_control(self.target_duration, can_skip=self.can_skip)] if server_control else []),
            *([hls.start_at_edge(self.target_duration)] if self.start_at_edge else []),
            f"#EXT-X-MEDIA-SEQUENCE:{self._media_sequence}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{self._discontinuity_sequence}",
        ]
        if self.independent_segments:
            lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
        if skipped:
            # 4.4.5.2: replaces the skipped segments' URIs and every tag that applied to them.
            lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")
        lines.append("")
        head = "\n".join(lines)
        if first is not None and first.segment.init_uri and not first.maps:
            head += f'#EXT-X-MAP:URI="{first.segment.init_uri}"\n'  # 4.4.4.5: the first needs it
        return head

    def _render_text(self, server_control: bool, skipped: int = 0) -> str:
        """The whole text, joined from every entry listed (or, `skipped`, from the last ones only: a
        delta update). The full playlist is rendered in parts instead (_parts); this is its reference."""
        entries = list(islice(reversed(self._entries), len(self._entries) - skipped))[::-1] if skipped \
            else self._entries
        edge = _hashed_from(self._next_sequence, self.target_duration)
        return "".join((self._header(server_control, skipped, entries[0] if entries else None),
                        *(e.shown(edge) for e in entries), "#EXT-X-ENDLIST\n" if self._ended else ""))

    def _parts(self, server_control: bool) -> _Parts:
        """The full playlist in parts (_Frozen.parts)."""
        first = self._entries[0] if self._entries else None
        return self._frozen.parts(self._entries, self._media_sequence, self._next_sequence,
                                  self._header(server_control, 0, first), self._ended, self.target_duration)


def _hashed_from(next_sequence: int, target_duration: int) -> int:
    """The first sequence number whose hash is shown: the newest hls.hashed_segments ones' (H1)."""
    return next_sequence - hls.hashed_segments(target_duration)


def _skippable(entries: deque[_Entry], keep: float) -> int:
    """How many segments a delta update replaces with EXT-X-SKIP: the oldest ones, keeping at least
    `keep` (CAN-SKIP-UNTIL) seconds of the playlist's end (6.2.5.1)."""
    tail = 0.0
    for kept, e in enumerate(reversed(entries), 1):  # from the end: a long window costs nothing
        tail += e.segment.duration
        if tail >= keep:
            return len(entries) - kept
    return 0


def resume(
    saved: Saved, entries: Iterable[tuple[int, ListedSegment, float]], window_seconds: float, *,
    can_block_reload: bool = False, start_at_edge: bool = False,
) -> ManifestGenerator:
    """The playlist `saved` describes, listing `entries` (number, the segment with its date and
    discontinuity as listed, when it was listed); raises ValueError when they do not line up. The
    generator's other constructor: beside it, as the state it sets is the generator's own."""
    gen = ManifestGenerator(saved.target_duration, window_seconds, independent_segments=saved.independent,
                            can_block_reload=can_block_reload, start_at_edge=start_at_edge)
    gen._media_sequence, gen._discontinuity_sequence = saved.media_sequence, saved.discontinuity_sequence
    gen._next_sequence, gen._ended = saved.next_sequence, saved.ended
    gen._pending_discontinuity, gen._continues, gen._regrowing = \
        saved.pending_discontinuity, saved.continues, saved.regrowing
    for number, segment, listed_at in entries:
        if not hls.fits_target(round(segment.duration, 3), gen.target_duration):
            raise ValueError(f"a segment of {segment.duration:.3f}s does not fit target duration "
                             f"{gen.target_duration}s")
        previous = gen._entries[-1] if gen._entries else None
        gen._entries.append(_Entry(number, segment, segment.discontinuity, segment.program_date_time or 0.0,
                                   listed_at, previous))
        gen._duration += segment.duration
    gen._appended = len(gen._entries)
    gen._mapped = sum(bool(e.segment.init_uri) for e in gen._entries)
    gen._tagged = sum(e.discontinuity for e in gen._entries)
    if gen._entries:
        gen._peaks.appended(gen._entries[-1].sequence, max(saved.longest, gen._duration))
    sequences = [e.sequence for e in gen._entries]
    expected = list(range(gen._media_sequence, gen._media_sequence + len(sequences)))
    if sequences != expected or gen._next_sequence != gen._media_sequence + len(sequences):
        raise ValueError("playlist state is inconsistent (sequence numbers do not line up)")
    return gen


_DATE_LINE = b"\n#EXT-X-PROGRAM-DATE-TIME:"  # every listed segment has one, after its other tags
_SEQUENCE = re.compile(rb"^#EXT-X-MEDIA-SEQUENCE:([0-9]+)$", re.M)
_DISCONTINUITIES = re.compile(rb"^#EXT-X-DISCONTINUITY-SEQUENCE:([0-9]+)$", re.M)
_SKIP_UNTIL = re.compile(rb"CAN-SKIP-UNTIL=[0-9.]+,")


def _segment_start(body: bytes, date_line: int) -> int:
    """Where the segment whose PROGRAM-DATE-TIME line starts at `date_line` starts: its
    EXT-X-DISCONTINUITY and EXT-X-MAP lines come before that line (_Entry)."""
    start = date_line
    while start > 0:
        previous = body.rfind(b"\n", 0, start - 1) + 1
        line = body[previous:start - 1]
        if line != b"#EXT-X-DISCONTINUITY" and not line.startswith(b"#EXT-X-MAP:"):
            break
        start = previous
    return start


def newest_segments(body: bytes, limit: int) -> bytes:
    """A media playlist of at most about `limit` bytes: the newest whole segments of `body` (a rendering
    of ours), numbered as there (EXT-X-MEDIA-SEQUENCE and EXT-X-DISCONTINUITY-SEQUENCE count what was
    left out, as when segments slide out, 6.2.2), the EXT-X-MAP in force before the first (4.4.4.5),
    and no CAN-SKIP-UNTIL: a delta update is made against the whole window, which such a client does
    not hold. `body` itself when it fits."""
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


class VariantStream(Protocol):
    """A variant as the multivariant playlist announces it (source.owncast.SourceVariant is one)."""

    @property
    def index(self) -> int: ...
    @property
    def bandwidth(self) -> int: ...
    @property
    def average_bandwidth(self) -> int | None: ...
    @property
    def resolution(self) -> tuple[int, int] | None: ...
    @property
    def codecs(self) -> str | None: ...
    @property
    def frame_rate(self) -> float | None: ...


def render_master(variants: Sequence[VariantStream], media_name: str = hls.MEDIA_PLAYLIST_NAME) -> Rendered:
    """The multivariant playlist (4.4.6.2), naming each variant's playlist `<index>/<media_name>`."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
    for v in variants:  # Owncast's order: hls.js starts with the first listed
        attrs = [f"BANDWIDTH={v.bandwidth}"]
        if v.average_bandwidth:
            attrs.append(f"AVERAGE-BANDWIDTH={v.average_bandwidth}")
        if v.resolution:
            attrs.append(f"RESOLUTION={v.resolution[0]}x{v.resolution[1]}")
        if v.frame_rate:
            attrs.append(f"FRAME-RATE={v.frame_rate:.3f}")
        if v.codecs:
            attrs.append(f'CODECS="{v.codecs}"')
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(hls.variant_uri(v.index, media_name))
    lines.append("")
    return Rendered("\n".join(lines).encode())


def render_vod(segments: list[ListedSegment], target_duration: int, *, independent_segments: bool = True) -> bytes:
    """A whole stream kept as video on demand (PLAYLIST-TYPE:VOD, 4.4.3.5; ENDLIST, 4.4.3.4).

    Segment URIs are given relative (the playlist sits next to its segments), so it plays from any
    host. Each segment keeps its discontinuity and date.
    """
    has_map = any(s.init_uri for s in segments)
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{hls.playlist_version(has_map=has_map)}",
        f"#EXT-X-TARGETDURATION:{target_duration}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    if independent_segments:
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    current_map: str | None = None
    for i, s in enumerate(segments):
        disc = s.discontinuity and i > 0
        if disc:
            lines.append("#EXT-X-DISCONTINUITY")
        if s.init_uri and (s.init_uri != current_map or disc):
            lines.append(f'#EXT-X-MAP:URI="{s.init_uri}"')
        current_map = s.init_uri
        if s.program_date_time is not None:
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{hls.format_program_date_time(s.program_date_time)}")
        lines.append(f"#EXTINF:{s.duration:.3f},")
        lines.append(s.uri)
    lines += ["#EXT-X-ENDLIST", ""]
    return "\n".join(lines).encode()
