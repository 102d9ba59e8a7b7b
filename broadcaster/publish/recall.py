"""Recall: the publisher's memory both ways (memory.py's format): what it saves with each version, and
a restore that sets each part through its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..playlist.segments import ListedSegment, Removed
from ..source.owncast import SourcePlaylist
from ..state import validate
from .memory import Memory, decode, encode
from .parts import Parts
from .slots import Variant
from .waiting import Queues

log = logging.getLogger(__name__)


class Recall:
    def __init__(self, parts: Parts, queues: Queues, drop: Callable[[list[Removed]], None]) -> None:
        """`queues`: what waits in each variant (the lister's); `drop`: objects no playlist will name go on
        to the cleaner."""
        self._mono = parts.config.monotonic
        self._window = parts.config.window
        self._hashes = parts.config.segment_hashes
        self._parts = parts
        self._uploads = parts.uploads
        self._late = parts.late
        self._queues = queues
        self._recorder = parts.recorder
        self._drop = drop
        # After continuing above a state not saved at a clean stop: the variants read since. What a
        # variant's first read lists may have been served, under numbers given up: never listed again.
        self._read_since: set[int] | None = None

    def memory(self, now: float) -> dict[str, object]:
        p = self._parts
        lanes, target, numbering = p.lanes, p.target, p.numbering
        m = Memory(p.variants, target.value, target.independent, numbering.next_sequence,
                   numbering.last_run, lanes.together.decided, numbering.runs, self._uploads.restored,
                   discontinuity_floor=numbering.discontinuity_floor)
        return encode(m, lanes.undecided(), now, self._queues.saved(), self._late.saved())

    def restore(self, data: dict[str, object]) -> int:
        """Continue from `memory`; returns the numbers the state allows to show before the next save.
        Any error is raised as ValueError before anything changes, so the service sets a damaged or crafted
        file aside instead of failing to start."""
        p = self._parts
        try:
            m = decode(data, self._mono(), p.variants.playlist)
        except ValueError:
            raise
        except Exception as err:  # noqa: BLE001 (a check missed above: still a bad file, not a crash)
            raise ValueError(f"publisher state does not parse: {validate.describe(err)}") from None
        p.variants.restored(m.variants)
        p.target.restored(m.target, m.independent)
        p.numbering.restored(m.next_sequence, m.last_run, m.runs, m.discontinuity_floor)
        p.lanes.restored(m.decided)
        self._uploads.restore(m.uploaded)
        # Late from before: saved as such, or waiting in a variant (a gap from now on): uploaded once
        # finished. The recording journals what the restore listed of the waiting slots.
        self._late.restore([*m.late, *((i, s.key, run) for run, i, s in m.waited if s.gap and s.key)],
                           m.late_landed)
        if self._recorder is not None:
            for run, index, segment in m.waited:
                if run:
                    self._recorder.record(run, index, segment)
        if not self._hashes:  # P2P turned off since that save: the playlists say nothing of hashes
            for v in p.variants.values():
                v.playlist.drop_hashes()
        if m.clean:
            log.info("continuing from saved state: next media sequence %d, %d variant(s)",
                     p.numbering.next_sequence, len(p.variants))
        else:
            self._continue_above(m.reserved, m.continue_at, m.continue_floor)
        return m.allowed

    def _continue_above(self, reserved: int, start: int, floor: int) -> None:
        """Numbers up to `reserved` may have been served since the state was saved: every playlist continues
        at `start`, a discontinuity first (hls.continue_above)."""
        now = self._mono()
        for v in self._parts.variants.values():
            v.playlist.continue_above(start, floor, now)
        self._forget_uploads(self._uploads.give_up_restored(), now)
        self._parts.numbering.continued(start, floor)
        self._read_since = set()
        log.warning("state was not saved at a clean stop: media sequence numbers up to %d may have been "
                    "served since; continuing from %d with a discontinuity, at Owncast's next segment",
                    reserved - 1, start)

    def first_read(self, v: Variant, playlist: SourcePlaylist, now: float) -> None:
        """After continuing above a state not saved at a clean stop, what a variant's first read lists may
        have been listed under numbers now given up: remembered as seen, never listed again (a URI keeps its
        number); their objects go once no playlist served before the restart can list them."""
        if self._read_since is None or v.index in self._read_since:
            return
        self._read_since.add(v.index)
        given_up = [seg for seg in playlist.segments if seg.name not in v.seen]
        for seg in given_up:
            v.seen[seg.name] = None
        self._forget_uploads([self._uploads.key(v.index, seg.name) for seg in given_up if not seg.is_offline_clip], now)
        if given_up:
            log.info("variant %d: %d segment(s) Owncast lists may have been served before the restart; "
                     "not listed again", v.index, len(given_up))

    def _forget_uploads(self, keys: list[str], now: float) -> None:
        """Objects that may be in the bucket and in a playlist served before the restart, never listed
        again: they go once such a playlist can no longer name them (a window and a half from now)."""
        keep = self._parts.target.keep_for(self._window.seconds)
        self._drop([Removed(ListedSegment("", 0.0, key=key), now, keep) for key in keys])
